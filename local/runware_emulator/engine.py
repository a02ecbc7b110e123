"""The emulator's state machine, free of HTTP: claim taskUUIDs, run tasks, answer polls, plan webhooks.

Each taskUUID runs at most once for the emulator's lifetime (until reset); a repeat is answered with a
`conflictTaskUUID` error beside the other tasks' data. Result `i` of a task becomes visible (to
getResponse, and as a webhook) `result_delay * (i + 1)` scaled seconds after the task starts.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from local.runware_emulator.counters import Counters
from local.runware_emulator.faults import FaultInjector, task_fails
from local.runware_emulator.generation import (
    Completion,
    generate,
    identical_result,
    shape_result,
    uuid_fraction,
)
from local.runware_emulator.validation import PollTask, Task, TextTask, error_item
from local.runware_emulator.webhooks import WebhookDispatcher

WebhookShape = Literal["wrapped", "bare", "mixed"]
ErrorStyle = Literal["errors", "data"]
WEBHOOK_SHAPES: tuple[WebhookShape, ...] = ("wrapped", "bare", "mixed")
ERROR_STYLES: tuple[ErrorStyle, ...] = ("errors", "data")

TASK_FAILURE = {
    "code": "timeoutProvider",
    "message": "The external provider did not respond within the timeout window. "
    "The request was automatically terminated.",
}
DUPLICATE_GAP = 0.01  # seconds between the two copies of a duplicated webhook, before time_scale


@dataclass(frozen=True)
class EngineOptions:
    webhook_shape: WebhookShape = "wrapped"
    error_style: ErrorStyle = "errors"  # where getResponse reports failed tasks
    time_scale: float = 1.0
    result_delay: float = 0.02  # seconds between a task's successive results, before time_scale

    def __post_init__(self) -> None:
        if self.webhook_shape not in WEBHOOK_SHAPES:
            raise ValueError(f"webhook_shape must be one of {WEBHOOK_SHAPES}, got {self.webhook_shape!r}")
        if self.error_style not in ERROR_STYLES:
            raise ValueError(f"error_style must be one of {ERROR_STYLES}, got {self.error_style!r}")
        if self.time_scale < 0 or self.result_delay < 0:
            raise ValueError("time_scale and result_delay must be non-negative")


@dataclass
class TaskRecord:
    task: dict[str, Any]
    started_at: float
    ready_at: list[float]
    completions: list[Completion]
    results: list[dict[str, Any]]
    failure: dict[str, Any] | None

    @property
    def task_uuid(self) -> str:
        return str(self.task["taskUUID"])

    @property
    def finished_at(self) -> float:
        return self.ready_at[-1]


@dataclass
class SubmitOutcome:
    """What to answer: `data`/`errors` items, a record to stream, and when the answer is due."""

    data: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    stream: TaskRecord | None = None
    respond_at: float = 0.0

    def body(self) -> dict[str, Any]:
        """`{"data": [...]}`, with `errors` only when there are some (the SDK fails on any errors key)."""
        body: dict[str, Any] = {"data": self.data}
        if self.errors:
            body["errors"] = self.errors
        return body


def conflict_error(task_uuid: str) -> dict[str, Any]:
    message = f"A task with taskUUID {task_uuid} already exists; it is not run again."
    return error_item("conflictTaskUUID", message, "taskUUID", taskType="textInference", taskUUID=task_uuid)


def task_not_found(task_uuid: str) -> dict[str, Any]:
    message = f"No task with taskUUID {task_uuid} was found."
    return error_item("taskNotFound", message, "taskUUID", taskType="getResponse", taskUUID=task_uuid)


def failure_error_item(record: TaskRecord) -> dict[str, Any]:
    """A failed task as a top-level `errors` item."""
    assert record.failure is not None
    return {**record.failure, "status": "error", "taskType": "textInference", "taskUUID": record.task_uuid}


def failure_data_item(record: TaskRecord) -> dict[str, Any]:
    """A failed task as a `data` item (the other documented placement)."""
    assert record.failure is not None
    return {
        "taskType": "textInference",
        "taskUUID": record.task_uuid,
        "status": "error",
        "error": dict(record.failure),
    }


class Engine:
    """Task state and execution; thread-safe."""

    def __init__(
        self,
        options: EngineOptions,
        faults: FaultInjector,
        counters: Counters,
        dispatcher: WebhookDispatcher,
    ) -> None:
        self.options = options
        self._faults = faults
        self._counters = counters
        self._dispatcher = dispatcher
        self._tasks: dict[str, TaskRecord] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._tasks.clear()

    def task_count(self) -> int:
        with self._lock:
            return len(self._tasks)

    def submit(self, tasks: list[Task]) -> SubmitOutcome:
        """Run the new textInference tasks, refuse repeated taskUUIDs, answer getResponse polls."""
        now = time.monotonic()
        outcome = SubmitOutcome(respond_at=now)
        started: list[TaskRecord] = []
        with self._lock:
            for task in tasks:
                if not isinstance(task, TextTask):
                    continue
                key = task.task_uuid.lower()
                if key in self._tasks:
                    outcome.errors.append(conflict_error(task.task_uuid))
                    continue
                record = self._execute(task, now)
                self._tasks[key] = record
                started.append(record)
        for record in started:
            self._answer_started(record, outcome)
        for task in tasks:
            if isinstance(task, PollTask):
                self._answer_poll(task.task_uuid, time.monotonic(), outcome)
        return outcome

    def poll(self, task_uuid: str) -> SubmitOutcome:
        """getResponse for one taskUUID, as an outcome (convenience for tests and tools)."""
        outcome = SubmitOutcome(respond_at=time.monotonic())
        self._answer_poll(task_uuid, outcome.respond_at, outcome)
        return outcome

    def _execute(self, task: TextTask, now: float) -> TaskRecord:
        payload = task.payload
        count = int(payload.get("numberResults", 1))
        step = self.options.result_delay * self.options.time_scale
        ready_at = [now + step * (index + 1) for index in range(count)]
        failure = None
        if task_fails(task.task_uuid, self._faults.config):
            failure = dict(TASK_FAILURE)
            self._counters.fault("task_error")
            completions: list[Completion] = []
            results: list[dict[str, Any]] = []
        elif self._faults.config.identical_results:
            pairs = [identical_result(payload, index) for index in range(count)]
            completions, results = [c for c, _ in pairs], [r for _, r in pairs]
        else:
            completions = [generate(payload, index) for index in range(count)]
            results = [shape_result(payload, index, c) for index, c in enumerate(completions)]
        self._counters.executed(task.task_uuid)
        return TaskRecord(payload, now, ready_at, completions, results, failure)

    def _answer_started(self, record: TaskRecord, outcome: SubmitOutcome) -> None:
        method = record.task.get("deliveryMethod", "sync")
        if method == "async":
            outcome.data.append({"taskType": "textInference", "taskUUID": record.task_uuid})
            if isinstance(record.task.get("webhookURL"), str):
                self._plan_webhooks(record)
            return
        outcome.respond_at = max(outcome.respond_at, record.finished_at)
        if record.failure is not None:
            outcome.errors.append(failure_error_item(record))
        elif method == "stream":
            outcome.stream = record
        else:
            outcome.data.extend(record.results)

    def _answer_poll(self, task_uuid: str, now: float, outcome: SubmitOutcome) -> None:
        with self._lock:
            record = self._tasks.get(task_uuid.lower())
        if record is None:
            outcome.errors.append(task_not_found(task_uuid))
            return
        processing = {"taskType": "textInference", "taskUUID": record.task_uuid, "status": "processing"}
        if record.failure is not None:
            if now < record.finished_at:
                outcome.data.append(processing)
            elif self.options.error_style == "data":
                outcome.data.append(failure_data_item(record))
            else:
                outcome.errors.append(failure_error_item(record))
            return
        ready = [result for result, at in zip(record.results, record.ready_at, strict=True) if at <= now]
        outcome.data.extend(ready)
        if len(ready) < len(record.results):
            outcome.data.append(processing)

    def _webhook_body(self, record: TaskRecord, index: int) -> bytes:
        shape = self.options.webhook_shape
        if shape == "mixed":
            parity = int(uuid_fraction(record.task_uuid, "shape") * 2)
            shape = "wrapped" if (index + parity) % 2 == 0 else "bare"
        if record.failure is not None:
            body: Any = (
                {"errors": [failure_error_item(record)]} if shape == "wrapped" else failure_data_item(record)
            )
        else:
            result = record.results[index]
            body = {"data": [result]} if shape == "wrapped" else result
        return json.dumps(body).encode()

    def _plan_webhooks(self, record: TaskRecord) -> None:
        """One delivery per result (one for a failed task), with faults decided now by the seeded die."""
        url = str(record.task["webhookURL"])
        config = self._faults.config
        scale = self.options.time_scale
        if record.failure is not None:
            plan = [(0, record.finished_at)]
        else:
            due = list(record.ready_at)
            if len(due) > 1 and self._faults.roll(config.webhook_reorder_rate):
                order = self._faults.shuffled(list(range(len(due))))
                if order == sorted(order):
                    order.reverse()
                due = [record.ready_at[position] for position in order]
                self._counters.fault("webhook_reordered")
            plan = list(enumerate(due))
        for index, due_at in plan:
            if self._faults.roll(config.webhook_drop_rate):
                self._counters.fault("webhook_dropped")
                self._counters.webhook("dropped")
                continue
            when = due_at
            if self._faults.roll(config.webhook_late_rate):
                when += config.late_delay * scale
                self._counters.fault("webhook_late")
            body = self._webhook_body(record, index)
            self._dispatcher.schedule(url, body, when)
            if self._faults.roll(config.webhook_duplicate_rate):
                self._dispatcher.schedule(url, body, when + DUPLICATE_GAP * scale)
                self._counters.fault("webhook_duplicate")
                self._counters.webhook("duplicated")
