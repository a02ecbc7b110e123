"""`runrelay cancel` on a file half-way through: what was sent completes, the rest ends CANCELLED unsent."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from local.runware_emulator import FaultConfig
from runrelay.adapters.dynamodb.jobs import DynamoJobRepository
from runrelay.results_file import results_key

from ..conftest import Pipeline
from ..test_results_and_events import EventTap
from .test_cli import runrelay

LINES = 300


def _wait_for_some_sent(pipeline: Pipeline, source: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pipeline.emulator.stats()["executions"]:  # Runware has run some of it
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing of {source} was sent in {timeout}s")


def _wait_for_empty_ingest_queue(pipeline: Pipeline, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attributes = pipeline.clients.sqs.get_queue_attributes(
            QueueUrl=pipeline.stack.endpoints.ingest_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if not any(int(value) for value in attributes.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"the ingest queue still holds messages after {timeout}s")


def test_cancel_mid_file_stops_what_was_not_sent_and_still_closes_the_job(
    pipeline_factory: Callable[..., Pipeline], tmp_path: Path
) -> None:
    # Chunks of 5 lines, each POST answered after 1 s: the file takes ~15 s to send, time to cancel it.
    state_file = tmp_path / "local-stack.json"
    pipeline = pipeline_factory(
        emulator={"faults": FaultConfig(latency=20.0)},
        parameters={"MaxTasksPerRequest": "5"},
        state_file=state_file,
    )
    tap = EventTap(pipeline)
    lines = [json.dumps({"id": f"line-{n}", "prompt": f"question {n}"}) for n in range(LINES)]
    source = pipeline.upload("cancel-me.jsonl", ("\n".join(lines) + "\n").encode())
    _wait_for_some_sent(pipeline, source)

    cancelled = runrelay(state_file, "cancel", "cancel-me.jsonl", "--by", "e2e-test", "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout) == {"cancelRequested": [source], "requestedBy": "e2e-test"}

    tasks = pipeline.wait_settled({source: LINES}, timeout=120)[source]
    by_status = Counter(t.status for t in tasks)
    assert set(by_status) == {"COMPLETED", "CANCELLED"}, by_status
    assert by_status["COMPLETED"] >= 5, by_status  # at least the chunk seen before the cancel
    assert by_status["CANCELLED"] >= 5, by_status
    executions = pipeline.emulator.stats()["executions"]
    for task in tasks:
        if task.status == "CANCELLED":
            assert task.task_uuid not in executions  # never sent
            assert task.error is not None
            assert task.error["code"] == "cancelled"
            assert task.error["requestedBy"] == "e2e-test"
        else:
            assert executions[task.task_uuid] == 1
    assert tasks[-1].status == "CANCELLED"

    tap.wait_for(lambda events: any(e["detail-type"] == "JobCompleted" for e in events), timeout=120)
    job = next(e for e in tap.drain() if e["detail-type"] == "JobCompleted")
    assert job["detail"]["counts"] == {"total": LINES, **by_status}
    key = results_key(f"{pipeline.stack.endpoints.input_prefix}cancel-me.jsonl")
    body = pipeline.clients.s3.get_object(Bucket=pipeline.stack.endpoints.bucket_name, Key=key)["Body"]
    rows = [json.loads(line) for line in body.read().decode().splitlines()]
    assert [r["line"] for r in rows] == list(range(1, LINES + 1))
    assert Counter(r["status"] for r in rows) == by_status
    assert all(r["error"]["code"] == "cancelled" for r in rows if r["status"] == "CANCELLED")

    status = runrelay(state_file, "status", "cancel-me.jsonl", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"] == dict(by_status)

    again = runrelay(state_file, "cancel", source, "--by", "someone-else")
    assert again.returncode == 0, again.stderr
    _wait_for_empty_ingest_queue(pipeline)
    jobs = DynamoJobRepository(pipeline.stack.endpoints.table_name, dynamodb=pipeline.clients.dynamodb)
    kept = jobs.cancellation(source, consistent=True)
    assert kept is not None
    assert kept.requested_by == "e2e-test"  # the first cancellation is the one kept
