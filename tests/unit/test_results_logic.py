"""Job counting, results files and events on the fakes: each happens once per task / job.

The table's stream is stood in for by the changes the fake repositories record (a task that became
final, a job that became complete), each exactly once, as `adapters.dynamodb.stream.table_changes`
reads them from the real stream (tests/unit/test_dynamodb_stream.py).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import pytest

from runrelay.contract import InferenceResult
from runrelay.deadline import Deadline
from runrelay.domain.jobs import JobBecameComplete, TotalMismatch
from runrelay.domain.tasks import NewTask, SlotResult, TaskBecameFinal, TaskRecord, TaskStatus
from runrelay.results_file import ResultsWriter, TasksNotVisibleYet, result_line, results_key
from runrelay.results_logic import ResultsService
from runrelay.submit_logic import SubmitConfig, SubmitService
from runrelay.task_ids import task_uuid_for
from tests.support.fakes import (
    FakeEventPublisher,
    FakeJobRepository,
    FakeObjectWriter,
    FakeRunware,
    FakeTaskRepository,
)
from tests.support.finals import record_final

from .conftest import BUCKET

SOURCE = f"s3://{BUCKET}/incoming/batch.jsonl#etag1"
RESULTS_KEY = results_key("incoming/batch.jsonl")

Change = TaskBecameFinal | JobBecameComplete


class Harness:
    """The service on the fakes; `after(write)` gives the stream changes a write made."""

    def __init__(self, tasks: FakeTaskRepository, jobs: FakeJobRepository) -> None:
        self.tasks = tasks
        self.jobs = jobs
        self.objects = FakeObjectWriter()
        self.publisher = FakeEventPublisher()
        self.service = ResultsService(jobs, ResultsWriter(tasks, self.objects), self.publisher)

    def after(self, write: Callable[[], object]) -> list[Change]:
        """Run `write` and return the changes it made, in stream order."""
        self.tasks.drain_changes()
        self.jobs.drain_changes()
        write()
        changes: list[Change] = [*self.tasks.drain_changes(), *self.jobs.drain_changes()]
        return sorted(changes, key=lambda change: change.sequence_number)

    def record_total(self) -> None:
        self.jobs.record_total(SOURCE, 3, bucket=BUCKET, key="incoming/batch.jsonl", etag="etag1")

    def results_versions(self) -> list[bytes]:
        return self.objects.versions.get((BUCKET, RESULTS_KEY), [])


@pytest.fixture
def harness(tasks: FakeTaskRepository, jobs: FakeJobRepository) -> Harness:
    return Harness(tasks, jobs)


def _task(seq: int, number_results: int = 1, caller_id: str | None = None) -> NewTask:
    uuid = str(task_uuid_for(f"{SOURCE}:{seq}"))
    return NewTask(uuid, f"{SOURCE}:{seq}", SOURCE, seq, number_results=number_results, caller_id=caller_id)


def _result(task: NewTask, n: int) -> SlotResult:
    """Result `n` (from 1) of the task."""
    polled = InferenceResult.model_validate(
        {
            "taskType": "textInference",
            "taskUUID": task.task_uuid,
            "text": f"answer {n} of line {task.source_seq}",
            "finishReason": "stop",
            "seed": n,
            "cost": 0.001,
            "usage": {"promptTokens": 3, "completionTokens": 5, "totalTokens": 8},
        }
    )
    return SlotResult(task.task_uuid, n - 1, polled.as_document())


def _final_changes(harness: Harness) -> tuple[list[NewTask], list[Change]]:
    """Three tasks of one file made final the ways the stack does it; the changes that made them final."""
    tasks = harness.tasks
    two_results, rejected, failed = _task(1, 2, "a"), _task(3, caller_id="c"), _task(4)
    changes: list[Change] = []
    tasks.create_pending(two_results)
    tasks.store_result(_result(two_results, 1))
    changes += harness.after(lambda: tasks.store_result(_result(two_results, 2)))
    changes += harness.after(
        lambda: tasks.create_rejected(rejected, {"code": "bad", "message": "line 3: no"})
    )
    tasks.create_pending(failed)
    changes += harness.after(lambda: tasks.mark_failed(failed.task_uuid, {"code": "boom", "message": "x"}))
    assert len(changes) == 3
    return [two_results, rejected, failed], changes


def test_a_task_is_counted_once_however_often_it_is_recorded(harness: Harness) -> None:
    task = _task(1)
    harness.tasks.create_rejected(task, {"code": "bad", "message": "no"})
    outcomes = [record_final(harness.jobs, task.task_uuid, SOURCE, seq=task.source_seq) for _ in range(3)]
    assert outcomes == [True, False, False]
    job = harness.jobs.get(SOURCE)
    assert job is not None
    assert (job.finals, job.expected, job.complete) == (1, None, False)


def test_the_total_is_recorded_once_and_a_different_one_is_refused(harness: Harness) -> None:
    harness.jobs.record_total(SOURCE, 3, bucket=BUCKET, key="incoming/batch.jsonl", etag="etag1")
    harness.jobs.record_total(SOURCE, 3, bucket=BUCKET, key="incoming/batch.jsonl", etag="etag1")
    with pytest.raises(TotalMismatch):
        harness.jobs.record_total(SOURCE, 4, bucket=BUCKET, key="incoming/batch.jsonl", etag="etag1")
    job = harness.jobs.get(SOURCE)
    assert job is not None
    assert job.expected == 3


def test_duplicate_deliveries_write_one_file_and_one_event_each(harness: Harness) -> None:
    tasks, finals = _final_changes(harness)
    total = harness.after(harness.record_total)
    assert total == []  # nothing is final yet: the job is not complete
    assert harness.service.process(total).jobs_completed == []
    reports = []
    counted = harness.after(lambda: reports.append(harness.service.process(finals)))
    assert [type(change) for change in counted] == [JobBecameComplete]
    counted_report = reports[0]
    for _ in range(2):  # Lambda may deliver any record again
        report = harness.service.process([*finals, *counted, *total])
        assert report.task_events == 0
        assert (report.prompt_tokens, report.cost_usd) == (0, 0)  # tokens counted once per task
    assert harness.service.process(counted).jobs_completed == [SOURCE]  # a retried batch

    assert len(harness.results_versions()) == 1
    events = harness.publisher.published
    assert Counter(e.detail_type for e in events) == {"TaskCompleted": 3, "JobCompleted": 1}
    [job_event] = harness.publisher.of_type("JobCompleted")
    assert job_event["counts"] == {"total": 3, "COMPLETED": 1, "REJECTED": 1, "FAILED": 1}
    assert job_event["results"]["key"] == "results/incoming/batch.jsonl"
    assert harness.objects.content_types[(BUCKET, RESULTS_KEY)] == "application/x-ndjson"
    body = harness.objects.read(BUCKET, RESULTS_KEY)
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert [(r["line"], r["taskUUID"], r["status"]) for r in rows] == [
        (1, tasks[0].task_uuid, "COMPLETED"),
        (3, tasks[1].task_uuid, "REJECTED"),
        (4, tasks[2].task_uuid, "FAILED"),
    ]
    assert [r["text"] for r in rows[0]["results"]] == ["answer 1 of line 1", "answer 2 of line 1"]
    assert (counted_report.prompt_tokens, counted_report.completion_tokens) == (6, 10)
    assert counted_report.cost_usd == pytest.approx(0.002)
    assert rows[0]["usage"] == {"promptTokens": 6, "completionTokens": 10, "totalTokens": 16}
    assert rows[1]["error"] == {"code": "bad", "message": "line 3: no"}


def test_the_job_completes_when_the_total_comes_last(harness: Harness) -> None:
    _tasks, finals = _final_changes(harness)
    counted = harness.after(lambda: harness.service.process(finals))
    assert counted == []  # expected unknown yet: not complete
    assert harness.service.process(counted).jobs_completed == []
    total = harness.after(harness.record_total)
    assert [type(change) for change in total] == [JobBecameComplete]
    assert harness.service.process([*counted, *total]).jobs_completed == [SOURCE]
    assert len(harness.results_versions()) == 1


def test_a_failed_publish_retries_from_the_first_unsent_record_without_repeats(harness: Harness) -> None:
    _tasks, finals = _final_changes(harness)
    harness.publisher.fail_next(1)
    report = harness.service.process(finals)
    assert report.failed_sequence_number == finals[0].sequence_number
    assert harness.publisher.published == []
    job = harness.jobs.get(SOURCE)
    assert job is None  # nothing counted: the retry will count
    retry = harness.service.process(finals)
    assert retry.failed_sequence_number is None
    assert retry.tasks_counted == 3
    assert len(harness.publisher.published) == 3


def test_a_line_carries_pointers_for_offloaded_results() -> None:
    task = TaskRecord(
        task_uuid="u",
        status=TaskStatus.COMPLETED,
        source_id=SOURCE,
        source_seq=7,
        results=[  # oldest first, as the repositories read them (schema.task_record orders them)
            {"text": "hi", "receivedAt": 1, "cost": 0.25, "usage": {"totalTokens": 4}},
            {
                "payloadRef": "s3://b/completions/u/r2.json",
                "payloadBytes": 60000,
                "receivedAt": 2,
                "cost": 0.5,
            },
        ],
    )
    line = result_line(task)
    assert line["results"] == [
        {"text": "hi", "cost": 0.25, "usage": {"totalTokens": 4}},
        {"payloadRef": "s3://b/completions/u/r2.json", "payloadBytes": 60000, "cost": 0.5},
    ]
    assert (line["text"], line["cost"], line["usage"], line["callerId"]) == (
        None,
        0.75,
        {"totalTokens": 4},
        None,
    )


def test_submit_records_the_total_only_at_the_end_of_the_file(
    tasks: FakeTaskRepository, jobs: FakeJobRepository
) -> None:
    data = b"".join(json.dumps({"prompt": f"p{i}"}).encode() + b"\n\n" for i in range(25))  # blank lines too
    queue: list[str] = []
    svc = SubmitService(
        tasks,
        FakeRunware(),
        SubmitConfig(
            "https://hooks.example/", "s", max_tasks_per_request=10, continuation_reserve_seconds=3600
        ),
        open_object=lambda ref: io.BytesIO(data[ref.start_byte :]),
        enqueue=queue.append,
        jobs=jobs,
    )
    notification = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "b"},
                    "object": {"key": "big.jsonl", "eTag": "e", "size": len(data)},
                },
            }
        ]
    }
    assert svc.process_record("m", json.dumps(notification), Deadline.after(60)).continued
    assert jobs.get("s3://b/big.jsonl#e") is None  # the count is not known before the end
    while queue:
        svc.process_record("c", queue.pop(0), Deadline.after(60))
    job = jobs.get("s3://b/big.jsonl#e")
    assert job is not None
    assert (job.expected, job.bucket, job.key) == (25, "b", "big.jsonl")


def test_results_keys_mirror_input_keys_one_to_one() -> None:
    inputs = ["incoming/batch.jsonl", "incoming/story.txt", "incoming/story", "incoming/a.json"]
    keys = [results_key(key) for key in inputs]
    assert keys[0] == "results/incoming/batch.jsonl"
    assert len(set(keys)) == len(inputs)
    assert not any(key.startswith("incoming/") for key in keys)


def test_a_failed_job_announcement_is_retried_without_writing_the_file_again(harness: Harness) -> None:
    _tasks, finals = _final_changes(harness)
    harness.record_total()
    completed = harness.after(lambda: harness.service.process(finals))
    assert [type(change) for change in completed] == [JobBecameComplete]
    harness.publisher.fail_next(1)
    report = harness.service.process(completed)
    assert report.failed_sequence_number == completed[0].sequence_number
    assert len(harness.results_versions()) == 1  # written, then the JobCompleted event failed
    job = harness.jobs.get(SOURCE)
    assert job is not None
    assert (job.results_location, job.announced) == (f"s3://{BUCKET}/{RESULTS_KEY}", False)
    retry = harness.service.process(completed)
    assert (retry.failed_sequence_number, retry.jobs_completed) == (None, [SOURCE])
    assert len(harness.results_versions()) == 1
    assert len(harness.publisher.of_type("JobCompleted")) == 1
    job = harness.jobs.get(SOURCE)
    assert job is not None
    assert job.announced


def test_a_job_not_complete_when_its_change_comes_is_a_failure_to_retry(harness: Harness) -> None:
    harness.record_total()
    job = harness.jobs.get(SOURCE)
    assert job is not None
    report = harness.service.process([JobBecameComplete("000000000000000000042", job)])
    assert report.failed_sequence_number == "000000000000000000042"
    assert harness.results_versions() == []


def test_a_listed_task_that_cannot_be_read_yet_writes_no_file(harness: Harness) -> None:
    """A line can name a task whose row is not readable yet (its BySource entry a moment behind, so the
    line's own taskUUID is listed instead): the file waits rather than leave the task out."""
    tasks, _ = _final_changes(harness)

    class OneEntryBehind(FakeTaskRepository):
        def task_uuids_of_source(self, source_id: str) -> list[str]:
            listed = harness.tasks.task_uuids_of_source(source_id)
            return [
                str(task_uuid_for("not written")) if uuid == tasks[1].task_uuid else uuid for uuid in listed
            ]

        def tasks_in_order(
            self, task_uuids: Sequence[str], *, consistent: bool = True
        ) -> Iterator[TaskRecord]:
            return harness.tasks.tasks_in_order(task_uuids, consistent=consistent)

    writer = ResultsWriter(OneEntryBehind(), harness.objects)
    with pytest.raises(TasksNotVisibleYet, match="2 of 3 tasks could be read"):
        writer.write(SOURCE, 3, BUCKET, "incoming/batch.jsonl")
    assert harness.results_versions() == []
    written = ResultsWriter(harness.tasks, harness.objects).write(SOURCE, 3, BUCKET, "incoming/batch.jsonl")
    assert written.lines == 3
