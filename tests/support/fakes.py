"""In-memory implementations of the ports (`runrelay.ports`), for the services' unit tests.

They keep the real adapters' semantics, and `tests/contract/test_ports.py` runs the same contract tests
on them and on the adapters (DynamoDB Local, moto):
- `FakeTaskRepository`: conditional creation answering the status already there, transitions only
  along `domain.tasks.TRANSITIONS` (FAILED only from an open
  status, REJECTED only from PENDING), each result stored once under its slot,
  completion once `numberResults` are in, an orphan row for a result of an unknown task, a final task
  never completed again, a result or failure of an attempt the task is not on ignored, a FAILED task
  reopened by a retry (with its job, held, when linked to a `FakeJobRepository`); large texts offloaded
  to a payload store when one is given.
- `FakeJobRepository`: the total set once (`TotalMismatch` for another), each final attempt of a task
  recorded and counted once, a retry round held and released, the results-written / announced markers
  set once on an existing job, a source's first cancellation kept.

Both record the table changes the stream consumer reacts to (`changes`): a task that became final, a
job that became complete, each exactly once, as `adapters.dynamodb.stream.table_changes` reads them
from the real table's stream. Every fake is thread-safe (the submitter writes chunks from threads).

No boto3 here: the services' unit tests must not import it (tests/unit/test_service_tests_import_no_aws.py).
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any

from runrelay.adapters.eventbridge import EventsNotDelivered
from runrelay.contract import InferenceResult, RunwareError, TextInferenceTask
from runrelay.deadline import Deadline
from runrelay.domain.budgets import Budget, Settlement
from runrelay.domain.cancellations import Cancellation
from runrelay.domain.errors import bounded_error
from runrelay.domain.jobs import FinalLine, JobBecameComplete, JobProgress, TotalMismatch, has_job
from runrelay.domain.retries import Reopened, RetryRefused, attempt_record
from runrelay.domain.tasks import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    NewTask,
    StorableResult,
    StoreOutcome,
    TaskBecameFinal,
    TaskRecord,
    TaskStatus,
    may_move,
)
from runrelay.domain.throttle import Throttle
from runrelay.result_payloads import INLINE_RESULT_LIMIT, encoded_result, pointer_entry
from runrelay.result_payloads import resolve_payloads as resolve_payloads_of
from runrelay.runware_client import PollOutcome, SubmitOutcome
from runrelay.runware_errors import TransientRunwareError

if TYPE_CHECKING:
    from runrelay.domain.events import Event
    from runrelay.ports import PayloadStore

_INT_LIMIT = 10**38  # integers this large are kept as text, as the DynamoDB codec keeps them

_sequence = itertools.count(1)
_sequence_lock = threading.Lock()


def next_sequence_number() -> str:
    """Increasing across every fake, like the stream's sequence numbers within a shard."""
    with _sequence_lock:
        return f"{next(_sequence):021d}"


def _now() -> float:
    return round(time.time(), 3)


def _plain(value: Any) -> Any:
    """A deep copy as the table reads it back: whole floats come back as ints (DynamoDB numbers), and
    integers of more than DynamoDB's 38 digits as text (the DynamoDB adapter's codec)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT_LIMIT:
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- tasks ---------------------------------------------------------------------------------------------


def _slot_order(slot_and_entry: tuple[str, Mapping[str, Any]]) -> int:
    """As `adapters.dynamodb.schema` orders a task's results: by slot."""
    return int(slot_and_entry[0])


@dataclass
class _Row:
    task_uuid: str
    status: TaskStatus
    source_id: str
    source_seq: int
    idempotency_key: str
    number_results: int
    caller_id: str | None
    metadata: dict[str, Any] | None
    created_at: float
    updated_at: float
    open_since: int | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    submitted_at: float | None = None
    completed_at: float | None = None
    attempt: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    retried_at: float | None = None
    budget: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None

    def record(self) -> TaskRecord:
        results = [copy.deepcopy(entry) for _, entry in sorted(self.results.items(), key=_slot_order)]
        return TaskRecord(
            task_uuid=self.task_uuid,
            status=self.status,
            source_id=self.source_id,
            source_seq=self.source_seq,
            idempotency_key=self.idempotency_key,
            number_results=self.number_results,
            result_count=len(self.results),
            results=results,
            caller_id=self.caller_id,
            metadata=copy.deepcopy(self.metadata) or None,
            error=copy.deepcopy(self.error) or None,
            created_at=self.created_at,
            submitted_at=self.submitted_at,
            completed_at=self.completed_at,
            updated_at=self.updated_at,
            attempt=self.attempt,
            attempts=copy.deepcopy(self.attempts),
            retried_at=self.retried_at,
            budget=copy.deepcopy(self.budget),
            spec=copy.deepcopy(self.spec),
        )


