"""`runrelay ask` against the Runware emulator: sync and streamed answers, and a refused request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from local.runware_emulator import EmulatorServer
from runrelay_cli import app

runner = CliRunner()


@pytest.fixture
def runware_env(emulator: EmulatorServer) -> dict[str, str]:
    return {"RUNWARE_API_URL": str(emulator.url), "RUNWARE_API_KEY": "any-key"}


def test_ask_sync_prints_the_answer_and_its_cost(runware_env: dict[str, str]) -> None:
    answer = runner.invoke(app, ["ask", "Name a colour.", "--json"], env=runware_env)
    assert answer.exit_code == 0, answer.output
    result = json.loads(answer.output)
    assert result["text"]
    assert result["usage"]["totalTokens"]
    assert result["cost"] > 0


def test_ask_stream_prints_deltas_then_the_closing_fields(runware_env: dict[str, str]) -> None:
    answer = runner.invoke(app, ["ask", "Name a colour.", "--stream", "--json"], env=runware_env)
    assert answer.exit_code == 0, answer.output
    events = [json.loads(line) for line in answer.output.splitlines()]
    assert len(events) > 2
    assert all(event["delta"] for event in events[:-1])
    assert events[-1]["finishReason"]
    assert events[-1]["usage"]["totalTokens"]


def test_ask_needs_a_key_and_an_endpoint(emulator: EmulatorServer, tmp_path: Path) -> None:
    no_key = {"RUNWARE_API_URL": str(emulator.url), "RUNWARE_API_KEY": ""}
    answer = runner.invoke(app, ["ask", "hi"], env=no_key)
    assert answer.exit_code == 2
    assert "RUNWARE_API_KEY is not set" in answer.output
    no_stack = {"RUNWARE_API_URL": "", "RUNRELAY_STATE_FILE": str(tmp_path / "none.json")}
    answer = runner.invoke(app, ["ask", "hi"], env=no_stack)
    assert answer.exit_code == 2
    assert "no local stack running" in answer.output
