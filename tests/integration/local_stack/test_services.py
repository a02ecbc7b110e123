"""DynamoDB Local and the moto server start on free ports, answer, and never outlive their owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest

from local.net import wait_for
from local.stack.aws_credentials import LOCAL_CREDENTIALS
from local.stack.services import MotoServer
from local.stack.services.process_cleanup import CleanupRegistry

REPO_ROOT = Path(__file__).resolve().parents[3]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


def test_the_session_services_answer(dynamodb_local: str, moto_server: str) -> None:
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=dynamodb_local, region_name="us-east-1", **LOCAL_CREDENTIALS
    )
    secrets = boto3.client(
        "secretsmanager", endpoint_url=moto_server, region_name="us-east-1", **LOCAL_CREDENTIALS
    )
    assert "TableNames" in dynamodb.list_tables()
    assert "SecretList" in secrets.list_secrets()
    assert dynamodb_local.startswith("http://127.0.0.1:")
    assert moto_server.startswith("http://127.0.0.1:")


def test_stopping_the_moto_server_ends_its_process() -> None:
    with MotoServer() as server:
        pid = server.pid
        assert pid is not None
        assert _alive(pid)
    assert not _alive(pid)
    assert server.port is None


def test_stop_all_runs_every_registered_stopper_even_when_one_fails() -> None:
    stopped: list[str] = []
    registry = CleanupRegistry()

    def failing() -> None:
        stopped.append("failing")
        raise RuntimeError("boom")

    handles = [
        registry.register("first", lambda: stopped.append("first")),
        registry.register("failing", failing),
        registry.register("last", lambda: stopped.append("last")),
    ]
    unregistered = registry.register("unregistered", lambda: stopped.append("unregistered"))
    registry.unregister(unregistered)
    registry.stop_all()
    assert stopped == ["last", "failing", "first"]  # newest first
    registry.stop_all()
    assert len(stopped) == 3 == len(handles)  # each ran once


@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow, id="SIGTERM")]
)
def test_services_die_with_their_owner_process(signum: int) -> None:
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import time
                from local.stack.services import DynamoDBLocal, MotoServer
                dynamodb, moto = DynamoDBLocal().start(), MotoServer().start()
                print(dynamodb.pid, moto.pid, flush=True)
                time.sleep(120)
                """
            ),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        pids = [int(pid) for pid in owner.stdout.readline().split()]
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)
        owner.send_signal(signum)
        owner.wait(timeout=30)
        wait_for(lambda: not any(_alive(pid) for pid in pids), 15, "the services to exit")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
