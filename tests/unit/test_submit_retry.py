"""Retrying a file's failed lines on the fakes: only FAILED lines run again, each as a new attempt with
taskUUIDs of its own; the job is held while its tasks reopen, then completes again (a new results file
with the latest attempt per line, JobCompleted with the round); late answers to old attempts are
ignored; what cannot be retried is refused with a reason."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from pydantic import ValidationError

from runrelay.deadline import Deadline
from runrelay.domain.retries import RetryRequest
from runrelay.domain.tasks import SlotResult, StoreOutcome, TaskRecord, TaskStatus
from runrelay.inputs import ControlMessage, control_message
from runrelay.results_file import ResultsWriter
from runrelay.results_logic import ResultsService
from runrelay.submit_logic import SubmitConfig, SubmitService
from runrelay.task_ids import attempt_task_uuid, result_task_uuid
from runrelay.webhook_logic import WebhookReceiver
from runrelay.webhook_token import token_for, webhook_url_for
from tests.support.fakes import (
    FakeEventPublisher,
    FakeJobRepository,
    FakeObjectWriter,
    FakeRunware,
    FakeTaskRepository,
)
from tests.support.s3_events import s3_created_event

SOURCE = "s3://b/in/batch.jsonl#e"
SECRET = "s"


class Harness:
    """Submit, webhook and results services on one set of fakes, with the results stream pumped by hand."""

    def __init__(self, tasks: FakeTaskRepository, jobs: FakeJobRepository, runware: FakeRunware) -> None:
        self.tasks, self.jobs, self.runware = tasks, jobs, runware
        self.objects = FakeObjectWriter()
        self.events = FakeEventPublisher()
        self.data = b""
        self.etag_now = "e"
        self.submit = SubmitService(
            tasks,
            runware,
            SubmitConfig(
                webhook_base_url="https://hooks.example/", webhook_secret=SECRET, max_tasks_per_request=4
            ),
            open_object=self._open,
            enqueue=lambda body: None,
            jobs=jobs,
        )
        self.webhooks = WebhookReceiver(tasks, lambda: [SECRET])
        self.results = ResultsService(jobs, ResultsWriter(tasks, self.objects), self.events)

    def _open(self, ref: Any) -> io.BytesIO:
        if ref.if_match and ref.etag != self.etag_now:
            raise RuntimeError("PreconditionFailed")
        return io.BytesIO(self.data[ref.start_byte : ref.end_byte])

    def upload(self, lines: list[str]) -> None:
        self.data = "".join(line + "\n" for line in lines).encode()
        body = s3_created_event("b", "in/batch.jsonl", len(self.data))
        self.submit.process_record("m", body, Deadline.after(60))

    def control(self, action: str, **options: Any) -> Any:
        return self.submit.process_record(
            "ctl", control_message(action, SOURCE, "alice", **options), Deadline.after(60)
        )

    def answer_all(self, fail: dict[int, str] | None = None) -> None:
        """A webhook for every open task's current attempt: an error for the lines in `fail`."""
        for task in self.tasks.tasks_of_source(SOURCE):
            if task.status != TaskStatus.PENDING:
                continue
            self.webhook(task, error=(fail or {}).get(task.source_seq))

    def webhook(self, task: TaskRecord, *, attempt: int | None = None, error: str | None = None) -> Any:
        attempt = task.attempt if attempt is None else attempt
        runware_uuid = result_task_uuid(task.task_uuid, 0, attempt)
        url = webhook_url_for("https://hooks.example/", SECRET, task.task_uuid, 0, attempt)
        query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
        if error:
            body = {"taskType": "textInference", "taskUUID": runware_uuid, "status": "error"}
            body["error"] = {"code": error, "message": "the provider timed out"}
        else:
            body = {
                "taskType": "textInference",
                "taskUUID": runware_uuid,
                "text": f"answer {task.source_seq}",
            }
        reply, _ = self.webhooks.receive(
            json.dumps({"data": [body]}),
            query["token"],
            task=query.get("task"),
            slot=query.get("result"),
            attempt=query.get("attempt"),
        )
        self.pump()
        return reply

    def pump(self) -> None:
        """Deliver the table's changes to the results service, as the stream does."""
        while changes := [*self.tasks.drain_changes(), *self.jobs.drain_changes()]:
            report = self.results.process(changes)
            assert report.failed_sequence_number is None

    def statuses(self) -> list[TaskStatus]:
        return [task.status for task in self.tasks.tasks_of_source(SOURCE)]


@pytest.fixture
def harness(tasks: FakeTaskRepository, jobs: FakeJobRepository, runware: FakeRunware) -> Harness:
    return Harness(tasks, jobs, runware)


def lines(count: int) -> list[str]:
    return [json.dumps({"prompt": f"line {n}"}) for n in range(1, count + 1)]


def sent_uuids(runware: FakeRunware) -> list[str]:
    return [task["taskUUID"] for request in runware.requests for task in request]


