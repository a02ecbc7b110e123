"""Submit under persistent throttling: retried, parked in the DLQ with the body intact, redriven (the
CLI's `runrelay redrive ingest`), completed under the same taskUUIDs.

SubmitFunction gets a 7 s Timeout here (2 s of retry budget after its 5 s reserve) so five receives take
seconds, not the template's minutes; the queue's own redrive policy (maxReceiveCount 5) moves the records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from local.runware_emulator import FaultConfig
from runrelay.domain.tasks import TaskStatus
from runrelay.task_ids import task_uuid_for
from runrelay_cli.redrive import redrive_ingest

from .conftest import Pipeline

MAX_RECEIVE_COUNT = 5  # template.yaml IngestQueue RedrivePolicy


def _parked(pipeline: Pipeline, queue_url: str, expected: int, timeout: float = 90) -> list[dict[str, Any]]:
    """Wait until `expected` messages are in a queue the pollers do not read; return them, left in place."""
    sqs = pipeline.clients.sqs
    deadline = time.monotonic() + timeout
    while pipeline.dlq_depth() < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    got: dict[str, dict[str, Any]] = {}
    while len(got) < expected and time.monotonic() < deadline:
        for message in sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        ).get("Messages", []):
            got[message["MessageId"]] = message
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    return list(got.values())


def test_persistent_throttling_parks_records_in_the_dlq_and_a_redrive_completes_them(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    pipeline = pipeline_factory(
        emulator={"faults": FaultConfig(rate_429=0.5, rate_503=0.5, retry_after=0)},
        parameters={"OverdueAfterSeconds": "1", "MaxTaskAgeSeconds": "5"},
        schedule_period=3600,  # the reconciler runs only when the test fires it
        function_timeouts={"SubmitFunction": 7},
        batching_window_cap_seconds=0.1,
        # Each receive must reach Runware for the refusals counted below: with the shared throttle a
        # receive may give up on the cool-down before its POST (tests/e2e/test_back_pressure.py).
        extra_environment={"RUNWARE_BACK_PRESSURE": "local"},
    )
    endpoints = pipeline.stack.endpoints
    with_ids = json.dumps(
        [{"id": "press-a", "prompt": "a"}, {"id": "press-b", "prompt": "b", "numberResults": 2}]
    )
    without_id = json.dumps({"prompt": "no id here", "numberResults": 3})
    sent_with_ids = pipeline.send(with_ids)
    sent_without_id = pipeline.send(without_id)
    file_source = pipeline.upload("pressure.jsonl", b'{"prompt": "line one"}\n{"prompt": "line two"}\n')

    parked = _parked(pipeline, endpoints.dead_letter_queue_url, expected=3)
    bodies = {message["Body"] for message in parked}
    assert {with_ids, without_id} <= bodies  # byte for byte what the producer sent
    [notification] = bodies - {with_ids, without_id}
    key = file_source.split("#")[0].split("/", 3)[3]
    assert json.loads(notification)["Records"][0]["s3"]["object"]["key"] == key
    assert all(int(m["Attributes"]["ApproximateReceiveCount"]) >= MAX_RECEIVE_COUNT for m in parked)
    stats = pipeline.emulator.stats()
    assert stats["tasks"] == 0  # every POST was refused: nothing ran, nothing was paid for
    assert stats["faults"].get("http_429", 0) + stats["faults"].get("http_503", 0) >= 3 * MAX_RECEIVE_COUNT
    pending = (
        pipeline.store.tasks_of_source(sent_with_ids)
        + pipeline.store.tasks_of_source(file_source)
        + pipeline.store.tasks_of_source(sent_without_id)
    )
    assert [view.status for view in pending] == [TaskStatus.PENDING] * 5

    # The fault clears; `runrelay redrive ingest` moves the parked messages back.
    pipeline.emulator.set_faults(FaultConfig())
    moved = redrive_ingest(pipeline.clients.sqs, endpoints.dead_letter_queue_url, endpoints.ingest_queue_url)
    assert moved == 3
    assert pipeline.dlq_depth() == 0

    # Caller ids, S3 keys and (through the redrive's runrelayMessageId) message ids survive the redrive:
    # the same taskUUIDs on their first sources, each run once, the PENDING rows completed.
    found = pipeline.wait_settled({sent_with_ids: 2, file_source: 2, sent_without_id: 1}, timeout=60)
    for views in found.values():
        assert all(view.status == TaskStatus.COMPLETED for view in views)
        assert all(len(view.results) == view.number_results for view in views)
    assert {v.task_uuid for v in found[sent_with_ids]} == {
        str(task_uuid_for("id:press-a")),
        str(task_uuid_for("id:press-b")),
    }
    assert {view.task_uuid for view in pending} == {v.task_uuid for views in found.values() for v in views}
    final_stats = pipeline.emulator.stats()
    # One Runware task per wanted result, each run once.
    assert final_stats["tasks"] == sum(v.number_results for views in found.values() for v in views)
    assert final_stats["max_executions"] == 1
    assert pipeline.dlq_depth() == 0
