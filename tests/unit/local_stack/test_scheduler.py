"""The local EventBridge schedule: it stops without waiting for a run in hand, as deleting a stack does."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from local.stack.scheduler import ScheduleRunner

RULE = "arn:aws:events:us-east-1:123456789012:rule/runrelay-local-ReconcileFunctionEvery5Minutes"


class BlockingFunction:
    """A function whose first run blocks until released, then fails as a killed environment does."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.release = threading.Event()
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        self.running.set()
        self.release.wait(30)
        raise RuntimeError("ReconcileFunction: the local runtime is stopped")


def _runner(function: BlockingFunction) -> ScheduleRunner:
    return ScheduleRunner(function, 0.01, rule_arn=RULE, region="us-east-1", account_id="123456789012")


def test_stop_returns_while_a_scheduled_run_is_in_hand(caplog: pytest.LogCaptureFixture) -> None:
    function = BlockingFunction()
    runner = _runner(function).start()
    assert function.running.wait(10)
    stopper = threading.Thread(target=runner.stop)
    stopper.start()
    stopper.join(10)
    stopped_before_the_run_ended = not stopper.is_alive()
    with caplog.at_level(logging.WARNING, logger="local.stack.scheduler"):
        function.release.set()  # the pool's stop kills the environment: the run ends in an error
        stopper.join()
        for _ in range(100):
            if runner.errors:
                break
            time.sleep(0.05)
    assert stopped_before_the_run_ended
    assert runner.errors == 1
    assert caplog.records == []  # cut short by the stop: not reported as the function's failure
    assert len(function.events) == 1
    assert function.events[0]["detail-type"] == "Scheduled Event"
    assert function.events[0]["resources"] == [RULE]


def test_a_failed_run_while_ticking_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    function = BlockingFunction()
    function.release.set()
    runner = _runner(function)
    with caplog.at_level(logging.WARNING, logger="local.stack.scheduler"):
        assert runner.fire() is None
    assert runner.errors == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"scheduled invocation for {RULE} failed: ReconcileFunction: the local runtime is stopped"
    ]