def test_a_retry_runs_only_the_failed_lines_as_new_attempts_and_completes_the_job_again(
    harness: Harness,
) -> None:
    harness.upload([*lines(5), "not json"])
    harness.answer_all(fail={2: "timeoutProvider", 4: "providerError"})
    assert harness.statuses() == [
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.COMPLETED,
        TaskStatus.REJECTED,
    ]
    [first_job] = harness.events.of_type("JobCompleted")
    assert first_job["counts"] == {"total": 6, "COMPLETED": 3, "FAILED": 2, "REJECTED": 1}
    before = sent_uuids(harness.runware)

    report = harness.control("retry")
    assert (report.retried, report.submitted, report.refused) == (2, 2, None)
    again = sent_uuids(harness.runware)[len(before) :]
    failed = [t for t in harness.tasks.tasks_of_source(SOURCE) if t.source_seq in (2, 4)]
    assert again == [attempt_task_uuid(t.task_uuid, 1) for t in failed]  # only the failed lines, new UUIDs
    assert not set(again) & set(before)
    job = harness.jobs.get(SOURCE)
    assert job is not None
    assert (job.retry_round, job.held, job.complete, job.finals) == (1, False, False, 4)

    harness.answer_all()
    assert harness.statuses()[:5] == [TaskStatus.COMPLETED] * 5
    second_job = harness.events.of_type("JobCompleted")[-1]
    assert second_job["round"] == 1
    assert second_job["eventKey"] == f"JobCompleted#{SOURCE}#round1"
    assert second_job["counts"] == {"total": 6, "COMPLETED": 5, "REJECTED": 1}
    written = [json.loads(line) for line in harness.objects.read("b", "results/in/batch.jsonl").splitlines()]
    assert [line["attempt"] for line in written] == [0, 1, 0, 1, 0, 0]
    assert written[1]["text"] == "answer 2"
    assert written[1]["earlierAttempts"][0]["error"]["code"] == "timeoutProvider"
    assert written[1]["earlierAttempts"][0]["taskUUID"] == failed[0].task_uuid
    task_events = [e for e in harness.events.of_type("TaskCompleted") if e["taskUUID"] == failed[0].task_uuid]
    assert [(e["status"], e["attempt"]) for e in task_events] == [("FAILED", 0), ("COMPLETED", 1)]


def test_retry_options_pick_error_codes_and_cap_attempts(harness: Harness) -> None:
    harness.upload(lines(3))
    harness.answer_all(fail={1: "timeoutProvider", 2: "invalidPrompt"})
    report = harness.control("retry", errorCodes=["timeoutProvider"], maxAttempts=2)
    assert report.retried == 1
    harness.answer_all(fail={1: "timeoutProvider"})  # fails again, on its second and last attempt
    assert harness.statuses() == [TaskStatus.FAILED, TaskStatus.FAILED, TaskStatus.COMPLETED]
    capped = harness.control("retry", errorCodes=["timeoutProvider"], maxAttempts=2)
    assert (capped.retried, capped.refused) == (0, "nothing to retry: no failed line matches")
    third = harness.control("retry")  # no cap given: the default allows more attempts
    assert third.retried == 2
    assert {t.source_seq: t.attempt for t in harness.tasks.tasks_of_source(SOURCE)} == {1: 2, 2: 1, 3: 0}


def test_a_late_answer_to_an_old_attempt_changes_nothing(harness: Harness) -> None:
    harness.upload(lines(1))
    harness.answer_all(fail={1: "timeoutProvider"})
    harness.control("retry")
    [task] = harness.tasks.tasks_of_source(SOURCE)
    reply = harness.webhook(task, attempt=0)  # attempt 0's result, arriving after all
    assert reply.body["outcomes"] == [StoreOutcome.IGNORED.value]
    failure = harness.webhook(task, attempt=0, error="timeoutProvider")
    assert failure.body["outcomes"] == [StoreOutcome.IGNORED.value]
    [task] = harness.tasks.tasks_of_source(SOURCE)
    assert (task.status, task.attempt, task.results) == (TaskStatus.PENDING, 1, [])
    assert (
        harness.tasks.store_result(SlotResult(task.task_uuid, 0, {"text": "x"}, attempt=1))
        == StoreOutcome.COMPLETED
    )


def test_a_running_job_a_cancelled_file_and_an_unknown_source_are_refused(harness: Harness) -> None:
    harness.upload(lines(2))
    running = harness.control("retry")
    assert running.refused is not None
    assert "still running" in running.refused
    unknown = harness.submit.process_record(
        "ctl", control_message("retry", "s3x:elsewhere", "alice"), Deadline.after(60)
    )
    assert unknown.refused is not None
    assert "a source is a file" in unknown.refused
    harness.answer_all(fail={1: "timeoutProvider"})
    harness.control("cancel")
    cancelled = harness.control("retry")
    assert cancelled.refused == "the file was cancelled"
    assert harness.statuses() == [TaskStatus.FAILED, TaskStatus.COMPLETED]


