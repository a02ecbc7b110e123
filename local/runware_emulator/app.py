"""Request handling without sockets: a submit or admin request in, a `Reply` describing the answer out."""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from local.runware_emulator.counters import Counters
from local.runware_emulator.engine import Engine
from local.runware_emulator.faults import FaultConfig, FaultInjector, RateLimiter
from local.runware_emulator.sse import SseShape, stream_events
from local.runware_emulator.validation import (
    AUTHENTICATION,
    Rejection,
    authenticate,
    check_header,
    parse_body,
    validate_tasks,
)
from local.runware_emulator.webhooks import WebhookDispatcher

_STATUS_FAULTS = {
    429: ("rateLimitExceeded", "Too many requests. Slow down and retry after the Retry-After interval."),
    500: ("internalServerError", "Something went wrong on our end. Please retry."),
    503: ("serviceUnavailable", "The service is temporarily unavailable. Please retry."),
}


@dataclass
class Reply:
    """How to answer: a JSON body, or SSE events spaced `event_gap` apart; possibly no answer at all."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[str] | None = None
    event_gap: float = 0.0
    respond_at: float = 0.0  # monotonic time before which the answer must not start
    drop: bool = False  # close the connection instead of answering (the work is done regardless)


def _refusal(status: int, *, retry_after: int | None) -> Reply:
    """A whole request refused with Runware's error body for `status` (and a Retry-After, if given)."""
    code, message = _STATUS_FAULTS[status]
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return Reply(status, {"errors": [{"code": code, "message": message}]}, headers=headers)


class EmulatorApp:
    """Ties validation, faults, the engine and the counters into submit and admin handlers."""

    def __init__(
        self,
        api_key: str | None,
        engine: Engine,
        faults: FaultInjector,
        counters: Counters,
        dispatcher: WebhookDispatcher,
        sse_shape: SseShape = "bare",
    ) -> None:
        self.api_key = api_key
        self.engine = engine
        self.faults = faults
        self.counters = counters
        self.rate_limiter = RateLimiter()
        self.dispatcher = dispatcher
        self.sse_shape = sse_shape

    def handle_submit(self, authorization: str | None, raw: bytes) -> Reply:
        now = time.monotonic()
        try:
            check_header(authorization, self.api_key)
            tasks, auth_task = authenticate(authorization, parse_body(raw), self.api_key)
            injected = self._rate_limited() or self._injected_status()
            if injected is not None:
                return injected
            if not tasks and auth_task is not None:
                return Reply(200, {"data": [self._authenticated(auth_task)]})
            accepted = validate_tasks(tasks)
        except Rejection as rejection:
            return Reply(rejection.status, {"errors": rejection.errors})

        config = self.faults.config
        delay = 0.0
        if config.latency > 0:
            delay = config.latency * self.engine.options.time_scale
            self.counters.fault("latency")
        drop = self.faults.roll(config.drop_response_rate)
        if drop:
            self.counters.fault("dropped_response")
        outcome = self.engine.submit(accepted)
        respond_at = max(outcome.respond_at, now + delay)
        if outcome.stream is not None:
            events = stream_events(outcome.stream, self.sse_shape)
            gap = self.engine.options.result_delay * self.engine.options.time_scale / len(events)
            start = outcome.stream.started_at + delay
            return Reply(200, events=events, event_gap=gap, respond_at=start, drop=drop)
        return Reply(200, outcome.body(), respond_at=respond_at, drop=drop)

    def _rate_limited(self) -> Reply | None:
        wait = self.rate_limiter.admit(self.faults.config.rate_limit)
        if wait is None:
            return None
        self.counters.fault("rate_limited")
        return _refusal(429, retry_after=max(1, math.ceil(wait)))

    def _injected_status(self) -> Reply | None:
        status = self.faults.submit_status_fault()
        if status is None:
            return None
        self.counters.fault(f"http_{status}")
        return _refusal(status, retry_after=self.faults.config.retry_after if status == 429 else None)

    @staticmethod
    def _authenticated(auth_task: dict[str, Any]) -> dict[str, Any]:
        session = auth_task.get("connectionSessionUUID") or str(uuid.uuid4())
        return {"taskType": AUTHENTICATION, "connectionSessionUUID": session}

    # --- admin --------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        snapshot = self.counters.snapshot()
        snapshot["webhooks"]["pending"] = self.dispatcher.pending()
        snapshot["tasks"] = self.engine.task_count()
        snapshot["fault_config"] = self.faults.config.to_dict()
        return snapshot

    def set_faults(self, config: FaultConfig) -> None:
        self.faults.replace(config)

    def reset(self) -> None:
        """Forget tasks, counters and queued deliveries, and reseed the die; the fault settings stay."""
        self.dispatcher.clear()
        self.engine.reset()
        self.counters.reset()
        self.faults.reset()

    def handle_admin_faults(self, raw: bytes) -> Reply:
        try:
            changes = json.loads(raw or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of fault settings")
            self.set_faults(self.faults.config.with_changes(changes))
        except (ValueError, TypeError) as problem:
            return Reply(400, {"errors": [{"code": "invalidFaults", "message": str(problem)}]})
        return Reply(200, {"faults": self.faults.config.to_dict()})
