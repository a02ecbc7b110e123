"""`python -m local.runware_emulator` (what `make emulator` runs): prints its URL, serves, stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.runware_requests import post, text_task

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def emulator_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {**os.environ, "EMULATOR_PORT": "0", "EMULATOR_API_KEY": "cli-secret", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "local.runware_emulator"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+/v1)", first_line)
        assert match, first_line
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def test_cli_serves_with_the_configured_key_and_stops_on_ctrl_c(
    emulator_process: tuple[subprocess.Popen[str], str],
) -> None:
    process, url = emulator_process

    assert post(url, [text_task()], headers={"Authorization": "Bearer other"}).status_code == 401
    assert post(url, [text_task()], headers={"Authorization": "Bearer cli-secret"}).status_code == 200

    process.send_signal(signal.SIGINT)
    # Its shutdown joins the HTTP thread and the webhook dispatcher (up to 5 s each): allow for a busy host.
    assert process.wait(timeout=30) == 0
    assert process.stdout is not None
    assert "stopped" in process.stdout.read()
