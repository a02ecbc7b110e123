"""Reconcile: heal lost webhooks by polling Runware (getResponse) for tasks open too long.

Overdue tasks come from the sparse OpenTasks index (never a Scan); each is read (one BatchGetItem per
batch) to poll the Runware task of every result it wants, several batches at once after the first.
Results go through the same
idempotent `TaskRepository.store_result` as webhooks, so a late webhook and a poll never double-store.
A task Runware never had is failed once it is too old, or cancelled at once when its source was cancelled
(a PENDING row may or may not have been sent: only Runware's answer tells).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .deadline import Deadline
from .domain.retries import EXPIRED_CODE
from .domain.tasks import OPEN_STATUSES, SlotResult, StoreOutcome, TaskRecord
from .ports import RunwarePoller, TaskRepository
from .runware_errors import TransientRunwareError
from .task_ids import result_task_uuid

if TYPE_CHECKING:
    from .contract import InferenceResult, RunwareError
    from .domain.cancellations import Cancellation
    from .runware_client import PollOutcome

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    checked: int = 0
    results_stored: int = 0
    completed: int = 0
    failed: int = 0
    still_processing: int = 0
    expired: int = 0
    cancelled: int = 0
    polls: int = 0
    skipped: int = 0  # tasks whose write failed alone (logged): left for a later run
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, other: ReconcileReport) -> None:
        """Count a batch's report into this one."""
        for counter in fields(self):
            if counter.name != "outcomes":
                setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))
        for outcome, count in other.outcomes.items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + count


@dataclass(frozen=True)
class ReconcileConfig:
    """How much one run takes on (RECONCILE_MAX_TASKS_PER_RUN; docs/capacity.md has the rates)."""

    overdue_after_seconds: int = 900
    max_task_age_seconds: int = 86_400
    poll_batch_size: int = 50
    # The deadline ends a run in any case; the count keeps one run's list of overdue tasks in proportion.
    max_tasks_per_run: int = 20_000
    # Batches polled at once (each a getResponse and the writes of its answer): a run spends most of
    # its time waiting on Runware and DynamoDB, and polls in flight overlap those waits
    # (bench/README.md, reconcile_rate).
    polls_in_flight: int = 4
    # Stop starting new polls with this much time left.
    reserve_seconds: float = 5.0


