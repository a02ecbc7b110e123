"""Shared fixtures for the template checks: the repo's own tools, run the way `make` runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local.stack.template_model import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


def _runtime_python_bin() -> Path:
    """The bin dir of Python 3.13, the Lambda runtime: sam build refuses to build without it on PATH."""
    try:
        prefix = subprocess.run(
            ["pyenv", "prefix", "3.13.0"], capture_output=True, text=True, check=True
        ).stdout.strip()
        return Path(prefix) / "bin"
    except (OSError, subprocess.CalledProcessError):
        found = shutil.which("python3.13")
        if found is None:
            pytest.fail("Python 3.13 not found (neither `pyenv prefix 3.13.0` nor python3.13 on PATH)")
        return Path(found).parent


@pytest.fixture(scope="session")
def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(_runtime_python_bin()), env.get("PATH", "")])
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env["SAM_CLI_TELEMETRY"] = "0"
    return env


def _tool(venv: str, name: str) -> str:
    path = ROOT / ".tools" / venv / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make tools`")
    return str(path)


@pytest.fixture(scope="session")
def sam() -> str:
    return _tool("sam", "sam")


@pytest.fixture(scope="session")
def checkov() -> str:
    return _tool("checkov", "checkov")


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def run(cmd: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
