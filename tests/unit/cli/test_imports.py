"""The CLI is part of the product: it reaches a stack through runrelay's adapters and boto3 only, and
never imports the local dev stack (`local`), which an installed CLI may not have."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

_IMPORT_EVERY_MODULE = """
import importlib, json, pkgutil, sys
import runrelay_cli
names = [m.name for m in pkgutil.walk_packages(runrelay_cli.__path__, "runrelay_cli.")]
for name in names:  # __main__ would run the CLI: `python -m runrelay_cli` is checked below
    if not name.endswith(".__main__"):
        importlib.import_module(name)
print(json.dumps({
    "modules": names,
    "local": sorted(m for m in sys.modules if m == "local" or m.startswith("local.")),
}))
"""


def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # This checkout's packages, not whichever are installed; run outside the repo so that the working
    # directory does not put `local` on sys.path either.
    path = os.pathsep.join(str(ROOT / folder) for folder in ("cli", "layers/common"))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_importing_every_cli_module_imports_no_local_module(tmp_path: Path) -> None:
    answer = _python("-c", _IMPORT_EVERY_MODULE, cwd=tmp_path)
    assert answer.returncode == 0, answer.stderr
    found = json.loads(answer.stdout)
    assert {"runrelay_cli.app", "runrelay_cli.targets", "runrelay_cli.redrive"} <= set(found["modules"])
    assert found["local"] == []


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    answer = _python("-m", "runrelay_cli", "--help", cwd=tmp_path)
    assert answer.returncode == 0, answer.stderr
    assert "submit" in answer.stdout