class ReconcileService:
    def __init__(
        self,
        store: TaskRepository,
        runware: RunwarePoller,
        config: ReconcileConfig,
        cancellation_of: Callable[[str], Cancellation | None] = lambda source_id: None,
    ) -> None:
        self.store = store
        self.runware = runware
        self.config = config
        self.cancellation_of = cancellation_of  # `JobRepository.cancellation`

    def run(self, deadline: Deadline, now: float | None = None) -> ReconcileReport:
        now = time.time() if now is None else now
        cutoff = int(now - self.config.overdue_after_seconds)
        overdue = list(self.store.open_tasks_since_before(cutoff, limit=self.config.max_tasks_per_run))
        report = ReconcileReport(checked=len(overdue))
        size = self.config.poll_batch_size
        batches = [overdue[start : start + size] for start in range(0, len(overdue), size)]
        stop = threading.Event()  # Runware is struggling, time is short, or a batch broke: start no more

        def reconcile(batch: list[str]) -> ReconcileReport | None:
            if stop.is_set() or deadline.remaining() < self.config.reserve_seconds:
                stop.set()
                return None
            try:
                return self._reconcile_batch(batch, deadline, now)
            except TransientRunwareError:
                stop.set()  # the next scheduled run tries again
                return None
            except BaseException:
                stop.set()
                raise

        # The first batch alone: a Runware that does not answer gets one poll, not one per thread, and the
        # client (its key read from Secrets Manager) is made once.
        parts = [reconcile(batch) for batch in batches[:1]]
        if len(batches) > 1 and not stop.is_set():
            with ThreadPoolExecutor(self.config.polls_in_flight, thread_name_prefix="polls") as pool:
                parts.extend(pool.map(reconcile, batches[1:]))
        for part in parts:
            if part is not None:
                report.add(part)
        return report

    def _reconcile_batch(self, batch: list[str], deadline: Deadline, now: float) -> ReconcileReport:
        report = ReconcileReport()
        # Read first: a task's results are polled under their own Runware tasks, one per slot.
        tasks = [task for task in self.store.tasks_in_order(batch) if task.status in OPEN_STATUSES]
        slots = {
            result_task_uuid(task.task_uuid, slot, task.attempt): (task, slot)
            for task in tasks
            for slot in range(task.number_results)
        }
        if not slots:
            return report
        outcome = self.runware.get_response(list(slots), deadline)
        report.polls += 1
        self._apply(tasks, slots, outcome, now, report)
        return report

    def _apply(
        self,
        tasks: list[TaskRecord],
        slots: dict[str, tuple[TaskRecord, int]],
        outcome: PollOutcome,
        now: float,
        report: ReconcileReport,
    ) -> None:
        each = _EachTask(report)
        answered: set[str] = set()  # Runware tasks whose outcome this poll settled
        for result in outcome.results:
            if result.taskUUID in slots:  # else not asked for
                answered.add(result.taskUUID)
                task, slot = slots[result.taskUUID]
                each.run(task.task_uuid, self._store_polled, task, slot, result, report)
        for runware_uuid, error in outcome.errors.items():
            if runware_uuid in slots:
                answered.add(runware_uuid)
                task, _ = slots[runware_uuid]
                each.run(task.task_uuid, self._settle_error, task, error, now, report)
        unsettled = {
            task.task_uuid for runware_uuid, (task, _) in slots.items() if runware_uuid not in answered
        }
        unsettled |= {slots[uuid][0].task_uuid for uuid in outcome.processing if uuid in slots}
        for task in tasks:
            if task.task_uuid in unsettled:
                each.run(task.task_uuid, self._settle_unanswered, task, now, report)

    def _store_polled(
        self, task: TaskRecord, slot: int, result: InferenceResult, report: ReconcileReport
    ) -> None:
        stored = self.store.store_result(
            SlotResult(task.task_uuid, slot, result.as_document(), attempt=task.attempt)
        )
        report.outcomes[stored.value] = report.outcomes.get(stored.value, 0) + 1
        if stored in (StoreOutcome.STORED, StoreOutcome.COMPLETED):
            report.results_stored += 1
        report.completed += stored == StoreOutcome.COMPLETED

    def _settle_error(
        self, task: TaskRecord, error: RunwareError, now: float, report: ReconcileReport
    ) -> None:
        # Runware does not know a task we never managed to submit: cancelled if its source was, else
        # given up only once it is old (the submitter may yet send it).
        if "notfound" in error.code.lower():
            cancellation = self.cancellation_of(task.source_id)
            if cancellation is not None:
                report.cancelled += self.store.mark_cancelled(
                    task.task_uuid, cancellation.error(), attempt=task.attempt
                )
                return
            if not self._too_old(task, now):
                return
        if self.store.mark_failed(task.task_uuid, error.model_dump(exclude_none=True), attempt=task.attempt):
            report.failed += 1

    def _settle_unanswered(self, task: TaskRecord, now: float, report: ReconcileReport) -> None:
        view = self.store.get_task(task.task_uuid, resolve_payloads=False)
        if view is None or view.status not in OPEN_STATUSES:
            return
        if self._too_old(view, now):
            expired = {"code": EXPIRED_CODE, "message": "no result within MAX_TASK_AGE_SECONDS"}
            if self.store.mark_failed(task.task_uuid, expired, attempt=view.attempt):
                report.expired += 1
        else:
            report.still_processing += 1

    def _too_old(self, task: TaskRecord, now: float) -> bool:
        opened = task.attempt_opened_at
        return now - (now if opened is None else opened) > self.config.max_task_age_seconds


class _EachTask:
    """Runs one task's writes of a batch. A task that cannot be written is that task's trouble: logged,
    counted (`skipped`) and left for a later run, since runs take tasks oldest first and would all stop at
    it. Two failures in a row are the store's trouble: raised, and the run stops (the next one tries again).
    """

    def __init__(self, report: ReconcileReport) -> None:
        self.report = report
        self.failed_last = False

    def run(self, task_uuid: str, write: Callable[..., None], *args: Any) -> None:
        try:
            write(*args)
        except Exception:
            if self.failed_last:
                raise
            self.failed_last = True
            self.report.skipped += 1
            log.exception("task %s could not be written; skipped until the next run", task_uuid)
            return
        self.failed_last = False
