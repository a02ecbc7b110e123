"""The emulator's webhook dispatcher without sockets: retry schedule, backoff window, give-up, clear."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from local.runware_emulator.counters import Counters
from local.runware_emulator.webhooks import RetryPolicy, WebhookDispatcher


class ScriptedSender:
    """Answers with the given statuses in turn (then 200) and records when and what it was sent."""

    def __init__(self, *statuses: int) -> None:
        self._statuses = iter(statuses)
        self.calls: list[tuple[str, bytes, float]] = []
        self._lock = threading.Lock()

    def __call__(self, url: str, body: bytes, timeout: float) -> int:
        with self._lock:
            self.calls.append((url, body, time.monotonic()))
            return next(self._statuses, 200)


class RecordingJitter:
    """Full jitter replaced by a fixed choice (the window's top), recording every window asked for."""

    def __init__(self) -> None:
        self.windows: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.windows.append((low, high))
        return high


@pytest.fixture
def counters() -> Counters:
    return Counters()


@contextmanager
def running_dispatcher(
    sender: ScriptedSender, jitter: RecordingJitter, counters: Counters, scale: float, attempts: int = 8
) -> Iterator[WebhookDispatcher]:
    dispatcher = WebhookDispatcher(
        RetryPolicy(max_attempts=attempts), counters, jitter=jitter, time_scale=scale, sender=sender
    )
    dispatcher.start()
    try:
        yield dispatcher
    finally:
        dispatcher.stop()


def test_backoff_ceiling_starts_at_250ms_doubles_and_caps_at_8s() -> None:
    policy = RetryPolicy()

    ceilings = [policy.backoff_ceiling(attempt) for attempt in range(1, 9)]

    assert ceilings == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert policy.max_attempts == 8


def test_always_failing_delivery_uses_full_jitter_windows_then_gives_up(counters: Counters) -> None:
    sender = ScriptedSender(*([500] * 20))
    jitter = RecordingJitter()
    with running_dispatcher(sender, jitter, counters, scale=0.001) as dispatcher:
        dispatcher.schedule("http://127.0.0.1:1/hook?token=t", b"{}", time.monotonic())
        assert dispatcher.wait_idle(10)

    assert jitter.windows == [
        (0.0, 0.25),
        (0.0, 0.5),
        (0.0, 1.0),
        (0.0, 2.0),
        (0.0, 4.0),
        (0.0, 8.0),
        (0.0, 8.0),
    ]
    assert len(sender.calls) == 8
    assert {call[0] for call in sender.calls} == {"http://127.0.0.1:1/hook?token=t"}
    snapshot = counters.snapshot()["webhooks"]
    assert (snapshot["attempted"], snapshot["failed_attempts"], snapshot["gave_up"]) == (8, 8, 1)


def test_retries_wait_the_scaled_backoff(counters: Counters) -> None:
    scale = 0.04
    sender = ScriptedSender(500, 502, 503, 429)
    jitter = RecordingJitter()
    with running_dispatcher(sender, jitter, counters, scale=scale) as dispatcher:
        dispatcher.schedule("http://127.0.0.1:1/hook", b"{}", time.monotonic())
        assert dispatcher.wait_idle(10)

    times = [call[2] for call in sender.calls]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 4
    for gap, (_, ceiling) in zip(gaps, jitter.windows, strict=True):
        assert gap >= ceiling * scale
    assert counters.snapshot()["webhooks"]["succeeded"] == 1


def test_delivery_is_not_sent_before_it_is_due(counters: Counters) -> None:
    sender = ScriptedSender()
    with running_dispatcher(sender, RecordingJitter(), counters, scale=1.0) as dispatcher:
        due = time.monotonic() + 0.2
        dispatcher.schedule("http://127.0.0.1:1/hook", b"{}", due)
        assert dispatcher.pending() == 1
        assert dispatcher.wait_idle(5)

    assert sender.calls[0][2] >= due


def test_clear_forgets_queued_deliveries(counters: Counters) -> None:
    sender = ScriptedSender()
    with running_dispatcher(sender, RecordingJitter(), counters, scale=1.0) as dispatcher:
        dispatcher.schedule("http://127.0.0.1:1/hook", b"{}", time.monotonic() + 60)
        dispatcher.clear()
        assert dispatcher.wait_idle(1)

    assert sender.calls == []
