"""The ports' contract: one set of tests, run on the real adapters and on the fakes the services' unit tests
use (tests/support/fakes.py), so that a fake cannot drift from what it stands in for.

Real adapters: the DynamoDB repositories on DynamoDB Local (one table per module, made from
template.yaml; every test uses its own taskUUIDs and sources), S3 and EventBridge on the moto server.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import pytest

from runrelay.adapters.dynamodb.budgets import DynamoSpendLedger
from runrelay.adapters.dynamodb.jobs import DynamoJobRepository
from runrelay.adapters.dynamodb.tasks import INLINE_RESULT_LIMIT, DynamoTaskRepository
from runrelay.adapters.dynamodb.throttle import DynamoThrottleStore
from runrelay.adapters.eventbridge import EventBridgePublisher
from runrelay.adapters.s3 import S3PayloadStore
from runrelay.adapters.s3_uploads import S3ObjectWriter
from runrelay.domain.budgets import Budget, Reservation, Settlement
from runrelay.domain.events import Event
from runrelay.domain.jobs import TotalMismatch
from runrelay.domain.retries import Reopened, RetryRefused
from runrelay.domain.tasks import (
    TRANSITIONS,
    NewTask,
    SlotResult,
    StoreOutcome,
    TaskRecord,
    TaskStatus,
    may_move,
)
from runrelay.domain.throttle import Throttle
from runrelay.ports import (
    EventPublisher,
    JobRepository,
    ObjectWriter,
    PayloadStore,
    SpendLedger,
    TaskRepository,
    ThrottleStore,
)
from runrelay.task_ids import task_uuid_for
from runrelay.webhook_results import WebhookResult
from tests.support import fakes
from tests.support.finals import final_line, final_recorded, record_final

IMPLEMENTATIONS = ["adapter", "fake"]


# ==== the implementations under test =================================================================


@pytest.fixture(scope="module")
def table(aws_clients: Any) -> Iterator[str]:
    from local.stack.template_model import load_template, table_create_kwargs

    name = f"contract-{uuid.uuid4().hex[:10]}"
    aws_clients.dynamodb.create_table(**table_create_kwargs(load_template(), "TasksTable", name))
    yield name
    aws_clients.dynamodb.delete_table(TableName=name)


@pytest.fixture(scope="module")
def bucket(aws_clients: Any) -> str:
    name = f"contract-{uuid.uuid4().hex[:10]}"
    aws_clients.s3.create_bucket(Bucket=name)
    return name


@dataclass
class Backend:
    """One implementation of every storage port, sharing one table and one payload store."""

    kind: str
    payloads: PayloadStore
    _tasks: Callable[[], TaskRepository]
    jobs: JobRepository

    def tasks(self) -> TaskRepository:
        return self._tasks()


@pytest.fixture(params=IMPLEMENTATIONS)
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "fake":
        fake_payloads = fakes.FakePayloadStore()
        fake_jobs = fakes.FakeJobRepository()
        return Backend(
            "fake",
            fake_payloads,
            lambda: fakes.FakeTaskRepository(payloads=fake_payloads, jobs=fake_jobs),
            fake_jobs,
        )
    clients = request.getfixturevalue("aws_clients")
    name = request.getfixturevalue("table")
    s3_payloads = S3PayloadStore(request.getfixturevalue("bucket"), s3=clients.s3)
    return Backend(
        "adapter",
        s3_payloads,
        lambda: DynamoTaskRepository(name, payloads=s3_payloads, dynamodb=clients.dynamodb),
        DynamoJobRepository(name, dynamodb=clients.dynamodb),
    )


@pytest.fixture
def tasks(backend: Backend) -> TaskRepository:
    return backend.tasks()


@pytest.fixture
def jobs(backend: Backend) -> JobRepository:
    return backend.jobs


@pytest.fixture
def source() -> str:
    """A source no other test writes to."""
    return f"s3://contract/{uuid.uuid4().hex}.jsonl#etag"


def new_task(source: str = "src", seq: int = 1, number_results: int = 1, **extra: Any) -> NewTask:
    key = f"{source}:{seq}:{uuid.uuid4().hex}"
    return NewTask(str(task_uuid_for(key)), key, source, seq, number_results=number_results, **extra)


def result(task_uuid: str, text: str = "hello", slot: int = 0, **fields: Any) -> WebhookResult:
    """Result `slot` of a task, as the webhook receiver hands it over."""
    parsed = WebhookResult.parse({"taskUUID": task_uuid, "text": text, **fields}, task_uuid)
    return replace(parsed, slot=slot)


def status_of(tasks: TaskRepository, task_uuid: str) -> TaskStatus | None:
    record = tasks.get_task(task_uuid, resolve_payloads=False)
    return record.status if record else None


# ==== TaskRepository: creation =======================================================================


def test_creation_is_conditional_and_answers_the_status_there(tasks: TaskRepository) -> None:
    task, refused = new_task(), new_task(seq=2)
    assert tasks.create_many([(task, None)]) == [None]
    assert tasks.create_many([(task, None)]) == [TaskStatus.PENDING]
    assert tasks.store_result(result(task.task_uuid)) == StoreOutcome.COMPLETED
    error = {"code": "invalidTaskSpec", "message": "line 2: no prompt"}
    fresh = new_task(seq=3)
    assert tasks.create_many([(task, None), (refused, error), (fresh, None)]) == [
        TaskStatus.COMPLETED,
        None,
        None,
    ]
    assert tasks.create_many([(refused, None)]) == [TaskStatus.REJECTED]  # never overwritten
    record = tasks.get_task(refused.task_uuid)
    assert record is not None
    assert (record.status, record.error, record.completed_at) == (TaskStatus.REJECTED, error, None)
    assert status_of(tasks, fresh.task_uuid) == TaskStatus.PENDING


def test_a_new_task_reads_back_as_written(tasks: TaskRepository) -> None:
    task = new_task("sqs:m1", 4, 2, caller_id="caller-1", metadata={"team": "a", "n": 2})
    before = time.time()
    tasks.create_many([(task, None)])
    record = tasks.get_task(task.task_uuid)
    assert record is not None
    assert (record.task_uuid, record.status, record.source_id, record.source_seq) == (
        task.task_uuid,
        TaskStatus.PENDING,
        "sqs:m1",
        4,
    )
    assert (record.idempotency_key, record.number_results, record.result_count) == (
        task.idempotency_key,
        2,
        0,
    )
    assert (record.caller_id, record.metadata, record.error, record.results) == (
        "caller-1",
        {"team": "a", "n": 2},
        None,
        [],
    )
    assert record.created_at is not None
    assert before - 1 <= record.created_at <= time.time() + 1
    assert (record.submitted_at, record.completed_at) == (None, None)
    assert record.started_at == record.created_at
    assert tasks.get_task(str(uuid.uuid4())) is None


# ==== TaskRepository: transitions ====================================================================


def _task_in(tasks: TaskRepository, status: TaskStatus) -> str:
    """A task brought to `status` through the port."""
    task = new_task()
    error = {"code": "bad", "message": "refused"} if status == TaskStatus.REJECTED else None
    cancelled = {"code": "cancelled", "message": "by test"} if status == TaskStatus.CANCELLED else None
    assert tasks.create_many([(task, error)], cancelled=cancelled) == [None]
    if status == TaskStatus.COMPLETED:
        assert tasks.store_result(result(task.task_uuid)) == StoreOutcome.COMPLETED
    elif status == TaskStatus.FAILED:
        assert tasks.mark_failed(task.task_uuid, {"code": "boom", "message": "x"})
    assert status_of(tasks, task.task_uuid) == status
    return task.task_uuid


def _move(tasks: TaskRepository, task_uuid: str, to: TaskStatus) -> bool:
    if to == TaskStatus.FAILED:
        return tasks.mark_failed(task_uuid, {"code": "late", "message": "failed"})
    if to == TaskStatus.REJECTED:
        return tasks.mark_rejected(task_uuid, {"code": "late", "message": "rejected"})
    if to == TaskStatus.CANCELLED:
        return tasks.mark_cancelled(task_uuid, {"code": "cancelled", "message": "cancelled"})
    return tasks.store_result(result(task_uuid, "another text")) == StoreOutcome.COMPLETED


# What the port can move a task to, and from (a SUBMITTED row is one an earlier version wrote: nothing
# makes one now).
_MOVES_TO = [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.REJECTED, TaskStatus.CANCELLED]


@pytest.mark.parametrize("to", _MOVES_TO)
@pytest.mark.parametrize("current", [s for s in TRANSITIONS if s != TaskStatus.SUBMITTED])
def test_a_task_moves_along_the_domains_transitions_only(
    tasks: TaskRepository, current: TaskStatus, to: TaskStatus
) -> None:
    task_uuid = _task_in(tasks, current)
    moved = _move(tasks, task_uuid, to)
    assert moved == may_move(current, to)
    assert status_of(tasks, task_uuid) == (to if moved else current)


def test_cancelled_rows_keep_who_and_when_and_rejections_stay_rejections(tasks: TaskRepository) -> None:
    cancelled = {"code": "cancelled", "message": "src was cancelled by alice", "requestedBy": "alice"}
    fine, bad = new_task(seq=1), new_task(seq=2)
    refused = {"code": "bad", "message": "no"}
    assert tasks.create_many([(fine, None), (bad, refused)], cancelled=cancelled) == [None, None]
    row, rejected = tasks.get_task(fine.task_uuid), tasks.get_task(bad.task_uuid)
    assert row is not None
    assert rejected is not None
    assert (row.status, row.error) == (TaskStatus.CANCELLED, cancelled)
    assert row.completed_at is not None
    assert (rejected.status, rejected.error) == (TaskStatus.REJECTED, refused)


def test_a_sources_first_cancellation_is_kept(jobs: JobRepository, source: str) -> None:
    assert jobs.cancellation(source) is None
    first = jobs.cancel_source(source, "alice", 1_700_000_000.5)
    assert jobs.cancel_source(source, "bob", 1_700_000_100.0) == first
    assert jobs.cancellation(source) == first
    assert (first.source_id, first.requested_by, first.requested_at) == (source, "alice", 1_700_000_000.5)


def test_transitions_of_a_task_that_does_not_exist_refuse(tasks: TaskRepository) -> None:
    missing = str(uuid.uuid4())
    assert tasks.mark_failed(missing, {"code": "x"}) is False
    assert tasks.mark_rejected(missing, {"code": "x"}) is False
    assert tasks.get_task(missing) is None  # nothing created


def test_a_failure_keeps_its_error_and_completion_time(tasks: TaskRepository) -> None:
    task_uuid = _task_in(tasks, TaskStatus.PENDING)
    error = {"code": "timeoutProvider", "message": "slow", "taskUUID": task_uuid}
    assert tasks.mark_failed(task_uuid, error)
    assert tasks.mark_failed(task_uuid, {"code": "again"}) is False
    record = tasks.get_task(task_uuid)
    assert record is not None
    assert (record.status, record.error) == (TaskStatus.FAILED, error)
    assert record.completed_at is not None


# ==== TaskRepository: results =========================================================================


def test_one_result_completes_and_its_redelivery_is_a_duplicate(tasks: TaskRepository) -> None:
    task_uuid = _task_in(tasks, TaskStatus.PENDING)
    first = result(task_uuid, "hi", seed=1, cost=0.001, usage={"promptTokens": 2}, futureField={"a": 1.5})
    assert tasks.store_result(first) == StoreOutcome.COMPLETED
    assert tasks.store_result(first) == StoreOutcome.DUPLICATE
    record = tasks.get_task(task_uuid)
    assert record is not None
    assert (record.status, record.result_count) == (TaskStatus.COMPLETED, 1)
    assert record.completed_at is not None
    [stored] = record.results
    assert {k: v for k, v in stored.items() if k != "receivedAt"} == {
        "text": "hi",
        "seed": 1,
        "cost": 0.001,
        "usage": {"promptTokens": 2},
        "futureField": {"a": 1.5},
    }
    assert isinstance(stored["receivedAt"], int | float)


def test_numbers_of_results_complete_once_all_are_in(tasks: TaskRepository) -> None:
    task = new_task(number_results=2)
    tasks.create_many([(task, None)])
    one, two, three = (result(task.task_uuid, f"text {n}", n - 1, seed=n) for n in (1, 2, 3))
    assert tasks.store_result(one) == StoreOutcome.STORED
    assert status_of(tasks, task.task_uuid) == TaskStatus.PENDING
    assert tasks.store_result(one) == StoreOutcome.DUPLICATE
    assert tasks.store_result(two) == StoreOutcome.COMPLETED
    assert tasks.store_result(three) == StoreOutcome.STORED  # kept, the task completed once
    assert tasks.store_result(two) == StoreOutcome.DUPLICATE
    record = tasks.get_task(task.task_uuid)
    assert record is not None
    assert (record.status, record.result_count) == (TaskStatus.COMPLETED, 3)
    assert [r["text"] for r in record.results] == ["text 1", "text 2", "text 3"]  # in slot order


@pytest.mark.parametrize("final", [TaskStatus.FAILED, TaskStatus.REJECTED])
def test_a_late_result_of_a_failed_or_rejected_task_is_kept_and_never_completes_it(
    tasks: TaskRepository, final: TaskStatus
) -> None:
    task_uuid = _task_in(tasks, final)
    late = result(task_uuid, "too late")
    assert tasks.store_result(late) == StoreOutcome.STORED
    assert tasks.store_result(late) == StoreOutcome.DUPLICATE
    record = tasks.get_task(task_uuid)
    assert record is not None
    assert (record.status, record.result_count, [r["text"] for r in record.results]) == (
        final,
        1,
        ["too late"],
    )


def test_a_result_for_an_unknown_task_is_kept_in_an_orphan_row(tasks: TaskRepository) -> None:
    task_uuid = str(uuid.uuid4())
    assert tasks.store_result(result(task_uuid, "first")) == StoreOutcome.COMPLETED
    assert tasks.store_result(result(task_uuid, "first")) == StoreOutcome.DUPLICATE
    assert tasks.store_result(result(task_uuid, "second", 1)) == StoreOutcome.STORED
    record = tasks.get_task(task_uuid)
    assert record is not None
    assert (record.status, record.source_id, record.source_seq, record.idempotency_key) == (
        TaskStatus.COMPLETED,
        f"orphan:{task_uuid}",
        0,
        f"orphan:{task_uuid}",
    )
    assert [r["text"] for r in record.results] == ["first", "second"]
    assert task_uuid not in set(tasks.open_tasks_since_before(2**31, limit=100_000))


def test_concurrent_deliveries_store_each_result_once(tasks: TaskRepository) -> None:
    created = [new_task(seq=i, number_results=3) for i in range(4)]
    tasks.create_many([(task, None) for task in created])
    deliveries = [result(t.task_uuid, f"{t.task_uuid} {n}", n, seed=n) for t in created for n in range(3)] * 3
    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(tasks.store_result, deliveries))
    assert outcomes.count(StoreOutcome.COMPLETED) == 4
    assert outcomes.count(StoreOutcome.STORED) == 8
    assert outcomes.count(StoreOutcome.DUPLICATE) == 24
    for task in created:
        record = tasks.get_task(task.task_uuid)
        assert record is not None
        assert (record.status, record.result_count, len(record.results)) == (TaskStatus.COMPLETED, 3, 3)


def test_a_large_text_goes_to_the_payload_store_and_reads_back(backend: Backend) -> None:
    tasks = backend.tasks()
    task_uuid = _task_in(tasks, TaskStatus.PENDING)
    big = "x" * (INLINE_RESULT_LIMIT + 10)
    assert tasks.store_result(result(task_uuid, big, seed=3, cost=0.5)) == StoreOutcome.COMPLETED
    resolved = tasks.get_task(task_uuid)
    assert resolved is not None
    assert resolved.results[0]["text"] == big
    [unresolved] = tasks.tasks_in_order([task_uuid])
    [pointer] = unresolved.results
    assert "text" not in pointer
    assert (pointer["seed"], pointer["cost"]) == (3, 0.5)
    assert pointer["payloadRef"].startswith("s3://")
    assert f"/completions/{task_uuid}/" in pointer["payloadRef"]
    body = json.loads(backend.payloads.get(pointer["payloadRef"]))
    assert body["text"] == big
    assert pointer["payloadBytes"] == len(backend.payloads.get(pointer["payloadRef"]))
    raw = tasks.get_task(task_uuid, resolve_payloads=False)
    assert raw is not None
    assert "text" not in raw.results[0]


# ==== TaskRepository: reads ===========================================================================


def test_a_sources_tasks_come_in_input_order(tasks: TaskRepository, source: str) -> None:
    created = [new_task(source, seq) for seq in (3, 1, 2)]
    tasks.create_many([(created[0], None), (created[1], {"code": "bad", "message": "no"})])
    tasks.create_many([(created[2], None)])
    tasks.create_many([(new_task(f"{source}-other", 0), None)])
    by_seq = {task.source_seq: task.task_uuid for task in created}
    assert tasks.task_uuids_of_source(source) == [by_seq[1], by_seq[2], by_seq[3]]
    assert tasks.task_uuids_of_source(f"{source}-none") == []


def test_tasks_come_in_the_order_asked_without_the_missing_ones(tasks: TaskRepository) -> None:
    created = [new_task(seq=seq) for seq in range(3)]
    tasks.create_many([(task, None) for task in created])
    asked = [created[2].task_uuid, str(uuid.uuid4()), created[0].task_uuid, created[1].task_uuid]
    records = list(tasks.tasks_in_order(asked))
    assert [r.task_uuid for r in records] == [asked[0], asked[2], asked[3]]
    assert [r.source_seq for r in records] == [2, 0, 1]
    assert list(tasks.tasks_in_order([])) == []


def test_many_tasks_come_in_order_past_a_batch(tasks: TaskRepository) -> None:
    created = [new_task(seq=seq) for seq in range(130)]
    for start in range(0, 130, 100):
        tasks.create_many([(task, None) for task in created[start : start + 100]])
    asked = [task.task_uuid for task in reversed(created)]
    assert [r.task_uuid for r in tasks.tasks_in_order(asked)] == asked


def test_open_tasks_since_before_a_cutoff(tasks: TaskRepository) -> None:
    pending, other = _task_in(tasks, TaskStatus.PENDING), _task_in(tasks, TaskStatus.PENDING)
    finals = [_task_in(tasks, s) for s in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.REJECTED)]
    mine = {pending, other, *finals}
    later = int(time.time()) + 10
    overdue = set(tasks.open_tasks_since_before(later, limit=100_000)) & mine
    # Every open task; a final one may be listed too until its final is recorded (the caller reads them).
    assert {pending, other} <= overdue
    earlier = int(time.time()) - 60
    assert set(tasks.open_tasks_since_before(earlier, limit=100_000)) & mine == set()


def test_open_tasks_since_before_stops_at_the_limit(tasks: TaskRepository) -> None:
    for _ in range(3):
        _task_in(tasks, TaskStatus.PENDING)
    assert len(list(tasks.open_tasks_since_before(int(time.time()) + 10, limit=2))) == 2


# ==== TaskRepository: a result's identity is its slot =================================================


def test_identical_results_in_two_slots_are_two_results(tasks: TaskRepository) -> None:
    task = new_task(number_results=3)
    tasks.create_many([(task, None)])
    same = {"finishReason": "stop"}  # no seed: a short deterministic answer, twice
    outcomes = [tasks.store_result(result(task.task_uuid, "4", slot, **same)) for slot in (2, 0, 2, 1)]
    assert outcomes == [
        StoreOutcome.STORED,
        StoreOutcome.STORED,
        StoreOutcome.DUPLICATE,
        StoreOutcome.COMPLETED,
    ]
    record = tasks.get_task(task.task_uuid)
    assert record is not None
    assert (record.status, record.result_count) == (TaskStatus.COMPLETED, 3)
    assert [entry["text"] for entry in record.results] == ["4", "4", "4"]


def test_results_come_back_in_slot_order(tasks: TaskRepository) -> None:
    task = new_task(number_results=3)
    tasks.create_many([(task, None)])
    for slot in (1, 2, 0):
        tasks.store_result(result(task.task_uuid, f"answer {slot}", slot))
    record = tasks.get_task(task.task_uuid)
    assert record is not None
    assert [entry["text"] for entry in record.results] == ["answer 0", "answer 1", "answer 2"]


# ==== JobRepository ===================================================================================


def test_a_total_is_recorded_once_and_another_is_refused(jobs: JobRepository, source: str) -> None:
    assert jobs.get(source) is None
    jobs.record_total(source, 3, bucket="in", key="batch.jsonl", etag="etag")
    jobs.record_total(source, 3, bucket="in", key="batch.jsonl", etag="etag")  # idempotent
    with pytest.raises(TotalMismatch):
        jobs.record_total(source, 4, bucket="in", key="batch.jsonl", etag="etag")
    job = jobs.get(source)
    assert job is not None
    assert (job.source_id, job.expected, job.finals, job.bucket, job.key, job.etag) == (
        source,
        3,
        0,
        "in",
        "batch.jsonl",
        "etag",
    )
    assert (job.complete, job.results_location, job.results_counts, job.announced) == (
        False,
        None,
        None,
        False,
    )


def test_a_final_task_is_recorded_and_counted_once(jobs: JobRepository, source: str) -> None:
    task_uuid = str(uuid.uuid4())
    assert final_recorded(jobs, task_uuid, source) is False
    assert [record_final(jobs, task_uuid, source) for _ in range(3)] == [True, False, False]
    assert final_recorded(jobs, task_uuid, source) is True
    job = jobs.get(source)
    assert job is not None
    assert (job.finals, job.expected, job.complete) == (1, None, False)


def test_a_source_without_a_job_records_finals_but_counts_nothing(jobs: JobRepository) -> None:
    source, task_uuid = f"sqs:{uuid.uuid4()}", str(uuid.uuid4())
    assert record_final(jobs, task_uuid, source) is True
    assert record_final(jobs, task_uuid, source) is False
    assert final_recorded(jobs, task_uuid, source) is True
    assert jobs.get(source) is None


@pytest.mark.parametrize("total_first", [True, False], ids=["total-first", "total-last"])
def test_a_job_completes_when_its_finals_reach_its_total(
    jobs: JobRepository, source: str, total_first: bool
) -> None:
    uuids = [str(uuid.uuid4()) for _ in range(2)]
    if total_first:
        jobs.record_total(source, 2, bucket="in", key="k", etag="e")
    for task_uuid in uuids:
        record_final(jobs, task_uuid, source)
    if not total_first:
        job = jobs.get(source)
        assert job is not None
        assert (job.finals, job.complete) == (2, False)
        jobs.record_total(source, 2, bucket="in", key="k", etag="e")
    job = jobs.get(source)
    assert job is not None
    assert (job.expected, job.finals, job.complete) == (2, 2, True)


def test_concurrent_duplicate_finals_are_counted_exactly_once(jobs: JobRepository, source: str) -> None:
    uuids = [str(uuid.uuid4()) for _ in range(10)]
    jobs.record_total(source, len(uuids), bucket="in", key="k", etag="e")
    with ThreadPoolExecutor(12) as pool:
        wins = list(pool.map(lambda task_uuid: record_final(jobs, task_uuid, source), uuids * 3))
    assert wins.count(True) == len(uuids)
    job = jobs.get(source)
    assert job is not None
    assert (job.finals, job.complete) == (len(uuids), True)


def test_a_batch_of_finals_is_recorded_per_tally_once_whatever_was_recorded_before(
    jobs: JobRepository, source: str
) -> None:
    """250 lines over three tallies, some recorded one by one first, the batch delivered twice more,
    concurrently: each counted once, and each call answers what it recorded itself."""
    lines = [final_line(str(uuid.uuid4()), source, seq=seq) for seq in range(1, 251)]
    early = lines[::7]
    assert jobs.record_finals(early) == early
    assert jobs.unrecorded(lines) == [line for line in lines if line not in early]
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(jobs.record_finals, [lines] * 3))
    assert sorted(line.seq for answer in answers for line in answer) == sorted(
        line.seq for line in lines if line not in early
    )
    assert jobs.unrecorded(lines) == []
    job = jobs.get(source)
    assert job is not None
    assert job.finals == 250


def test_an_earlier_attempt_recorded_again_is_not_counted(jobs: JobRepository, source: str) -> None:
    first, second = final_line("t", source, 0, seq=5), final_line("t", source, 1, seq=5)
    assert jobs.record_finals([first]) == [first]
    assert jobs.record_finals([first, second]) == [second]
    assert jobs.record_finals([first, second]) == []
    job = jobs.get(source)
    assert job is not None
    assert job.finals == 2


def test_the_markers_are_set_once_on_an_existing_job(jobs: JobRepository, source: str) -> None:
    jobs.mark_results_written(source, "s3://out/nowhere", {"COMPLETED": 1})  # no job: nothing
    jobs.mark_announced(source)
    assert jobs.get(source) is None
    jobs.record_total(source, 1, bucket="in", key="k", etag="e")
    jobs.mark_results_written(source, "s3://out/results/k", {"COMPLETED": 1})
    jobs.mark_results_written(source, "s3://out/other", {"FAILED": 1})  # set once: ignored
    job = jobs.get(source)
    assert job is not None
    assert (job.results_location, dict(job.results_counts or {}), job.announced) == (
        "s3://out/results/k",
        {"COMPLETED": 1},
        False,
    )
    jobs.mark_announced(source)
    jobs.mark_announced(source)
    job = jobs.get(source)
    assert job is not None
    assert job.announced is True
    assert job.results_location == "s3://out/results/k"


# ==== retries: tasks and their job in one write ======================================================


def _failed_file(tasks: TaskRepository, jobs: JobRepository, source: str) -> tuple[str, str]:
    """A file of two lines, one FAILED and one COMPLETED, counted and announced: (failed, completed)."""
    failed, completed = new_task(source, 1), new_task(source, 2)
    tasks.create_many([(failed, None), (completed, None)])
    tasks.mark_failed(failed.task_uuid, {"code": "timeoutProvider", "message": "slow"})
    tasks.store_result(result(completed.task_uuid))
    jobs.record_total(source, 2, bucket="in", key="k", etag="e")
    for task in (failed, completed):
        record_final(jobs, task.task_uuid, source, seq=task.source_seq)
    jobs.mark_results_written(source, "s3://in/results/k", {"COMPLETED": 1, "FAILED": 1})
    jobs.mark_announced(source)
    return failed.task_uuid, completed.task_uuid


def _records(tasks: TaskRepository, *task_uuids: str) -> list[TaskRecord]:
    return list(tasks.tasks_in_order(list(task_uuids)))


def test_a_retry_reopens_each_failed_task_once_on_its_next_attempt(
    tasks: TaskRepository, jobs: JobRepository, source: str
) -> None:
    failed, completed = _failed_file(tasks, jobs, source)
    before = _records(tasks, failed, completed)
    reopened = tasks.reopen_for_retry(source, 1, [t for t in before if t.status == TaskStatus.FAILED])
    assert reopened == [Reopened(failed, 1, 1)]
    assert tasks.reopen_for_retry(source, 1, before) == []  # read before the reopening: left alone
    task, other = _records(tasks, failed, completed)
    assert (task.status, task.attempt, task.results, task.error) == (TaskStatus.PENDING, 1, [], None)
    [earlier] = task.attempts
    assert (earlier["attempt"], earlier["taskUUID"], earlier["status"]) == (0, failed, "FAILED")
    assert earlier["error"]["code"] == "timeoutProvider"
    assert task.retried_at is not None
    assert other.status == TaskStatus.COMPLETED
    assert failed in set(tasks.open_tasks_since_before(int(time.time()) + 10))  # the reconciler sees it
    job = jobs.get(source)
    assert job is not None
    assert (job.finals, job.retry_round, job.held, job.complete) == (1, 1, True, False)
    assert (job.results_location, job.announced) == (None, False)
    jobs.release_round(source, 1)
    jobs.release_round(source, 1)
    job = jobs.get(source)
    assert job is not None
    assert (job.held, job.complete) == (False, False)
    assert record_final(jobs, failed, source, 1, seq=1) is True  # the new attempt's final is counted again
    assert record_final(jobs, failed, source, 1, seq=1) is False
    job = jobs.get(source)
    assert job is not None
    assert (job.finals, job.complete) == (2, True)


def test_only_the_current_attempt_stores_or_fails(
    tasks: TaskRepository, jobs: JobRepository, source: str
) -> None:
    failed, _ = _failed_file(tasks, jobs, source)
    tasks.reopen_for_retry(source, 1, _records(tasks, failed))
    late = SlotResult(failed, 0, {"text": "attempt 0 after all"})
    assert tasks.store_result(late) == StoreOutcome.IGNORED
    assert tasks.mark_failed(failed, {"code": "timeoutProvider", "message": "late"}, attempt=0) is False
    current = SlotResult(failed, 0, {"text": "attempt 1"}, attempt=1)
    assert tasks.store_result(current) == StoreOutcome.COMPLETED
    assert tasks.store_result(current) == StoreOutcome.DUPLICATE
    [task] = _records(tasks, failed)
    assert (task.status, [r["text"] for r in task.results]) == (TaskStatus.COMPLETED, ["attempt 1"])


def test_an_sqs_task_keeps_its_spec_and_reopens_without_a_job(tasks: TaskRepository) -> None:
    source = f"sqs:{uuid.uuid4().hex}"
    task = new_task(source, 1, spec={"prompt": "again", "numberResults": 1})
    tasks.create_many([(task, None)])
    tasks.mark_failed(task.task_uuid, {"code": "timeoutProvider", "message": "slow"})
    [failed] = _records(tasks, task.task_uuid)
    assert failed.spec == {"prompt": "again", "numberResults": 1}
    assert tasks.reopen_for_retry(source, 0, [failed]) == [Reopened(task.task_uuid, 1, 1)]
    assert tasks.reopen_for_retry(source, 0, [failed]) == []
    [reopened] = _records(tasks, task.task_uuid)
    assert (reopened.status, reopened.attempt) == (TaskStatus.PENDING, 1)


def test_a_retry_round_needs_an_announced_job(
    tasks: TaskRepository, jobs: JobRepository, source: str
) -> None:
    task = new_task(source, 1)
    tasks.create_many([(task, None)])
    tasks.mark_failed(task.task_uuid, {"code": "timeoutProvider", "message": "slow"})
    jobs.record_total(source, 1, bucket="in", key="k", etag="e")
    record_final(jobs, task.task_uuid, source, seq=1)  # complete, but its results file is not written yet
    with pytest.raises(RetryRefused):
        tasks.reopen_for_retry(source, 1, _records(tasks, task.task_uuid))
    [unchanged] = _records(tasks, task.task_uuid)
    assert (unchanged.status, unchanged.attempt) == (TaskStatus.FAILED, 0)
    jobs.mark_results_written(source, "s3://in/results/k", {"FAILED": 1})
    jobs.mark_announced(source)
    with pytest.raises(RetryRefused):  # rounds go one after another
        tasks.reopen_for_retry(source, 2, _records(tasks, task.task_uuid))
    assert len(tasks.reopen_for_retry(source, 1, _records(tasks, task.task_uuid))) == 1


# ==== SpendLedger: budgets reserved atomically, settled with the tallies ============================


@dataclass
class Ledgers:
    ledger: SpendLedger
    jobs: JobRepository


@pytest.fixture(params=IMPLEMENTATIONS)
def ledgers(request: pytest.FixtureRequest) -> Ledgers:
    if request.param == "fake":
        fake_jobs = fakes.FakeJobRepository()
        return Ledgers(fakes.FakeSpendLedger(fake_jobs), fake_jobs)
    clients = request.getfixturevalue("aws_clients")
    name = request.getfixturevalue("table")
    return Ledgers(
        DynamoSpendLedger(name, dynamodb=clients.dynamodb),
        DynamoJobRepository(name, dynamodb=clients.dynamodb),
    )


def _budget(limit: float, scope: str = "source") -> Budget:
    return Budget(scope, f"s3://contract/{uuid.uuid4().hex}#e", limit)


def test_a_budget_takes_reservations_until_it_is_full(ledgers: Ledgers) -> None:
    budget = _budget(0.05)
    ledger = ledgers.ledger
    assert [ledger.reserve([budget], 0.02) for _ in range(2)] == [None, None]
    assert ledger.reserve([budget], 0.02) == budget  # 0.06 would pass 0.05
    assert ledger.reserve([budget], 0.01) is None  # exactly full
    assert ledger.committed(budget.scope, budget.name) == pytest.approx((0.05, 0.0))
    ledger.release([budget], 0.02)
    assert ledger.committed(budget.scope, budget.name)[0] == pytest.approx(0.03)
    assert ledger.reserve([_budget(0.01)], 0.02) is not None  # more than the whole budget


def test_reservations_on_two_budgets_are_all_or_none(ledgers: Ledgers) -> None:
    roomy, tight = _budget(1.0), _budget(0.01, "day")
    assert ledgers.ledger.reserve([roomy, tight], 0.02) == tight
    assert ledgers.ledger.committed(roomy.scope, roomy.name)[0] == 0.0  # nothing reserved anywhere
    assert ledgers.ledger.reserve([roomy, tight], 0.01) is None
    assert ledgers.ledger.committed(roomy.scope, roomy.name)[0] == pytest.approx(0.01)


def test_concurrent_reservations_never_pass_the_budget(ledgers: Ledgers) -> None:
    budget = _budget(0.1)
    with ThreadPoolExecutor(8) as pool:
        refusals = list(pool.map(lambda _: ledgers.ledger.reserve([budget], 0.01), range(30)))
    assert refusals.count(None) == 10
    assert ledgers.ledger.committed(budget.scope, budget.name)[0] == pytest.approx(0.1)


def test_a_final_task_replaces_its_estimate_by_its_cost_once(ledgers: Ledgers) -> None:
    budget = _budget(1.0)
    source, task_uuid = budget.name, str(uuid.uuid4())
    assert ledgers.ledger.reserve([budget], 0.004) is None
    settlement = Settlement(source, Reservation(0.004, source=True), cost_usd=0.0015)
    assert [record_final(ledgers.jobs, task_uuid, source, 0, settlement) for _ in range(3)] == [
        True,
        False,
        False,
    ]
    assert ledgers.ledger.committed(budget.scope, budget.name) == pytest.approx((0.0015, 0.0015))
    retried = Settlement(source, Reservation(0.004, source=True), cost_usd=0.001, attempt=1)
    assert record_final(ledgers.jobs, task_uuid, source, 1, retried) is True  # no estimate again
    assert ledgers.ledger.committed(budget.scope, budget.name) == pytest.approx((0.0025, 0.0025))


def test_finals_recorded_together_settle_each_budget_with_their_sum(ledgers: Ledgers) -> None:
    source_budget = _budget(1.0)
    source = source_budget.name
    day = Budget("day", f"contract-{uuid.uuid4().hex}", 5.0)
    assert ledgers.ledger.reserve([day, source_budget], 0.012) is None
    reservation = Reservation(0.004, day=day.name, source=True)
    lines = [
        final_line(str(uuid.uuid4()), source, 0, Settlement(source, reservation, cost_usd=0.001 * n), seq=n)
        for n in (1, 2, 3)
    ]
    assert len(ledgers.jobs.record_finals(lines)) == 3
    assert len(ledgers.jobs.record_finals(lines)) == 0
    for budget in (day, source_budget):
        assert ledgers.ledger.committed(budget.scope, budget.name) == pytest.approx((0.006, 0.006))


# ==== PayloadStore ====================================================================================


@pytest.fixture(params=IMPLEMENTATIONS)
def payload_store(request: pytest.FixtureRequest) -> PayloadStore:
    if request.param == "fake":
        return fakes.FakePayloadStore()
    clients = request.getfixturevalue("aws_clients")
    return S3PayloadStore(request.getfixturevalue("bucket"), s3=clients.s3)


def test_a_payload_reads_back_by_its_reference(payload_store: PayloadStore) -> None:
    key = f"completions/{uuid.uuid4()}/r1.json"
    body = json.dumps({"text": "héllo " * 1000}, ensure_ascii=False).encode()
    ref = payload_store.put(key, body)
    assert ref.startswith("s3://")
    assert ref.endswith(key)
    assert payload_store.get(ref) == body
    assert payload_store.put(key, body) == ref  # rewriting is idempotent
    other = payload_store.put(f"completions/{uuid.uuid4()}/r1.json", b"{}")
    assert other != ref
    assert payload_store.get(other) == b"{}"


def test_an_unknown_payload_is_an_error(payload_store: PayloadStore, bucket: str) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - each store raises its own kind
        payload_store.get(f"s3://{bucket}/completions/{uuid.uuid4()}/none.json")


# ==== ThrottleStore ===================================================================================


@pytest.fixture(params=IMPLEMENTATIONS)
def throttles(request: pytest.FixtureRequest) -> ThrottleStore:
    if request.param == "fake":
        return fakes.FakeThrottleStore()
    clients = request.getfixturevalue("aws_clients")
    # A service name of its own: the table is shared by the module's tests.
    return DynamoThrottleStore(
        request.getfixturevalue("table"), service=f"contract-{uuid.uuid4().hex}", dynamodb=clients.dynamodb
    )


NOW = 1_800_000_000.0


def test_a_throttle_is_recorded_once_per_round(throttles: ThrottleStore) -> None:
    assert throttles.current() is None
    first = Throttle(until=NOW + 2.5, interval=0.25, throttled_at=NOW)
    throttles.record(first, replacing=None)
    assert throttles.current() == first
    # A second submitter that also saw no record: its cool-down counts, its spacing does not.
    throttles.record(Throttle(until=NOW + 4.0, interval=0.25, throttled_at=NOW + 0.1), replacing=None)
    assert throttles.current() == replace(first, until=NOW + 4.0)
    seen = throttles.current()
    later = Throttle(until=NOW + 9.0, interval=0.5, throttled_at=NOW + 5.0)
    throttles.record(later, replacing=seen)
    assert throttles.current() == later
    throttles.record(Throttle(until=NOW + 7.0, interval=1.0, throttled_at=NOW + 6.0), replacing=seen)
    assert throttles.current() == later  # read before `later`: changes nothing, shortens nothing


def test_a_cooldown_only_ever_moves_later(throttles: ThrottleStore) -> None:
    throttles.extend_until(NOW + 50)  # no record: nothing to extend
    assert throttles.current() is None
    throttles.record(Throttle(until=NOW + 10.25, interval=0.25, throttled_at=NOW), replacing=None)
    throttles.extend_until(NOW + 5)
    assert throttles.current() == Throttle(until=NOW + 10.25, interval=0.25, throttled_at=NOW)
    throttles.extend_until(NOW + 20)
    assert throttles.current() == Throttle(until=NOW + 20, interval=0.25, throttled_at=NOW)


def test_a_throttle_store_that_cannot_answer_reads_as_no_throttle(aws_clients: Any) -> None:
    # Pacing must never stop a submission: a missing table (or any AWS error) is no throttle.
    store = DynamoThrottleStore("no-such-table", dynamodb=aws_clients.dynamodb)
    store.record(Throttle(until=NOW, interval=1, throttled_at=NOW), replacing=None)
    store.extend_until(NOW)
    assert store.current() is None


# ==== ObjectWriter ====================================================================================


@dataclass
class Writer:
    writer: ObjectWriter
    read: Callable[[str, str], tuple[bytes, str]]  # (bucket, key) -> (body, content type)


@pytest.fixture(params=IMPLEMENTATIONS)
def object_writer(request: pytest.FixtureRequest) -> Writer:
    if request.param == "fake":
        fake = fakes.FakeObjectWriter()
        return Writer(fake, lambda b, k: (fake.read(b, k), fake.content_types[(b, k)]))
    s3 = request.getfixturevalue("aws_clients").s3

    def read(b: str, k: str) -> tuple[bytes, str]:
        answer = s3.get_object(Bucket=b, Key=k)
        return answer["Body"].read(), answer["ContentType"]

    return Writer(S3ObjectWriter(s3=s3), read)


def test_an_object_is_written_whole_from_a_stream(object_writer: Writer, bucket: str) -> None:
    import io

    key = f"results/{uuid.uuid4()}.jsonl"
    body = b"".join(json.dumps({"line": n, "text": "t" * 100}).encode() + b"\n" for n in range(3000))
    object_writer.writer.upload(bucket, key, io.BytesIO(body), "application/x-ndjson")
    assert object_writer.read(bucket, key) == (body, "application/x-ndjson")
    object_writer.writer.upload(bucket, key, io.BytesIO(b"{}\n"), "application/x-ndjson")
    assert object_writer.read(bucket, key)[0] == b"{}\n"  # a rewrite replaces it


# ==== EventPublisher ==================================================================================


@dataclass
class Publisher:
    publisher: EventPublisher
    delivered: Callable[[], list[tuple[str, dict[str, Any]]]]  # (detail type, detail) in order


@pytest.fixture(params=IMPLEMENTATIONS)
def publisher(request: pytest.FixtureRequest) -> Publisher:
    if request.param == "fake":
        fake = fakes.FakeEventPublisher()
        return Publisher(fake, lambda: [(e.detail_type, e.detail) for e in fake.published])
    clients = request.getfixturevalue("aws_clients")
    name = f"contract-{uuid.uuid4().hex[:10]}"
    clients.events.create_event_bus(Name=name)
    queue_url = clients.sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = clients.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    clients.events.put_rule(Name=name, EventBusName=name, EventPattern=json.dumps({"source": ["runrelay"]}))
    clients.events.put_targets(Rule=name, EventBusName=name, Targets=[{"Id": "q", "Arn": arn}])

    def delivered() -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        while messages := clients.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                event = json.loads(message["Body"])
                assert event["source"] == "runrelay"
                out.append((event["detail-type"], event["detail"]))
                clients.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return out

    return Publisher(EventBridgePublisher(name, events_client=clients.events), delivered)


def test_every_event_is_delivered(publisher: Publisher) -> None:
    events = [
        Event("TaskCompleted", {"eventKey": f"TaskCompleted#{n}", "n": n, "text": "é"}) for n in range(12)
    ]
    publisher.publisher.publish(events)  # more than one PutEvents batch
    publisher.publisher.publish([])
    delivered = publisher.delivered()
    assert [detail_type for detail_type, _ in delivered] == ["TaskCompleted"] * 12
    assert sorted(detail["n"] for _, detail in delivered) == list(range(12))
    assert delivered[0][1] == {"eventKey": "TaskCompleted#0", "n": 0, "text": "é"}


def test_results_of_one_instant_read_back_whatever_their_seeds(
    tasks: TaskRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results stored in the same millisecond come back in slot order, and a seed too large for DynamoDB
    (kept as text) must not make the task unreadable."""
    task = new_task(number_results=3)
    tasks.create_many([(task, None)])
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0004)  # one instant for every write below
    for slot, (text, seed) in enumerate((("huge", 10**400), ("small", 2), ("none", None))):
        assert tasks.store_result(result(task.task_uuid, text, slot, seed=seed)) != StoreOutcome.DUPLICATE
    monkeypatch.undo()
    record = tasks.get_task(task.task_uuid)
    assert record is not None
    assert record.status == TaskStatus.COMPLETED
    assert [r["text"] for r in record.results] == ["huge", "small", "none"]
    assert [r.task_uuid for r in tasks.tasks_in_order([task.task_uuid])] == [task.task_uuid]
