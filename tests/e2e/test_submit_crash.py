"""A SubmitFunction process SIGKILLed between its steps heals when SQS delivers the same record again.

The real handler runs in a child process (`tests/support/crashing_submit.py`) against the local stack.
Webhooks are dropped, so the lifecycle is observable step by step: PENDING after the crash, each
task executed once at Runware after the redelivery (still PENDING: nothing is written after a POST),
COMPLETED after the reconciler polls Runware.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local.runware_emulator import FaultConfig
from runrelay.domain.tasks import TaskStatus
from runrelay.task_ids import task_uuid_for

from .conftest import Pipeline

ROOT = Path(__file__).resolve().parents[2]
CHILD = ROOT / "tests" / "support" / "crashing_submit.py"
RECONCILE = "ReconcileFunction.Every5Minutes"


def _sqs_event(pipeline: Pipeline, message_id: str, body: str, receive_count: int) -> dict[str, Any]:
    assert pipeline.stack.resources is not None
    now_ms = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": f"handle-{receive_count}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": str(receive_count),
                    "SentTimestamp": now_ms,
                    "SenderId": "AIDATESTSENDER",
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": pipeline.stack.resources.attribute("IngestQueue", "Arn"),
                "awsRegion": pipeline.stack.region,
            }
        ]
    }


def _run_submit(
    pipeline: Pipeline, crash_point: str, event: dict[str, Any], tmp: Path
) -> subprocess.CompletedProcess[str]:
    event_file = tmp / f"event-{crash_point}-{uuid.uuid4().hex[:6]}.json"
    event_file.write_text(json.dumps(event), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(CHILD), crash_point, str(event_file)],
        env={**os.environ, **pipeline.stack.environments["SubmitFunction"]},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _statuses(pipeline: Pipeline, uuids: list[str]) -> list[str | None]:
    views = [pipeline.store.get_task(task_uuid) for task_uuid in uuids]
    return [view.status if view else None for view in views]


@pytest.mark.parametrize(
    ("crash_point", "executed_before_redelivery"),
    [("before-post", 0), ("after-accept", 1)],
)
def test_killed_submit_heals_on_redelivery(
    pipeline_factory: Callable[..., Pipeline],
    tmp_path: Path,
    crash_point: str,
    executed_before_redelivery: int,
) -> None:
    pipeline = pipeline_factory(
        emulator={"faults": FaultConfig(webhook_drop_rate=1.0)},
        parameters={"OverdueAfterSeconds": "1"},
        schedule_period=3600,  # the reconciler runs only when the test fires it
    )
    message_id = str(uuid.uuid4())
    # No caller ids: the idempotency keys come from the message id, which a redelivery keeps.
    body = json.dumps([{"prompt": f"crash {i}", "numberResults": 2} for i in range(3)])
    uuids = [str(task_uuid_for(f"sqs:{message_id}:{i}")) for i in range(3)]

    crashed = _run_submit(pipeline, crash_point, _sqs_event(pipeline, message_id, body, 1), tmp_path)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout[-2000:] + crashed.stderr[-2000:]
    assert _statuses(pipeline, uuids) == [TaskStatus.PENDING] * 3
    executions = pipeline.emulator.stats()["executions"]
    assert [executions.get(u, 0) for u in uuids] == [executed_before_redelivery] * 3

    redelivered = _run_submit(pipeline, "none", _sqs_event(pipeline, message_id, body, 2), tmp_path)
    assert redelivered.returncode == 0, redelivered.stdout[-2000:] + redelivered.stderr[-2000:]
    response = json.loads(redelivered.stdout.rsplit("RESPONSE ", 1)[1])
    assert response == {"batchItemFailures": []}
    assert _statuses(pipeline, uuids) == [TaskStatus.PENDING] * 3
    executions = pipeline.emulator.stats()["executions"]
    assert [executions.get(u, 0) for u in uuids] == [1] * 3

    deadline = time.monotonic() + 60
    while _statuses(pipeline, uuids) != [TaskStatus.COMPLETED] * 3 and time.monotonic() < deadline:
        pipeline.stack.schedules[RECONCILE].fire()  # getResponse for tasks open past OverdueAfterSeconds
        time.sleep(0.5)
    views = [pipeline.store.get_task(u) for u in uuids]
    assert [v.status if v else None for v in views] == [TaskStatus.COMPLETED] * 3
    assert all(v and len(v.results) == 2 for v in views)
    stats = pipeline.emulator.stats()
    assert [stats["executions"].get(u) for u in uuids] == [1, 1, 1]
    assert stats["max_executions"] == 1
