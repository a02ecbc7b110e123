"""A throttle from Runware, as every submitter reads it: a cool-down and a spacing that decays."""

from __future__ import annotations

import math
from dataclasses import dataclass

FIRST_INTERVAL_SECONDS = 0.25
MAX_INTERVAL_SECONDS = 30.0
HALF_LIFE_SECONDS = 10.0
# Below this the spacing is dropped: pacing is over until the next throttle.
MIN_INTERVAL_SECONDS = 0.01


@dataclass(frozen=True)
class Throttle:
    """What the last 429/503 asked of every submitter."""

    until: float  # epoch seconds: no POST before
    interval: float  # seconds between one environment's POSTs, as of `throttled_at`
    throttled_at: float

    def interval_at(self, now: float) -> float:
        """The spacing now: halved every HALF_LIFE_SECONDS since the throttle, 0 once negligible."""
        decayed = self.interval * 0.5 ** (max(0.0, now - self.throttled_at) / HALF_LIFE_SECONDS)
        return decayed if decayed >= MIN_INTERVAL_SECONDS else 0.0

    def over_at(self) -> float:
        """When neither the cool-down nor the spacing holds anyone back any more."""
        decay = HALF_LIFE_SECONDS * math.log2(max(1.0, self.interval / MIN_INTERVAL_SECONDS))
        return max(self.until, self.throttled_at + decay)

    def after_another(self, now: float, pause: float) -> Throttle:
        """The record after one more throttle: a later cool-down and twice the current spacing."""
        current = self.interval_at(now) or FIRST_INTERVAL_SECONDS / 2
        return Throttle(
            until=max(self.until, now + pause),
            interval=min(MAX_INTERVAL_SECONDS, current * 2),
            throttled_at=now,
        )


def first_throttle(now: float, pause: float) -> Throttle:
    return Throttle(until=now + pause, interval=FIRST_INTERVAL_SECONDS, throttled_at=now)