class FakeTaskRepository:
    """`ports.TaskRepository` in memory; see the module's docstring for the semantics kept."""

    def __init__(
        self,
        *,
        payloads: PayloadStore | None = None,
        inline_limit: int = INLINE_RESULT_LIMIT,
        jobs: FakeJobRepository | None = None,
    ) -> None:
        self.payloads = payloads  # None: large texts stay inline
        self.jobs = jobs  # the table's job items, which a retry changes in the same write as its tasks
        self.inline_limit = inline_limit
        self.changes: list[TaskBecameFinal] = []
        self.writes = 0  # successful writes, to check that a refused request wrote nothing
        self._rows: dict[str, _Row] = {}
        self._lock = threading.RLock()

    # -- creation ----------------------------------------------------------------------------------

    def create_many(
        self,
        rows: Sequence[tuple[NewTask, Mapping[str, Any] | None]],
        *,
        cancelled: Mapping[str, Any] | None = None,
    ) -> list[TaskStatus | None]:
        statuses: list[TaskStatus | None] = []
        with self._lock:
            for task, error in rows:
                existing = self._rows.get(task.task_uuid)
                if existing is not None:
                    statuses.append(existing.status)
                    continue
                if error is not None:
                    row = self._new_row(task, TaskStatus.REJECTED)
                    row.error = _plain(bounded_error(error))
                elif cancelled is not None:
                    row = self._new_row(task, TaskStatus.CANCELLED)
                    row.error = _plain(bounded_error(cancelled))
                    row.completed_at = row.created_at
                else:
                    row = self._new_row(task, TaskStatus.PENDING)
                status = row.status
                self._rows[task.task_uuid] = row
                self.writes += 1
                if status in FINAL_STATUSES:
                    self._became_final(row)
                statuses.append(None)
        return statuses

    def create_pending(self, task: NewTask) -> TaskStatus | None:
        return self.create_many([(task, None)])[0]

    def create_rejected(self, task: NewTask, error: Mapping[str, Any]) -> TaskStatus | None:
        return self.create_many([(task, error)])[0]

    def _new_row(self, task: NewTask, status: TaskStatus) -> _Row:
        now = _now()
        return _Row(
            task_uuid=task.task_uuid,
            status=status,
            source_id=task.source_id,
            source_seq=task.source_seq,
            idempotency_key=task.idempotency_key,
            number_results=task.number_results,
            caller_id=task.caller_id,
            metadata=_plain(dict(task.metadata)) if task.metadata else None,
            budget=_plain(dict(task.budget)) if task.budget else None,
            spec=_plain(dict(task.spec)) if task.spec else None,
            created_at=now,
            updated_at=now,
            open_since=int(now) if status in OPEN_STATUSES else None,
        )

    # -- transitions -------------------------------------------------------------------------------

    def mark_rejected(self, task_uuid: str, error: Mapping[str, Any]) -> bool:
        return self._finalise(task_uuid, TaskStatus.REJECTED, error)

    def mark_failed(self, task_uuid: str, error: Mapping[str, Any], *, attempt: int = 0) -> bool:
        return self._finalise(task_uuid, TaskStatus.FAILED, error, attempt)

    def mark_cancelled(self, task_uuid: str, error: Mapping[str, Any], *, attempt: int = 0) -> bool:
        return self._finalise(task_uuid, TaskStatus.CANCELLED, error, attempt)

    def _finalise(
        self, task_uuid: str, status: TaskStatus, error: Mapping[str, Any], attempt: int | None = None
    ) -> bool:
        with self._lock:
            row = self._rows.get(task_uuid)
            if row is None or row.status in FINAL_STATUSES or not may_move(row.status, status):
                return False
            if attempt is not None and row.attempt != attempt:
                return False
            row.status = status
            row.error = _plain(bounded_error(error))
            row.completed_at = row.updated_at = _now()
            row.open_since = None
            self.writes += 1
            self._became_final(row)
            return True

    def _became_final(self, row: _Row) -> None:
        self.changes.append(TaskBecameFinal(next_sequence_number(), row.record()))

    # -- results -----------------------------------------------------------------------------------

    def store_result(self, result: StorableResult) -> StoreOutcome:
        task_uuid = result.taskUUID
        rid = str(result.slot)
        entry = self._result_entry(task_uuid, rid, result)  # offloaded once, outside the lock
        with self._lock:
            row = self._rows.get(task_uuid)
            if row is None and result.attempt:
                return StoreOutcome.IGNORED  # a retried attempt always has its row
            if row is not None and row.attempt != result.attempt:
                return StoreOutcome.IGNORED  # an answer to another attempt than the current one
            if row is None:  # a result for a task we have no row for: kept rather than lost
                orphan = NewTask(
                    task_uuid, f"orphan:{task_uuid}", source_id=f"orphan:{task_uuid}", source_seq=0
                )
                row = self._rows[task_uuid] = self._new_row(orphan, TaskStatus.PENDING)
                self.writes += 1
            if rid in row.results:
                return StoreOutcome.DUPLICATE
            completes = len(row.results) + 1 >= row.number_results and row.status not in FINAL_STATUSES
            row.results[rid] = entry
            row.updated_at = entry["receivedAt"] if "receivedAt" in entry else _now()
            self.writes += 1
            if not completes:
                return StoreOutcome.STORED
            row.status = TaskStatus.COMPLETED
            row.completed_at = row.updated_at
            row.open_since = None
            self._became_final(row)
            return StoreOutcome.COMPLETED

    def _result_entry(self, task_uuid: str, rid: str, result: StorableResult) -> dict[str, Any]:
        body = result.as_document()
        body["receivedAt"] = _now()
        encoded = encoded_result(body)
        if len(encoded) <= self.inline_limit or self.payloads is None:
            return _plain(json.loads(encoded))
        return _plain(pointer_entry(self.payloads, body, encoded, task_uuid, rid, result.attempt))

    # -- retries -----------------------------------------------------------------------------------

    def reopen_for_retry(
        self, source_id: str, retry_round: int, tasks: Sequence[TaskRecord]
    ) -> list[Reopened]:
        if self.jobs is None and has_job(source_id):
            raise RuntimeError("a retry changes the job too: give the fake its FakeJobRepository")
        now = _now()
        with self._lock, self.jobs.lock if self.jobs is not None else self._lock:
            movable = [
                self._rows[task.task_uuid]
                for task in tasks
                if task.task_uuid in self._rows
                and self._rows[task.task_uuid].status == TaskStatus.FAILED
                and self._rows[task.task_uuid].attempt == task.attempt
            ]
            if not movable:
                return []
            if has_job(source_id):
                assert self.jobs is not None
                self.jobs.hold_for_retry(source_id, retry_round, len(movable))
            reopened = []
            for row in movable:
                row.attempts.append(_plain(attempt_record(row.record(), now)))
                row.attempt += 1
                row.status = TaskStatus.PENDING
                row.results = {}
                row.error = row.completed_at = row.submitted_at = None
                row.open_since = int(now)
                row.retried_at = row.updated_at = now
                self.writes += 1
                reopened.append(Reopened(row.task_uuid, row.source_seq, row.attempt))
            return reopened

    # -- reads -------------------------------------------------------------------------------------

    def get_task(self, task_uuid: str, *, resolve_payloads: bool = True) -> TaskRecord | None:
        with self._lock:
            row = self._rows.get(task_uuid)
            record = row.record() if row else None
        if record is None or not resolve_payloads or self.payloads is None:
            return record
        return resolve_payloads_of(record, self.payloads)

    def open_tasks_since_before(self, cutoff_epoch: int, limit: int = 1000) -> Iterator[str]:
        with self._lock:
            overdue = sorted(
                (row.open_since, row.task_uuid)
                for row in self._rows.values()
                if row.open_since is not None and row.open_since < cutoff_epoch
            )
        for _, task_uuid in overdue[:limit]:
            yield task_uuid

    def task_uuids_of_source(self, source_id: str) -> list[str]:
        with self._lock:
            rows = sorted(
                (row.source_seq, row.task_uuid) for row in self._rows.values() if row.source_id == source_id
            )
        return [task_uuid for _, task_uuid in rows]

    def tasks_of_source(self, source_id: str) -> list[TaskRecord]:
        records = [self.get_task(uuid) for uuid in self.task_uuids_of_source(source_id)]
        return [record for record in records if record is not None]

    def tasks_in_order(self, task_uuids: Sequence[str], *, consistent: bool = True) -> Iterator[TaskRecord]:
        for task_uuid in task_uuids:  # one copy of each row: every read is consistent
            record = self.get_task(task_uuid, resolve_payloads=False)
            if record is not None:
                yield record

    # -- test hooks: what no service does, to set up a situation -------------------------------------

    def force_status(self, task_uuid: str, status: TaskStatus) -> None:
        """Overwrite a task's status (e.g. a SUBMITTED row an earlier version wrote)."""
        with self._lock:
            row = self._rows[task_uuid]
            row.status = status
            if status in OPEN_STATUSES and row.open_since is None:
                row.open_since = int(row.created_at)

    def drain_changes(self) -> list[TaskBecameFinal]:
        """The changes recorded since the last call (each a stream record of the real table)."""
        with self._lock:
            drained, self.changes = self.changes, []
        return drained


