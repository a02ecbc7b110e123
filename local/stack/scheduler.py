"""EventBridge schedules, scaled down: invoke a function every `period_seconds` with a Scheduled Event."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from local.stack.background import BackgroundWorker

log = logging.getLogger(__name__)


def scheduled_event(*, rule_arn: str, region: str, account_id: str) -> dict[str, Any]:
    """The event EventBridge sends for a schedule rule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class ScheduleRunner(BackgroundWorker):
    """Calls `invoke(event)` every `period_seconds` on a background thread (first call after one period)."""

    def __init__(
        self,
        invoke: Callable[[dict[str, Any]], Any],
        period_seconds: float,
        *,
        rule_arn: str,
        region: str,
        account_id: str,
    ) -> None:
        if period_seconds <= 0:
            raise ValueError("period_seconds must be positive")
        self._invoke = invoke
        self._period = period_seconds
        self._rule_arn = rule_arn
        self._region = region
        self._account_id = account_id
        super().__init__(f"schedule:{rule_arn}")
        self.runs = 0
        self.errors = 0

    def fire(self) -> Any:
        """One invocation now (also what the timer does); errors are logged and counted, as
        EventBridge's async invoke would swallow them."""
        self.runs += 1
        try:
            return self._invoke(
                scheduled_event(rule_arn=self._rule_arn, region=self._region, account_id=self._account_id)
            )
        except Exception as error:
            self.errors += 1
            # A run cut short by the stack stopping is not the function's error. Otherwise one line here, as
            # the rule's metrics would; the function's own log stream holds the traceback.
            if not self._stop.is_set():
                log.warning("scheduled invocation for %s failed: %s", self._rule_arn, error)
            return None

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self.fire()

    def stop(self, timeout: float = 0.0) -> None:
        """Stop ticking without waiting for a run in hand: EventBridge invokes asynchronously, so nothing
        waits on it; stopping the function's environments ends it, as deleting the stack would."""
        super().stop(timeout)
