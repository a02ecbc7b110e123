"""The runrelay CLI as a user runs it (a subprocess) against a running local stack found by its state file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.stack.local_stack import LocalStack

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def state_file(dynamodb_local: str, moto_server: str, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "local-stack.json"
    stack = LocalStack(
        stack_name=f"cli{uuid.uuid4().hex[:8]}",
        dynamodb_url=dynamodb_local,
        moto_url=moto_server,
        runware_api_url=None,
        emulator_options={"time_scale": 0.05},
        retry_delay_seconds=1,
        state_file=path,
    )
    with stack:
        yield path
    assert not path.exists()  # the stack removes its description when it stops


def runrelay(state_file: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNRELAY_STATE_FILE": str(state_file), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "runrelay_cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_submit_wait_results_round_trip_a_jsonl_file(state_file: Path, tmp_path: Path) -> None:
    specs = [{"id": f"line-{i}", "prompt": f"question {i}", "numberResults": 1 + i % 3} for i in range(6)]
    specs.insert(3, {"id": "bad", "prompt": "too many", "numberResults": 9})
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(json.dumps(spec) for spec in specs) + "\n")

    refused = runrelay(state_file, "submit", str(batch))
    assert refused.returncode == 2
    assert "line 4: numberResults" in refused.stderr

    sent = runrelay(state_file, "submit", str(batch), "--force", "--json")
    assert sent.returncode == 0, sent.stderr
    answer = json.loads(sent.stdout)
    assert answer["tasks"] == 7
    (source,) = answer["ids"]
    assert source.startswith("s3://")
    assert "/incoming/batch.jsonl#" in source

    waited = runrelay(state_file, "wait", "batch.jsonl", "--timeout", "120")  # the file name works too
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "tasks final" in waited.stdout
    assert "7/7" in waited.stdout

    out = tmp_path / "results.jsonl"
    wrote = runrelay(state_file, "results", source, "-o", str(out))
    assert wrote.returncode == 0, wrote.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["callerId"] for line in lines] == [spec["id"] for spec in specs]  # REJECTED rows too
    for line, spec in zip(lines, specs, strict=True):
        if spec["id"] == "bad":
            assert line["status"] == "REJECTED"
            assert line["error"]["code"] == "invalidTaskSpec"
            continue
        assert line["status"] == "COMPLETED"
        assert len(line["results"]) == spec["numberResults"]
        assert all(r["text"] and r["usage"]["totalTokens"] and r["cost"] for r in line["results"])


def test_prompt_by_caller_id_status_and_tail(state_file: Path) -> None:
    caller_id = f"cli-{uuid.uuid4().hex[:8]}"
    sent = runrelay(state_file, "submit", "--prompt", "Explain SQS in one line.", "--id", caller_id, "-q")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == caller_id

    waited = runrelay(state_file, "wait", caller_id, "--json", "--timeout", "120")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert json.loads(waited.stdout)["counts"] == {"COMPLETED": 1}

    shown = runrelay(state_file, "status", caller_id, "--json")
    status = json.loads(shown.stdout)
    assert (status["status"], status["callerId"], status["resultCount"]) == ("COMPLETED", caller_id, 1)

    tailed = runrelay(state_file, "tail", "-n", "5", "--json")
    assert tailed.returncode == 0, tailed.stderr
    assert caller_id in [json.loads(line)["callerId"] for line in tailed.stdout.splitlines()]

    unknown = runrelay(state_file, "results", "no-such-id")
    assert unknown.returncode == 2
    assert "unknown id 'no-such-id'" in unknown.stderr
    unknown = runrelay(state_file, "wait", "no-such-id", timeout=60)
    assert unknown.returncode == 2
    assert "unknown id 'no-such-id'" in unknown.stderr


def test_caller_ids_of_file_lines_resolve_and_an_identical_file_runs_nothing(
    state_file: Path, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    batch = tmp_path / "ids.jsonl"
    batch.write_text(
        json.dumps({"id": f"ok-{tag}", "prompt": "a"})
        + "\n"
        + json.dumps({"id": f"bad-{tag}", "prompt": "b", "numberResults": 9})
        + "\n"
    )
    sent = runrelay(state_file, "submit", str(batch), "--force", "-q")
    assert sent.returncode == 0, sent.stderr
    waited = runrelay(state_file, "wait", sent.stdout.strip(), "--json", "--timeout", "120")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    for caller_id, status, seq in ((f"ok-{tag}", "COMPLETED", 1), (f"bad-{tag}", "REJECTED", 2)):
        shown = runrelay(state_file, "status", caller_id, "--json")
        assert shown.returncode == 0, shown.stderr
        assert (json.loads(shown.stdout)["status"], json.loads(shown.stdout)["seq"]) == (status, seq)
    again = runrelay(state_file, "submit", str(batch), "--force")
    assert again.returncode == 0, again.stderr
    assert "nothing new runs" in again.stdout