# -- jobs ----------------------------------------------------------------------------------------------


class FakeJobRepository:
    """`ports.JobRepository` in memory; see the module's docstring for the semantics kept."""

    def __init__(self) -> None:
        self.changes: list[JobBecameComplete] = []
        self._jobs: dict[str, JobProgress] = {}
        self._marks: set[tuple[str, int]] = set()  # (source, FinalLine.mark): the tallies' marks
        self._cancellations: dict[str, Cancellation] = {}
        self.lock = self._lock = threading.RLock()
        self.ledger: FakeSpendLedger | None = None  # the table's spend items, settled with the tallies

    def _update(self, source_id: str, **fields: Any) -> None:
        before = self._jobs.get(source_id) or JobProgress(source_id, expected=None, finals=0)
        after = replace(before, **fields)
        self._jobs[source_id] = after
        if after.complete and not before.complete:
            self.changes.append(JobBecameComplete(next_sequence_number(), after))

    def record_total(self, source_id: str, total: int, *, bucket: str, key: str, etag: str) -> None:
        with self._lock:
            job = self._jobs.get(source_id)
            if job is not None and job.expected is not None and job.expected != total:
                raise TotalMismatch(f"{source_id}: {total} tasks now, another count before")
            self._update(source_id, expected=total, bucket=bucket, key=key, etag=etag)

    def unrecorded(self, lines: Sequence[FinalLine]) -> list[FinalLine]:
        with self._lock:
            return [line for line in lines if (line.source_id, line.mark) not in self._marks]

    def record_finals(self, lines: Sequence[FinalLine]) -> list[FinalLine]:
        with self._lock:
            recorded = []
            for line in lines:
                if (line.source_id, line.mark) in self._marks:
                    continue
                self._marks.add((line.source_id, line.mark))
                recorded.append(line)
                if line.settlement is not None:
                    if self.ledger is None:
                        raise RuntimeError("a settlement needs the fake's FakeSpendLedger")
                    self.ledger.settle(line.settlement)
            counted = Counter(line.source_id for line in recorded if has_job(line.source_id))
            for source_id, count in counted.items():
                job = self._jobs.get(source_id)
                self._update(source_id, finals=(job.finals if job else 0) + count)
            return recorded

    def get(self, source_id: str) -> JobProgress | None:
        with self._lock:
            return self._jobs.get(source_id)

    def hold_for_retry(self, source_id: str, retry_round: int, reopened: int) -> None:
        """The job's side of `FakeTaskRepository.reopen_for_retry` (one write there, as in the table)."""
        with self._lock:
            job = self._jobs.get(source_id)
            continuing = job is not None and job.held and job.retry_round == retry_round
            starting = (
                job is not None and not job.held and job.announced and job.retry_round == retry_round - 1
            )
            if job is None or not (continuing or starting):
                raise RetryRefused(f"{source_id}: its job is not complete, or another retry round started")
            self._update(
                source_id,
                finals=job.finals - reopened,
                retry_round=retry_round,
                held=True,
                results_location=None,
                results_counts=None,
                announced=False,
            )

    def release_round(self, source_id: str, retry_round: int) -> None:
        with self._lock:
            job = self._jobs.get(source_id)
            if job is not None and job.held and job.retry_round == retry_round:
                self._update(source_id, held=False)

    def cancel_source(self, source_id: str, requested_by: str, requested_at: float) -> Cancellation:
        with self._lock:
            return self._cancellations.setdefault(
                source_id, Cancellation(source_id, requested_by, requested_at)
            )

    def cancellation(self, source_id: str) -> Cancellation | None:
        with self._lock:
            return self._cancellations.get(source_id)

    def mark_results_written(self, source_id: str, location: str, counts: Mapping[str, int]) -> None:
        with self._lock:
            job = self._jobs.get(source_id)
            if job is not None and job.results_location is None:
                self._update(source_id, results_location=location, results_counts=dict(counts))

    def mark_announced(self, source_id: str) -> None:
        with self._lock:
            job = self._jobs.get(source_id)
            if job is not None and not job.announced:
                self._update(source_id, announced=True)

    def drain_changes(self) -> list[JobBecameComplete]:
        with self._lock:
            drained, self.changes = self.changes, []
        return drained


