"""Cancelling a source on the fakes: lines not yet sent end CANCELLED (with who and when), nothing more is
sent, every line still gets its row, and tasks Runware already has keep going."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest

from runrelay.contract import RunwareError
from runrelay.deadline import Deadline
from runrelay.domain.cancellations import Cancellation
from runrelay.domain.tasks import TaskStatus
from runrelay.inputs import control_message
from runrelay.reconcile_logic import ReconcileConfig, ReconcileService
from runrelay.runware_client import PollOutcome
from runrelay.runware_errors import TransientRunwareError
from runrelay.submit_logic import SubmitConfig, SubmitService
from runrelay.task_ids import result_task_uuid
from tests.support.fakes import FakeJobRepository, FakeRunware, FakeTaskRepository
from tests.support.s3_events import s3_created_event

SOURCE = "s3://b/in/batch.jsonl#e"


def service(
    tasks: FakeTaskRepository, runware: FakeRunware, jobs: FakeJobRepository, data: bytes = b""
) -> SubmitService:
    return SubmitService(
        tasks,
        runware,
        SubmitConfig(
            webhook_base_url="https://hooks.example/",
            webhook_secret="s",
            max_tasks_per_request=10,
            chunks_in_flight=1,
        ),
        open_object=lambda ref: io.BytesIO(data[ref.start_byte : ref.end_byte]),
        enqueue=lambda body: None,
        jobs=jobs,
    )


def s3_event(size: int) -> str:
    return s3_created_event("b", "in/batch.jsonl", size)


def jsonl(lines: int) -> bytes:
    return b"".join(json.dumps({"prompt": f"line {i}"}).encode() + b"\n" for i in range(lines))


def test_a_cancel_mid_file_sends_nothing_more_and_still_lists_every_line(
    tasks: FakeTaskRepository, runware: FakeRunware, jobs: FakeJobRepository
) -> None:
    data = jsonl(35)
    svc = service(tasks, runware, jobs, data)
    submit = runware.submit

    def submit_then_cancel(batch: list[Any], deadline: Deadline) -> Any:
        outcome = submit(batch, deadline)
        # The operator cancels while the first chunk is at Runware (the CLI sends this message).
        svc.process_record("ctl", control_message("cancel", SOURCE, "alice"), Deadline.after(60))
        return outcome

    runware.submit = submit_then_cancel  # type: ignore[method-assign]
    report = svc.process_record("m", s3_event(len(data)), Deadline.after(60))
    assert (report.submitted, report.cancelled) == (10, 25)
    assert len(runware.requests) == 1  # one POST: the chunk already on its way
    views = tasks.tasks_of_source(SOURCE)
    assert [v.status for v in views] == [TaskStatus.PENDING] * 10 + [TaskStatus.CANCELLED] * 25
    error = views[-1].error
    assert error is not None
    assert (error["code"], error["requestedBy"]) == ("cancelled", "alice")
    assert error["message"].startswith(f"{SOURCE} was cancelled by alice at ")
    assert views[-1].completed_at is not None
    job = jobs.get(SOURCE)
    assert job is not None
    assert job.expected == 35  # the job can still close: every line has a row


def test_a_source_cancelled_before_it_arrives_sends_nothing(
    tasks: FakeTaskRepository, runware: FakeRunware, jobs: FakeJobRepository
) -> None:
    svc = service(tasks, runware, jobs)
    svc.process_record("ctl", control_message("cancel", "sqs:m1", "bob"), Deadline.after(60))
    report = svc.process_record(
        "m1", json.dumps([{"prompt": "a"}, {"prompt": "b"}, {"oops": 1}]), Deadline.after(60)
    )
    assert (report.submitted, report.cancelled, report.rejected) == (0, 2, 1)
    assert runware.requests == []
    statuses = [v.status for v in tasks.tasks_of_source("sqs:m1")]
    assert statuses == [TaskStatus.CANCELLED, TaskStatus.CANCELLED, TaskStatus.REJECTED]  # bad input says why


def test_rows_left_pending_are_not_sent_again_and_cancelled_once_runware_says_it_never_had_them(
    tasks: FakeTaskRepository, runware: FakeRunware, jobs: FakeJobRepository
) -> None:
    """A PENDING row may be at Runware (nothing is written after a POST): a redelivery of a cancelled
    source sends it no more and leaves it open; the reconciler's poll tells. Never had: CANCELLED; had:
    its result is stored (billed, as cancel promises)."""
    svc = service(tasks, runware, jobs)
    runware.fail_next = 1  # the POST fails: the row stays PENDING and the record will come again
    body = json.dumps([{"prompt": "never sent"}, {"prompt": "sent"}])
    with pytest.raises(TransientRunwareError):  # SQS delivers the record again
        svc.process_record("m1", body, Deadline.after(60))
    never, sent = tasks.tasks_of_source("sqs:m1")
    assert (never.status, sent.status) == (TaskStatus.PENDING, TaskStatus.PENDING)
    svc.process_record("ctl", control_message("cancel", "sqs:m1", "carol"), Deadline.after(60))
    again = svc.process_record("m1", body, Deadline.after(60))
    assert (again.submitted, again.cancelled, again.already_known) == (0, 0, 2)
    assert runware.requests == []

    poll = PollOutcome(
        results=[FakeRunware.result(result_task_uuid(sent.task_uuid, 0), "ran anyway")],
        errors={result_task_uuid(never.task_uuid, 0): RunwareError(code="taskNotFound", message="unknown")},
    )
    runware.default_poll = poll
    reconciler = ReconcileService(tasks, runware, ReconcileConfig(overdue_after_seconds=0), jobs.cancellation)
    report = reconciler.run(Deadline.after(30), now=time.time() + 10)
    assert (report.cancelled, report.completed) == (1, 1)
    never, sent = tasks.tasks_of_source("sqs:m1")
    assert (never.status, sent.status) == (TaskStatus.CANCELLED, TaskStatus.COMPLETED)
    assert never.error is not None
    assert (never.error["code"], never.error["requestedBy"]) == ("cancelled", "carol")


def test_the_first_cancellation_is_kept(
    jobs: FakeJobRepository, tasks: FakeTaskRepository, runware: FakeRunware
) -> None:
    svc = service(tasks, runware, jobs)
    first = svc.process_record("c1", control_message("cancel", SOURCE, "alice"), Deadline.after(60))
    svc.process_record("c2", control_message("cancel", SOURCE, "bob"), Deadline.after(60))
    assert first.control == f"cancel {SOURCE} by alice"
    kept = jobs.cancellation(SOURCE)
    assert isinstance(kept, Cancellation)
    assert kept.requested_by == "alice"


def test_a_malformed_control_message_is_rejected_with_the_reason(
    tasks: FakeTaskRepository, runware: FakeRunware, jobs: FakeJobRepository
) -> None:
    svc = service(tasks, runware, jobs)
    report = svc.process_record(
        "c", json.dumps({"runrelayControl": {"action": "pause", "sourceId": SOURCE}}), Deadline.after(60)
    )
    assert report.rejected == 1
    [row] = tasks.tasks_of_source("sqs:c")
    assert row.status == TaskStatus.REJECTED
    assert row.error is not None
    assert row.error["code"] == "malformedControl"
    assert "action" in row.error["message"]
    assert jobs.cancellation(SOURCE) is None


def test_tasks_already_at_runware_keep_their_results(
    tasks: FakeTaskRepository, runware: FakeRunware, jobs: FakeJobRepository
) -> None:
    svc = service(tasks, runware, jobs)
    report = svc.process_record("m1", json.dumps({"prompt": "hi"}), Deadline.after(60))
    svc.process_record("ctl", control_message("cancel", "sqs:m1", "dave"), Deadline.after(60))
    [task_uuid] = report.task_uuids
    tasks.store_result(FakeRunware.result(task_uuid, "answer"))
    record = tasks.get_task(task_uuid)
    assert record is not None
    assert (record.status, [r["text"] for r in record.results]) == (TaskStatus.COMPLETED, ["answer"])
