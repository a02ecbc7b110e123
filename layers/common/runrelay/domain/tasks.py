"""Tasks: statuses and their transitions, what storing a result can lead to, a task as read back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class TaskStatus(StrEnum):
    PENDING = "PENDING"  # written before it is sent: it may be at Runware (open until its outcome)
    SUBMITTED = "SUBMITTED"  # rows of earlier versions, marked once Runware had taken them: open too
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"  # never sent: its source was cancelled first


FINAL_STATUSES = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.REJECTED, TaskStatus.CANCELLED}
)
OPEN_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.SUBMITTED})
# The transitions a repository may make, and no other: a final task never changes status again, except
# a FAILED one that is retried.
TRANSITIONS: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    # CANCELLED from PENDING: Runware never had it, and its source was cancelled (the reconciler).
    TaskStatus.PENDING: frozenset(
        {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.REJECTED, TaskStatus.CANCELLED}
    ),
    TaskStatus.SUBMITTED: frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED}),
    TaskStatus.COMPLETED: frozenset(),
    # Only a retry (`domain.retries`) reopens a final task, as a new attempt with taskUUIDs of its own.
    TaskStatus.FAILED: frozenset({TaskStatus.PENDING}),
    TaskStatus.REJECTED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


def may_move(current: TaskStatus | str, to: TaskStatus | str) -> bool:
    return TaskStatus(to) in TRANSITIONS[TaskStatus(current)]


class StoreOutcome(StrEnum):
    STORED = "stored"  # a new result that did not complete the task (more wanted, or already final)
    COMPLETED = "completed"  # a new result that completed the task
    DUPLICATE = "duplicate"  # this result was stored before
    FAILED = "failed"  # the task is now FAILED
    IGNORED = "ignored"  # the task was already final; nothing changed


@dataclass(frozen=True)
class NewTask:
    task_uuid: str
    idempotency_key: str
    source_id: str
    source_seq: int
    number_results: int = 1
    caller_id: str | None = None
    metadata: Mapping[str, Any] | None = None
    budget: Mapping[str, Any] | None = None  # what was reserved for it (`domain.budgets.Reservation`)
    spec: Mapping[str, Any] | None = None  # an SQS task's spec, kept to retry it (the message is gone)


@dataclass(frozen=True)
class TaskRecord:
    """A task as stored. `results` are the stored result documents, oldest first (with
    `payloadRef`/`payloadBytes` in place of a text kept in the payload store, unless resolved)."""

    task_uuid: str
    status: TaskStatus
    source_id: str
    source_seq: int
    idempotency_key: str = ""
    number_results: int = 1
    result_count: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    caller_id: str | None = None
    metadata: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: float | None = None
    submitted_at: float | None = None
    completed_at: float | None = None
    updated_at: float | None = None
    attempt: int = 0  # 0 for the first run; each retry adds one (`task_ids.attempt_task_uuid`)
    attempts: list[dict[str, Any]] = field(default_factory=list)  # the earlier ones, oldest first
    retried_at: float | None = None  # when the current attempt was opened by a retry
    budget: dict[str, Any] | None = None  # the reservation it was sent under (`domain.budgets`)
    spec: dict[str, Any] | None = None  # an SQS task's spec (`NewTask.spec`)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def started_at(self) -> float | None:
        """When the task's current attempt went to Runware (or was opened, for one never submitted)."""
        if self.submitted_at is not None:
            return self.submitted_at
        return self.retried_at if self.retried_at is not None else self.created_at

    @property
    def attempt_opened_at(self) -> float | None:
        """When the current attempt began: the line's creation, or the retry that reopened it."""
        return self.retried_at if self.retried_at is not None else self.created_at


class StorableResult(Protocol):
    """What storing needs of a result: the task it belongs to, which of its `numberResults` it is (its
    identity: each slot is its own Runware task, `task_ids.result_task_uuid`), which attempt of the task
    produced it, and its fields. A polled result (`contract.InferenceResult`) and a pushed one
    (`webhook_results.WebhookResult`) are slot 0 of their own task's first attempt; `SlotResult`
    addresses any other. A result of an attempt other than the task's current one is ignored."""

    @property
    def taskUUID(self) -> str: ...
    @property
    def slot(self) -> int: ...
    @property
    def attempt(self) -> int: ...
    def as_document(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SlotResult:
    """A result's fields addressed to a slot of a task."""

    taskUUID: str
    slot: int
    document: Mapping[str, Any]
    attempt: int = 0

    def as_document(self) -> dict[str, Any]:
        return dict(self.document)


@dataclass(frozen=True)
class TaskBecameFinal:
    """A change of the tasks table in which one task reached a final status."""

    sequence_number: str
    task: TaskRecord


def summed_usage(results: Iterable[Mapping[str, Any]]) -> dict[str, int] | None:
    """The results' token counts added up, per kind (None when none carries usage)."""
    totals: dict[str, int] = {}
    for entry in results:
        for name, value in (entry.get("usage") or {}).items():
            if isinstance(value, int):
                totals[name] = totals.get(name, 0) + value
    return totals or None


def summed_cost(results: Iterable[Mapping[str, Any]]) -> float | None:
    """The results' costs added up (None when none carries one)."""
    costs = [entry["cost"] for entry in results if isinstance(entry.get("cost"), int | float)]
    return round(sum(costs), 10) if costs else None
