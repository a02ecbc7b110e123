"""The emulator's rate limit: a token bucket of N POSTs per second, refusals say how long to wait."""

from __future__ import annotations

import pytest

from local.runware_emulator.faults import FaultConfig, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_one_seconds_worth_then_one_every_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert [limiter.admit(4) for _ in range(4)] == [None] * 4
    assert limiter.admit(4) == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.admit(4) is None
    assert limiter.admit(4) == pytest.approx(0.25)


def test_a_slow_rate_still_lets_one_request_in_and_waits_whole_intervals() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert limiter.admit(0.5) is None
    assert limiter.admit(0.5) == pytest.approx(2.0)
    clock.now += 1.0
    assert limiter.admit(0.5) == pytest.approx(1.0)


def test_no_limit_admits_everything() -> None:
    limiter = RateLimiter(Clock())
    assert all(limiter.admit(0) is None for _ in range(1000))


def test_a_negative_rate_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        FaultConfig(rate_limit=-1)
