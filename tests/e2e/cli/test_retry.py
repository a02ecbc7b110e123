"""`runrelay retry` on a finished file with failed lines: only those run again, as new attempts, and the
file gets a new results file and JobCompleted; the emulator's execution counters show no COMPLETED line
ran twice and every Runware task ran once."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from runrelay.domain.tasks import TaskRecord
from runrelay.results_file import results_key
from runrelay.task_ids import attempt_task_uuid, task_uuid_for

from ..conftest import Pipeline
from ..test_results_and_events import EventTap
from .test_cli import runrelay

LINES = 12
FAILING = (3, 7, 8)


def _wait_all_completed(pipeline: Pipeline, source: str, timeout: float = 90.0) -> list[TaskRecord]:
    deadline = time.monotonic() + timeout
    tasks: list[TaskRecord] = []
    while time.monotonic() < deadline:
        tasks = pipeline.store.tasks_of_source(source)
        if len(tasks) == LINES and all(t.status == "COMPLETED" for t in tasks):
            return tasks
        time.sleep(0.25)
    raise AssertionError(f"not every line COMPLETED in {timeout}s: {[t.status.value for t in tasks]}")


def test_retry_reruns_only_the_failed_lines_and_completes_the_file_again(
    pipeline_factory: Callable[..., Pipeline], tmp_path: Path
) -> None:
    state_file = tmp_path / "local-stack.json"
    pipeline = pipeline_factory(state_file=state_file)
    tap = EventTap(pipeline)
    data = "".join(
        json.dumps({"id": f"retry-{n}", "prompt": f"question {n}"}) + "\n" for n in range(1, LINES + 1)
    )
    endpoints = pipeline.stack.endpoints
    key = f"{endpoints.input_prefix}retry-me.jsonl"
    source = f"s3://{endpoints.bucket_name}/{key}#{hashlib.md5(data.encode()).hexdigest()}"  # noqa: S324
    # The first attempt of some lines fails at Runware (an error webhook); a retried attempt is another
    # Runware task, so it succeeds.
    first_attempts = {n: str(task_uuid_for(f"{source}:{n}")) for n in FAILING}
    pipeline.emulator.set_faults(fail_task_uuids=frozenset(first_attempts.values()))
    assert pipeline.upload("retry-me.jsonl", data.encode()) == source

    tasks = pipeline.wait_settled({source: LINES}, timeout=90)[source]
    assert [t.source_seq for t in tasks if t.status == "FAILED"] == list(FAILING)
    assert all(t.status == "COMPLETED" for t in tasks if t.source_seq not in FAILING)
    tap.wait_for(lambda events: any(e["detail-type"] == "JobCompleted" for e in events), timeout=60)
    first_events = list(tap.drain())  # every event so far (the tap keeps them all, in one list)
    [first_job] = [e["detail"] for e in first_events if e["detail-type"] == "JobCompleted"]
    assert first_job["counts"] == {"total": LINES, "COMPLETED": LINES - len(FAILING), "FAILED": len(FAILING)}

    retried = runrelay(state_file, "retry", "retry-me.jsonl", "--by", "e2e-test", "--json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout) == {
        "retryRequested": [{"sourceId": source, "lines": list(FAILING), "round": 1}],
        "requestedBy": "e2e-test",
    }
    tasks = _wait_all_completed(pipeline, source)
    executions = pipeline.emulator.stats()["executions"]
    for task in tasks:
        if task.source_seq in FAILING:
            assert task.attempt == 1
            [earlier] = task.attempts
            assert earlier["status"] == "FAILED"
            assert executions[task.task_uuid] == 1  # the failed first attempt, never re-sent
            assert executions[attempt_task_uuid(task.task_uuid, 1)] == 1
        else:
            assert task.attempt == 0
            assert executions[task.task_uuid] == 1  # a COMPLETED line never runs again
    assert len(executions) == LINES + len(FAILING)
    assert max(executions.values()) == 1

    tap.wait_for(lambda events: any(e["detail"].get("round") == 1 for e in events), timeout=60)
    events = tap.drain()[len(first_events) :]
    [second_job] = [e["detail"] for e in events if e["detail-type"] == "JobCompleted"]
    assert (second_job["round"], second_job["counts"]) == (1, {"total": LINES, "COMPLETED": LINES})
    assert sorted(e["detail"]["line"] for e in events if e["detail-type"] == "TaskCompleted") == list(FAILING)
    body = pipeline.clients.s3.get_object(Bucket=endpoints.bucket_name, Key=results_key(key))["Body"]
    rows = [json.loads(line) for line in body.read().decode().splitlines()]
    assert [r["line"] for r in rows] == list(range(1, LINES + 1))
    assert {r["line"]: r["attempt"] for r in rows} == {n: int(n in FAILING) for n in range(1, LINES + 1)}
    assert all(r["status"] == "COMPLETED" and r["text"] for r in rows)

    status = runrelay(state_file, "status", f"retry-{FAILING[0]}", "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert (shown["status"], shown["attempt"], shown["earlierAttempts"][0]["status"]) == (
        "COMPLETED",
        1,
        "FAILED",
    )

    nothing = runrelay(state_file, "retry", "retry-me.jsonl")
    assert nothing.returncode == 0, nothing.stderr
    assert "nothing to retry" in nothing.stdout
