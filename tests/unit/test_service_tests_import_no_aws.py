"""The architecture's rule: the services' unit tests import no boto3 and start no server.

Each module is imported in a fresh interpreter, which then reports which AWS libraries got loaded. The
services depend on the ports only; the adapters and `runrelay.wiring` are where the AWS SDK comes in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AWS_LIBRARIES = ("boto3", "botocore", "s3transfer", "moto")

SERVICES = [
    "runrelay.submit_logic",
    "runrelay.webhook_logic",
    "runrelay.reconcile_logic",
    "runrelay.results_logic",
    "runrelay.results_file",
    "runrelay.ports",
    "runrelay.domain.tasks",
    "runrelay.domain.jobs",
    "runrelay.domain.events",
    "runrelay.models",
]
SERVICE_TESTS = [
    "tests.support.fakes",
    "tests.support.models",
    "tests.unit.conftest",
    "tests.unit.test_submit_logic",
    "tests.unit.test_submit_redelivery",
    "tests.unit.test_webhook_logic",
    "tests.unit.test_reconcile_logic",
    "tests.unit.test_results_logic",
    "tests.unit.test_model_registry",
]


def aws_libraries_loaded_by(module: str) -> list[str]:
    probe = (
        "import importlib, json, sys\n"
        f"sys.path[:0] = [{str(ROOT / 'layers' / 'common')!r}, {str(ROOT)!r}]\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps(sorted(n for n in {AWS_LIBRARIES!r} if n in sys.modules)))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert answer.returncode == 0, answer.stderr
    loaded: list[str] = json.loads(answer.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("modules", [SERVICES, SERVICE_TESTS], ids=["services", "service-tests"])
def test_importing_them_loads_no_aws_library(modules: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:  # one fresh interpreter per module, several at once
        loaded = dict(zip(modules, pool.map(aws_libraries_loaded_by, modules), strict=True))
    assert {module: names for module, names in loaded.items() if names} == {}


def test_the_probe_sees_the_sdk_where_it_is() -> None:
    """The composition root and the adapters do import the SDK: the probe would notice a service that
    reached them."""
    assert "botocore" in aws_libraries_loaded_by("runrelay.wiring")
    assert "botocore" in aws_libraries_loaded_by("runrelay.adapters.dynamodb.tasks")
    assert "boto3" in aws_libraries_loaded_by("runrelay.adapters.s3_uploads")
