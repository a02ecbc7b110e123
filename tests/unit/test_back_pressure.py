"""Shared back-pressure: the AIMD window and the cool-down every pacer built on one store obeys."""

from __future__ import annotations

import threading

import pytest

from runrelay.back_pressure import AdaptiveWindow, CooldownTooLong, SharedBackPressure
from runrelay.deadline import Deadline
from runrelay.domain.throttle import HALF_LIFE_SECONDS, Throttle, first_throttle
from tests.support.fakes import FakeThrottleStore


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pacer(store: FakeThrottleStore, clock: FakeClock, maximum: int = 4) -> SharedBackPressure:
    return SharedBackPressure(store, AdaptiveWindow(maximum), clock=clock, sleep=clock.sleep)


def test_the_window_halves_on_a_throttle_and_grows_back_by_one_per_window() -> None:
    window = AdaptiveWindow(8)
    for expected in (4.0, 2.0, 1.0, 1.0):  # never below one
        window.take(0)
        window.release(throttled=True)
        assert window.limit == expected
    window.take(0)  # at 1, one answered POST opens one more place
    window.release(throttled=False)
    assert window.limit == 2.0
    for _ in range(3):  # then about a window's worth of answers for each next one
        window.take(0)
        window.release(throttled=False)
    assert int(window.limit) == 3
    for _ in range(100):
        window.take(0)
        window.release(throttled=False)
    assert window.limit == 8.0  # never above its maximum
    assert window.in_flight == 0


def test_a_full_window_makes_the_next_post_wait_for_a_place() -> None:
    window = AdaptiveWindow(2)
    window.take(0)
    window.release(throttled=True)  # limit 1
    assert window.take(1.0) is True
    assert window.take(0.05) is False  # no place in time: taken anyway, the deadline decides
    assert window.in_flight == 2
    window.release(throttled=False)
    window.release(throttled=False)

    window = AdaptiveWindow(1)
    window.take(0)  # full
    got_in = threading.Event()
    waiting = threading.Thread(target=lambda: got_in.set() if window.take(5.0) else None)
    waiting.start()
    assert not got_in.wait(0.1)
    window.release(throttled=False)
    assert got_in.wait(5.0)
    waiting.join()


def test_one_submitters_throttle_makes_every_submitter_wait_and_space_out() -> None:
    store, clock = FakeThrottleStore(), FakeClock()
    told, other = pacer(store, clock), pacer(store, clock)
    told.before_attempt(Deadline.after(60), 0.5)
    told.after_attempt(throttled=True, pause_seconds=3.0)
    assert store.throttle == Throttle(until=clock.now + 3.0, interval=0.25, throttled_at=clock.now)

    other.before_attempt(Deadline.after(60), 0.5)  # never got a 429 itself, still waits it out
    other.after_attempt(throttled=False, pause_seconds=0.0)
    other.before_attempt(Deadline.after(60), 0.5)  # then keeps its POSTs apart
    other.after_attempt(throttled=False, pause_seconds=0.0)
    assert clock.slept == pytest.approx([3.0, 0.25])
    assert store.writes == 1  # answered POSTs write nothing


def test_the_spacing_doubles_once_per_round_and_decays_without_throttles() -> None:
    store, clock = FakeThrottleStore(), FakeClock()
    pacers = [pacer(store, clock) for _ in range(3)]
    for one in pacers:
        one.before_attempt(Deadline.after(600), 0.5)
    for one in pacers:  # three submitters told in the same moment
        one.after_attempt(throttled=True, pause_seconds=1.0)
    assert store.throttle is not None
    assert store.throttle.interval == 0.25  # one round, one record
    clock.now += 1.0  # the next round
    pacers[0].before_attempt(Deadline.after(600), 0.5)
    pacers[0].after_attempt(throttled=True, pause_seconds=1.0)
    assert store.throttle.interval == pytest.approx(2 * 0.25 * 0.5 ** (1.0 / HALF_LIFE_SECONDS))
    throttle = store.throttle
    assert throttle.interval_at(throttle.throttled_at + HALF_LIFE_SECONDS) == pytest.approx(
        throttle.interval / 2
    )
    assert throttle.interval_at(throttle.over_at() + 1) == 0.0  # pacing is over
    clock.now = throttle.over_at() + 1
    clock.slept.clear()
    pacers[1].before_attempt(Deadline.after(600), 0.5)
    pacers[1].after_attempt(throttled=False, pause_seconds=0.0)
    pacers[1].before_attempt(Deadline.after(600), 0.5)
    assert clock.slept == []


def test_a_shorter_pause_never_cuts_a_longer_one_short() -> None:
    store, clock = FakeThrottleStore(), FakeClock()
    first, second = pacer(store, clock), pacer(store, clock)
    for one in (first, second):
        one.before_attempt(Deadline.after(60), 0.5)
    first.after_attempt(throttled=True, pause_seconds=8.0)
    second.after_attempt(throttled=True, pause_seconds=1.0)
    assert store.throttle is not None
    assert store.throttle.until == clock.now + 8.0


def test_a_cooldown_past_the_deadline_sends_nothing_and_takes_no_place() -> None:
    store, clock = FakeThrottleStore(), FakeClock()
    store.record(first_throttle(clock.now, 30.0), replacing=None)
    paced = pacer(store, clock)
    with pytest.raises(CooldownTooLong, match=r"30\.0s"):
        paced.before_attempt(Deadline.after(10), 0.5)
    assert clock.slept == []
    assert paced.window.in_flight == 0


def test_an_answer_that_is_not_a_throttle_writes_nothing() -> None:
    store, clock = FakeThrottleStore(), FakeClock()
    paced = pacer(store, clock)
    paced.before_attempt(Deadline.after(60), 0.5)
    paced.after_attempt(throttled=False, pause_seconds=2.0)  # say a 500: this caller backs off alone
    assert store.throttle is None
