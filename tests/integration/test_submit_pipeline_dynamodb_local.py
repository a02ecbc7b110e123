"""The submit pipeline on DynamoDB Local: chunks of one object overlap, and a failure stops them all."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.adapters.s3 import S3PayloadStore
from runrelay.contract import TextInferenceTask
from runrelay.deadline import Deadline
from runrelay.domain.tasks import TaskStatus
from runrelay.runware_client import SubmitOutcome
from runrelay.runware_errors import TransientRunwareError
from tests.support.fakes import FakeRunware
from tests.unit.test_submit_logic import s3_created_event, service


@pytest.fixture
def store(provisioned_stack: Any, aws_clients: Any) -> DynamoTaskRepository:
    payloads = S3PayloadStore(provisioned_stack.bucket_name, s3=aws_clients.s3)
    return DynamoTaskRepository(
        provisioned_stack.table_name, payloads=payloads, dynamodb=aws_clients.dynamodb
    )


class SlowRunware(FakeRunware):
    """Records how many POSTs were under way at once. With `meet`, the first `meet` POSTs wait for each
    other at a barrier: they only get through if that many chunks really run at the same time."""

    def __init__(self, fail_containing: str | None = None, meet: int = 0) -> None:
        super().__init__()
        self._count_lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.calls = 0
        self.fail_containing = fail_containing
        self._gate = threading.Barrier(meet, timeout=30) if meet else None

    def submit(self, tasks: list[TextInferenceTask], deadline: Deadline) -> SubmitOutcome:
        with self._count_lock:
            self.running += 1
            self.calls += 1
            first_ones = self.calls <= (self._gate.parties if self._gate else 0)
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if first_ones and self._gate:
                self._gate.wait()
            time.sleep(0.01)
            if self.fail_containing and any(self.fail_containing in str(t.messages) for t in tasks):
                raise TransientRunwareError(503, [], "busy")
            return super().submit(tasks, deadline)
        finally:
            with self._count_lock:
                self.running -= 1


def _object(count: int) -> bytes:
    return b"".join(json.dumps({"prompt": f"p{i}"}).encode() + b"\n" for i in range(count))


def test_chunks_of_an_object_overlap_up_to_the_depth(store: DynamoTaskRepository) -> None:
    runware = SlowRunware(meet=3)
    data = _object(60)
    svc = service(store, runware, {"o.jsonl": data}, max_tasks_per_request=5, chunks_in_flight=3)
    report = svc.process_record("m", s3_created_event("b", "o.jsonl", len(data)), Deadline.after(60))
    assert report.submitted == 60
    assert len(runware.requests) == 12
    assert runware.most_at_once == 3
    # Reports are added in input order whatever order the chunks finished in.
    views = {v.task_uuid: v.source_seq for v in store.tasks_of_source("s3://b/o.jsonl#e")}
    assert [views[u] for u in report.task_uuids] == list(range(1, 61))  # line numbers


def test_a_failed_chunk_fails_the_record_once_the_others_stopped(store: DynamoTaskRepository) -> None:
    runware = SlowRunware(fail_containing="'p23'")
    data = _object(60)
    svc = service(store, runware, {"o.jsonl": data}, max_tasks_per_request=5, chunks_in_flight=3)
    event = s3_created_event("b", "o.jsonl", len(data))
    with pytest.raises(TransientRunwareError):
        svc.process_record("m", event, Deadline.after(60))
    assert runware.running == 0  # nothing still writing or posting after the record failed
    first_pass = {t["taskUUID"] for r in runware.requests for t in r}
    # SQS redelivers the record: every open row is sent again (the failed chunk, any never started, and
    # those Runware took, which answer conflictTaskUUID), and each task is accepted, so run, once.
    runware.fail_containing = None
    svc.process_record("m", event, Deadline.after(60))
    sent = {t["taskUUID"] for r in runware.requests for t in r}
    assert first_pass < sent
    assert len(sent) == len(runware.known) == 60
    views = store.tasks_of_source("s3://b/o.jsonl#e")
    assert {v.status for v in views} == {TaskStatus.PENDING}