# -- spend caps -----------------------------------------------------------------------------------------


class FakeSpendLedger:
    """`ports.SpendLedger` in memory: committed dollars per budget, reserved all-or-none, never past a
    budget; settlements arrive through a linked `FakeJobRepository.record_finals`."""

    def __init__(self, jobs: FakeJobRepository | None = None) -> None:
        self._committed: dict[tuple[str, str], float] = {}
        self._spent: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        if jobs is not None:
            jobs.ledger = self

    def reserve(self, budgets: Sequence[Budget], amount_usd: float) -> Budget | None:
        with self._lock:
            for budget in budgets:
                now = self._committed.get((budget.scope, budget.name), 0.0)
                if amount_usd > budget.limit_usd or now > budget.limit_usd - amount_usd:
                    return budget
            for budget in budgets:
                key = (budget.scope, budget.name)
                self._committed[key] = self._committed.get(key, 0.0) + amount_usd
            return None

    def release(self, budgets: Sequence[Budget], amount_usd: float) -> None:
        with self._lock:
            for budget in budgets:
                key = (budget.scope, budget.name)
                self._committed[key] = self._committed.get(key, 0.0) - amount_usd

    def settle(self, settlement: Settlement) -> None:
        with self._lock:
            for key in settlement.reservation.budgets_of(settlement.source_id):
                self._committed[key] = self._committed.get(key, 0.0) + settlement.change_usd
                self._spent[key] = self._spent.get(key, 0.0) + settlement.cost_usd

    def committed(self, scope: str, name: str) -> tuple[float, float]:
        with self._lock:
            return self._committed.get((scope, name), 0.0), self._spent.get((scope, name), 0.0)