def test_a_changed_file_reopens_nothing(harness: Harness) -> None:
    harness.upload(lines(2))
    harness.answer_all(fail={1: "timeoutProvider"})
    harness.etag_now = "other"  # the key now holds other bytes: the lines cannot be read back
    with pytest.raises(RuntimeError):
        harness.control("retry")
    assert harness.statuses() == [TaskStatus.FAILED, TaskStatus.COMPLETED]
    job = harness.jobs.get(SOURCE)
    assert job is not None
    assert (job.retry_round, job.held) == (0, False)


def test_a_round_cut_short_is_carried_on_by_the_redelivered_message(harness: Harness) -> None:
    harness.upload(lines(3))
    harness.answer_all(fail={1: "timeoutProvider", 3: "timeoutProvider"})
    harness.runware.fail_next = 1  # the POST of the retried lines fails: the message comes again
    with pytest.raises(Exception, match="busy"):
        harness.control("retry")
    job = harness.jobs.get(SOURCE)
    assert job is not None
    assert (job.retry_round, job.held) == (1, True)  # held: no results file while the round is unsent
    assert harness.statuses() == [TaskStatus.PENDING, TaskStatus.COMPLETED, TaskStatus.PENDING]
    again = harness.control("retry")
    assert (again.retried, again.submitted) == (0, 2)  # nothing reopened twice; the unsent ones sent
    harness.answer_all()
    assert harness.statuses() == [TaskStatus.COMPLETED] * 3
    assert [e["round"] for e in harness.events.of_type("JobCompleted")] == [0, 1]


def test_control_message_options_are_checked() -> None:
    retry = ControlMessage.model_validate(
        {"action": "retry", "sourceId": SOURCE, "errorCodes": ["timeoutProvider"], "maxAttempts": 3}
    )
    assert retry.retry_request() == RetryRequest(SOURCE, "unknown", frozenset({"timeoutProvider"}), 3)
    for bad in (
        {"action": "cancel", "sourceId": SOURCE, "maxAttempts": 3},
        {"action": "retry", "sourceId": SOURCE, "maxAttempts": 1},
        {"action": "retry", "sourceId": SOURCE, "errorCodes": []},
    ):
        with pytest.raises(ValidationError):
            ControlMessage.model_validate(bad)


def test_an_attempts_webhook_address_must_derive_its_task_uuid(harness: Harness) -> None:
    harness.upload(lines(1))
    harness.answer_all(fail={1: "timeoutProvider"})
    harness.control("retry")
    [task] = harness.tasks.tasks_of_source(SOURCE)
    runware_uuid = attempt_task_uuid(task.task_uuid, 1)
    body = json.dumps({"data": [{"taskType": "textInference", "taskUUID": runware_uuid, "text": "x"}]})
    token = token_for(SECRET, runware_uuid)
    wrong, _ = harness.webhooks.receive(body, token, task=task.task_uuid, slot="0", attempt="2")
    assert (wrong.status, wrong.body["error"]) == (403, "invalidAddress")
    malformed, _ = harness.webhooks.receive(body, token, task=task.task_uuid, slot="0", attempt="x")
    assert (malformed.status, malformed.body["error"]) == (400, "invalidAddress")
    right, _ = harness.webhooks.receive(body, token, task=task.task_uuid, slot="0", attempt="1")
    assert right.body["outcomes"] == [StoreOutcome.COMPLETED.value]


def test_an_sqs_messages_failed_tasks_are_rebuilt_from_their_kept_specs(harness: Harness) -> None:
    body = json.dumps([{"id": "a", "prompt": "first", "seed": 7}, {"id": "b", "prompt": "second"}])
    harness.submit.process_record("m1", body, Deadline.after(60))
    first, second = harness.tasks.tasks_of_source("sqs:m1")
    assert first.spec == {"id": "a", "prompt": "first", "seed": 7, "numberResults": 1}
    harness.webhook(first, error="timeoutProvider")
    harness.webhook(second)
    before = sent_uuids(harness.runware)
    report = harness.submit.process_record(
        "ctl", control_message("retry", "sqs:m1", "alice"), Deadline.after(60)
    )
    assert (report.retried, report.submitted, report.refused) == (1, 1, None)
    [request] = [task for batch in harness.runware.requests[-1:] for task in batch]
    assert request["taskUUID"] == attempt_task_uuid(first.task_uuid, 1)
    assert (request["seed"], request["messages"]) == (7, [{"role": "user", "content": "first"}])
    assert "attempt=1" in request["webhookURL"]
    assert sent_uuids(harness.runware)[: len(before)] == before
    [retried] = [t for t in harness.tasks.tasks_of_source("sqs:m1") if t.source_seq == 1]
    harness.webhook(retried)
    assert [t.status for t in harness.tasks.tasks_of_source("sqs:m1")] == [TaskStatus.COMPLETED] * 2
    again = harness.submit.process_record(
        "ctl", control_message("retry", "sqs:m1", "alice"), Deadline.after(60)
    )
    assert again.refused == "nothing to retry: no failed task matches"
