"""Retrying a file's failed lines: only what did not complete runs again, each as a new attempt.

A retry names a source (an S3 input file) and optionally the error codes worth retrying and a maximum
number of attempts. Every FAILED task of the file that matches (tasks that expired fail with
`taskExpired`) is reopened as its next attempt: PENDING again, with taskUUIDs of its own
(`task_ids.attempt_task_uuid`), so the attempt is itself exactly-once, and a late answer to an earlier
attempt is ignored. COMPLETED, REJECTED and CANCELLED lines never run again.

A retry is a round of the file's job: the job is held (not complete) while its tasks are reopened, then
released; once every retried attempt is final again, the results file is rewritten (latest attempt per
line) and JobCompleted is published again with the round's number.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..task_ids import MAX_ATTEMPTS, attempt_task_uuid
from .tasks import TaskRecord, TaskStatus

# The error a task that outlived MAX_TASK_AGE_SECONDS fails with (the reconciler writes it).
EXPIRED_CODE = "taskExpired"


@dataclass(frozen=True)
class RetryRequest:
    source_id: str
    requested_by: str
    error_codes: frozenset[str] | None = None  # None: every error
    max_attempts: int = MAX_ATTEMPTS  # attempts in all, the first one included

    def wants(self, task: TaskRecord) -> bool:
        """Whether this retry runs the task again: FAILED, with a wanted error, under the attempt cap."""
        if task.status != TaskStatus.FAILED or task.attempt + 1 >= min(self.max_attempts, MAX_ATTEMPTS):
            return False
        return self.error_codes is None or error_code(task) in self.error_codes


def error_code(task: TaskRecord) -> str | None:
    code = (task.error or {}).get("code")
    return str(code) if code is not None else None


def attempt_record(task: TaskRecord, now: float) -> dict[str, Any]:
    """What a task keeps of an attempt that is being retried."""
    record: dict[str, Any] = {
        "attempt": task.attempt,
        "taskUUID": attempt_task_uuid(task.task_uuid, task.attempt),
        "status": task.status.value,
        "retriedAt": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
    }
    if task.error:
        record["error"] = dict(task.error)
    if task.completed_at is not None:
        record["endedAt"] = datetime.fromtimestamp(task.completed_at, UTC).isoformat(timespec="seconds")
    return record


@dataclass(frozen=True)
class Reopened:
    """A task made PENDING again by a retry round, with the attempt it is now on."""

    task_uuid: str
    source_seq: int
    attempt: int


class RetryRefused(Exception):
    """The retry cannot start: the reason is for the operator (e.g. the file's job is still running)."""


def refusal_for_job(expected: int | None, finals: int, held: bool, announced: bool) -> str | None:
    """Why a job cannot start a new retry round now, or None when it can (or is in one already)."""
    if held:
        return None  # a round that stopped half-way (a crash, a timeout): it is carried on
    if expected is None or finals < expected:
        return f"the file is still running ({finals} of {expected or '?'} lines final): retry once it is done"
    if not announced:
        return "the file's results are still being written: retry in a moment"
    return None


def chosen(tasks: Collection[TaskRecord], request: RetryRequest) -> list[TaskRecord]:
    return [task for task in tasks if request.wants(task)]
