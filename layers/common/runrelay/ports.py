"""The ports: what the services need from the outside world, as Protocols.

The DynamoDB, S3 and EventBridge adapters (`runrelay.adapters`) and the Runware client implement them
for Lambda; `tests/support/fakes.py` implements them in memory for the services' unit tests, and both
pass the same contract tests (`tests/contract/test_ports.py`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol

from .domain.budgets import Budget
from .domain.cancellations import Cancellation
from .domain.jobs import FinalLine, JobProgress
from .domain.retries import Reopened
from .domain.tasks import NewTask, StorableResult, StoreOutcome, TaskRecord, TaskStatus
from .domain.throttle import Throttle

if TYPE_CHECKING:  # the webhook's cold start must not import the client's models
    from .contract import TextInferenceTask
    from .deadline import Deadline
    from .domain.events import Event
    from .runware_client import PollOutcome, SubmitOutcome


class TaskRepository(Protocol):
    def create_many(
        self,
        rows: Sequence[tuple[NewTask, Mapping[str, Any] | None]],
        *,
        cancelled: Mapping[str, Any] | None = None,
    ) -> list[TaskStatus | None]:
        """Write PENDING rows (error None) or REJECTED ones, or with `cancelled` CANCELLED ones instead of
        PENDING (with that error); per row None if new, else the status there."""
        ...

    def mark_rejected(self, task_uuid: str, error: Mapping[str, Any]) -> bool:
        """PENDING → REJECTED."""
        ...

    def mark_cancelled(self, task_uuid: str, error: Mapping[str, Any], *, attempt: int = 0) -> bool:
        """PENDING → CANCELLED, if the task is still on `attempt`."""
        ...

    def mark_failed(self, task_uuid: str, error: Mapping[str, Any], *, attempt: int = 0) -> bool:
        """PENDING (or SUBMITTED, a row of an earlier version) → FAILED, if the task is still on `attempt`."""
        ...

    def reopen_for_retry(
        self, source_id: str, retry_round: int, tasks: Sequence[TaskRecord]
    ) -> list[Reopened]:
        """FAILED → PENDING on each task's next attempt, taken out of its job's finals, the job held in
        round `retry_round` (`domain.retries`); tasks changed since they were read are left out. Raises
        `RetryRefused` when the job cannot take the round."""
        ...

    def store_result(self, result: StorableResult) -> StoreOutcome:
        """Store a result exactly once; complete the task once all its results are in. A result of an
        attempt the task is not on is IGNORED."""
        ...

    def get_task(self, task_uuid: str, *, resolve_payloads: bool = True) -> TaskRecord | None: ...

    def open_tasks_since_before(self, cutoff_epoch: int, limit: int = 1000) -> Iterator[str]:
        """taskUUIDs still open since before `cutoff_epoch`."""
        ...

    def task_uuids_of_source(self, source_id: str) -> list[str]:
        """A source's taskUUIDs in input order (may lag a moment behind writes)."""
        ...

    def tasks_in_order(self, task_uuids: Sequence[str], *, consistent: bool = True) -> Iterator[TaskRecord]:
        """The tasks named, in that order, payloads not resolved; `consistent=False` may return a task
        as it was a moment ago (at half the read cost)."""
        ...


class ThrottleStore(Protocol):
    """The one throttle record every submitter reads before a POST. Best effort throughout: pacing must
    never stop a submission, so a store that cannot answer reads as no throttle and writes nothing."""

    def current(self) -> Throttle | None: ...

    def record(self, throttle: Throttle, *, replacing: Throttle | None) -> None:
        """Write `throttle` if the record is still `replacing` (None: there is none); if another
        submitter changed it meanwhile, only make its cool-down last until `throttle.until`."""
        ...

    def extend_until(self, until: float) -> None:
        """Make the recorded cool-down last until `until`, if it ends earlier."""
        ...


class SpendLedger(Protocol):
    """Committed dollars per budget (`domain.budgets`); settled by `JobRepository.record_finals`."""

    def reserve(self, budgets: Sequence[Budget], amount_usd: float) -> Budget | None:
        """Reserve on every budget or none; the first budget without room, or None when reserved."""
        ...

    def release(self, budgets: Sequence[Budget], amount_usd: float) -> None: ...

    def committed(self, scope: str, name: str) -> tuple[float, float]:
        """(committed, spent) dollars of a budget."""
        ...


class JobRepository(Protocol):
    def record_total(self, source_id: str, total: int, *, bucket: str, key: str, etag: str) -> None:
        """Set a file's task count once (raises `TotalMismatch` for a different count)."""
        ...

    def unrecorded(self, lines: Sequence[FinalLine]) -> list[FinalLine]:
        """The lines, in order, that `record_finals` has not recorded yet."""
        ...

    def record_finals(self, lines: Sequence[FinalLine]) -> list[FinalLine]:
        """Record each final attempt once: counted in its file's job, its budgets settled; the lines this
        call recorded (the others were recorded before)."""
        ...

    def release_round(self, source_id: str, retry_round: int) -> None:
        """End the hold a retry round put on the job (idempotent)."""
        ...

    def get(self, source_id: str) -> JobProgress | None: ...

    def mark_results_written(self, source_id: str, location: str, counts: Mapping[str, int]) -> None: ...

    def mark_announced(self, source_id: str) -> None: ...

    def cancel_source(self, source_id: str, requested_by: str, requested_at: float) -> Cancellation:
        """Record a source's cancellation once (a later request keeps the first); the one kept."""
        ...

    def cancellation(self, source_id: str) -> Cancellation | None: ...


class PayloadStore(Protocol):
    """Where result texts too large for the table go; a reference comes back to read them."""

    def put(self, key: str, body: bytes) -> str: ...

    def get(self, ref: str) -> bytes: ...


class ObjectWriter(Protocol):
    """Writes a whole object (a results file) from a stream."""

    def upload(self, bucket: str, key: str, body: IO[bytes], content_type: str) -> None: ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[Event]) -> None:
        """Every event delivered, or an exception."""
        ...


class RunwareSubmitter(Protocol):
    def submit(self, tasks: list[TextInferenceTask], deadline: Deadline) -> SubmitOutcome: ...


class RunwarePoller(Protocol):
    def get_response(self, task_uuids: list[str], deadline: Deadline) -> PollOutcome: ...
