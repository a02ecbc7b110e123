"""Reconcile: heal lost webhooks by polling Runware (getResponse) for tasks open too long.

Overdue tasks come from the sparse OpenTasks index (never a Scan); each is read (one BatchGetItem per
batch) to poll the Runware task of every result it wants. Results go through the same
idempotent `TaskRepository.store_result` as webhooks, so a late webhook and a poll never double-store.
A task Runware never had is failed once it is too old, or cancelled at once when its source was cancelled
(a PENDING row may or may not have been sent: only Runware's answer tells).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .deadline import Deadline
from .domain.retries import EXPIRED_CODE
from .domain.tasks import OPEN_STATUSES, SlotResult, StoreOutcome, TaskRecord
from .ports import RunwarePoller, TaskRepository
from .runware_errors import TransientRunwareError
from .task_ids import result_task_uuid

if TYPE_CHECKING:
    from .domain.cancellations import Cancellation
    from .runware_client import PollOutcome


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
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ReconcileConfig:
    overdue_after_seconds: int = 900
    max_task_age_seconds: int = 86_400
    poll_batch_size: int = 50
    max_tasks_per_run: int = 5_000
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
        for start in range(0, len(overdue), self.config.poll_batch_size):
            if deadline.remaining() < self.config.reserve_seconds:
                break
            batch = overdue[start : start + self.config.poll_batch_size]
            # Read first: a task's results are polled under their own Runware tasks, one per slot.
            tasks = [task for task in self.store.tasks_in_order(batch) if task.status in OPEN_STATUSES]
            slots = {
                result_task_uuid(task.task_uuid, slot, task.attempt): (task, slot)
                for task in tasks
                for slot in range(task.number_results)
            }
            if not slots:
                continue
            try:
                outcome = self.runware.get_response(list(slots), deadline)
            except TransientRunwareError:
                break  # Runware is struggling; the next scheduled run tries again
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
        answered: set[str] = set()  # Runware tasks whose outcome this poll settled
        for result in outcome.results:
            if result.taskUUID not in slots:
                continue  # not asked for
            task, slot = slots[result.taskUUID]
            answered.add(result.taskUUID)
            stored = self.store.store_result(
                SlotResult(task.task_uuid, slot, result.as_document(), attempt=task.attempt)
            )
            report.outcomes[stored.value] = report.outcomes.get(stored.value, 0) + 1
            if stored in (StoreOutcome.STORED, StoreOutcome.COMPLETED):
                report.results_stored += 1
            report.completed += stored == StoreOutcome.COMPLETED
        for runware_uuid, error in outcome.errors.items():
            if runware_uuid not in slots:
                continue
            task, _ = slots[runware_uuid]
            answered.add(runware_uuid)
            # Runware does not know a task we never managed to submit: cancelled if its source was, else
            # given up only once it is old (the submitter may yet send it).
            if "notfound" in error.code.lower():
                cancellation = self.cancellation_of(task.source_id)
                if cancellation is not None:
                    moved = self.store.mark_cancelled(
                        task.task_uuid, cancellation.error(), attempt=task.attempt
                    )
                    report.cancelled += moved
                    continue
                if not self._too_old(task, now):
                    continue
            failure = error.model_dump(exclude_none=True)
            if self.store.mark_failed(task.task_uuid, failure, attempt=task.attempt):
                report.failed += 1
        unsettled = {
            task.task_uuid for runware_uuid, (task, _) in slots.items() if runware_uuid not in answered
        }
        unsettled |= {slots[uuid][0].task_uuid for uuid in outcome.processing if uuid in slots}
        for task in tasks:
            if task.task_uuid not in unsettled:
                continue
            view = self.store.get_task(task.task_uuid, resolve_payloads=False)
            if view is None or view.status not in OPEN_STATUSES:
                continue
            if self._too_old(view, now):
                expired = {"code": EXPIRED_CODE, "message": "no result within MAX_TASK_AGE_SECONDS"}
                if self.store.mark_failed(task.task_uuid, expired, attempt=view.attempt):
                    report.expired += 1
            else:
                report.still_processing += 1

    def _too_old(self, task: TaskRecord, now: float) -> bool:
        opened = task.attempt_opened_at
        return now - (now if opened is None else opened) > self.config.max_task_age_seconds
