"""Cold starts stay light: the webhook's handler imports neither pydantic nor requests; no handler builds
pydantic models at import, and none imports boto3.

They weigh on every cold start (bench/README.md, cold_import): the request models and the Runware client
belong to the submit and reconcile functions only, and are loaded with their service on the first event;
clients are botocore's (`aws_clients`), and boto3's transfer manager is loaded with the results writer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("boto3", "pydantic", "requests", "runrelay.contract", "runrelay.runware_client")


def _loaded_at_import(function: str) -> list[str]:
    probe = (
        "import importlib, json, sys\n"
        f"sys.path[:0] = [{str(ROOT / 'layers' / 'common')!r}, {str(ROOT)!r}]\n"
        f"importlib.import_module('functions.{function}.app')\n"
        f"print(json.dumps(sorted(n for n in {HEAVY!r} if n in sys.modules)))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"},
    )
    assert answer.returncode == 0, answer.stderr
    loaded: list[str] = json.loads(answer.stdout.strip().splitlines()[-1])
    return loaded


def test_the_webhook_handler_imports_no_pydantic_no_requests_and_no_boto3() -> None:
    assert _loaded_at_import("webhook") == []


def test_the_submit_handler_loads_its_models_with_its_service() -> None:
    assert "pydantic" not in _loaded_at_import("submit")


@pytest.mark.parametrize("function", ["submit", "reconcile", "results"])
def test_no_handler_imports_boto3(function: str) -> None:
    assert "boto3" not in _loaded_at_import(function)