# -- the shared throttle ---------------------------------------------------------------------------------


class FakeThrottleStore:
    """One throttle record for every pacer built on it, as the table's item is for every environment."""

    def __init__(self) -> None:
        self.throttle: Throttle | None = None
        self.reads = 0
        self.writes = 0
        self._lock = threading.Lock()

    def current(self) -> Throttle | None:
        with self._lock:
            self.reads += 1
            return self.throttle

    def record(self, throttle: Throttle, *, replacing: Throttle | None) -> None:
        with self._lock:
            seen = None if self.throttle is None else self.throttle.throttled_at
            if seen == (None if replacing is None else replacing.throttled_at):
                self.throttle = throttle
                self.writes += 1
                return
        self.extend_until(throttle.until)

    def extend_until(self, until: float) -> None:
        with self._lock:
            if self.throttle is not None and self.throttle.until < until:
                self.throttle = replace(self.throttle, until=until)
                self.writes += 1


# -- S3 ------------------------------------------------------------------------------------------------


class FakePayloadStore:
    def __init__(self, bucket: str = "fake-payloads") -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, body: bytes) -> str:
        ref = f"s3://{self.bucket}/{key}"
        with self._lock:
            self.objects[ref] = bytes(body)
        return ref

    def get(self, ref: str) -> bytes:
        with self._lock:
            try:
                return self.objects[ref]
            except KeyError:
                raise KeyError(f"no such payload: {ref}") from None


class FakeObjectWriter:
    """Records every upload; `versions[(bucket, key)]` lists the bodies written there, oldest first."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, str], list[bytes]] = {}
        self.content_types: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def upload(self, bucket: str, key: str, body: IO[bytes], content_type: str) -> None:
        data = body.read()
        with self._lock:
            self.versions.setdefault((bucket, key), []).append(data)
            self.content_types[(bucket, key)] = content_type

    def read(self, bucket: str, key: str) -> bytes:
        """The latest body written at (bucket, key)."""
        with self._lock:
            return self.versions[(bucket, key)][-1]


# -- EventBridge ---------------------------------------------------------------------------------------


class FakeEventPublisher:
    """Records the events delivered; `fail_next(n)` makes the next n calls deliver nothing and raise."""

    def __init__(self) -> None:
        self.published: list[Event] = []
        self.calls = 0
        self._failures_left = 0
        self._lock = threading.Lock()

    def fail_next(self, times: int = 1) -> None:
        with self._lock:
            self._failures_left = times

    def publish(self, events: Sequence[Event]) -> None:
        with self._lock:
            self.calls += 1
            if self._failures_left:
                self._failures_left -= 1
                raise EventsNotDelivered(f"{len(events)} events refused (scripted)")
            self.published.extend(events)

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        with self._lock:
            return [event.detail for event in self.published if event.detail_type == detail_type]


# -- Runware -------------------------------------------------------------------------------------------


class FakeRunware:
    """`RunwareSubmitter` and `RunwarePoller` with scripted outcomes, answering as Runware does.

    submit: a taskUUID seen before is a conflict (Runware's conflictTaskUUID), one in `reject` is
    refused, `fail_next` raises TransientRunwareError before anything is taken. get_response: the
    outcomes queued with `answer(...)` in turn (an exception is raised), then `default_poll`.
    """

    def __init__(self) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self.known: set[str] = set()
        self.reject: set[str] = set()
        self.fail_next = 0
        self.asked: list[list[str]] = []
        self.default_poll: PollOutcome | Exception = PollOutcome()
        self._polls: list[PollOutcome | Exception] = []
        self._lock = threading.Lock()

    def submit(self, tasks: list[TextInferenceTask], deadline: Deadline) -> SubmitOutcome:
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                raise TransientRunwareError(503, [], "busy")
            self.requests.append([task.to_request() for task in tasks])
            outcome = SubmitOutcome(http_requests=1)
            for task in tasks:
                uuid = str(task.taskUUID)
                if uuid in self.reject:
                    outcome.rejected[uuid] = RunwareError(
                        code="invalidParameter", message="no", taskUUID=uuid
                    )
                elif uuid in self.known:
                    outcome.conflicts.append(uuid)
                else:
                    self.known.add(uuid)
                    outcome.taken.append(uuid)
            return outcome

    def answer(self, *outcomes: PollOutcome | Exception) -> FakeRunware:
        with self._lock:
            self._polls.extend(outcomes)
        return self

    def get_response(self, task_uuids: list[str], deadline: Deadline) -> PollOutcome:
        with self._lock:
            self.asked.append(list(task_uuids))
            outcome = self._polls.pop(0) if self._polls else self.default_poll
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    @staticmethod
    def result(task_uuid: str, text: str = "hi", **fields: Any) -> InferenceResult:
        return InferenceResult.model_validate({"taskUUID": task_uuid, "text": text, **fields})


if TYPE_CHECKING:  # mypy checks that every fake implements its port
    from runrelay import ports

    _ports: tuple[
        ports.TaskRepository,
        ports.JobRepository,
        ports.PayloadStore,
        ports.ObjectWriter,
        ports.EventPublisher,
        ports.RunwareSubmitter,
        ports.RunwarePoller,
        ports.ThrottleStore,
        ports.SpendLedger,
    ] = (
        FakeTaskRepository(),
        FakeJobRepository(),
        FakePayloadStore(),
        FakeObjectWriter(),
        FakeEventPublisher(),
        FakeRunware(),
        FakeRunware(),
        FakeThrottleStore(),
        FakeSpendLedger(),
    )
