"""Back-pressure shared by every submitter: one throttle record in the table, an adaptive window per process.

Runware answers 429 (or 503) to the caller that went too fast; without sharing, every other submit
environment keeps its pace and meets its own 429s. So the caller that is told records a throttle in the
table, and every submitter reads it before each POST:
- a cool-down: nobody POSTs before `until` (Runware's Retry-After, or the caller's backoff);
- a spacing: each environment leaves `interval` seconds between its POSTs. Each throttle doubles it
  (at most once per `interval`, however many submitters were told at once) and it halves every
  `HALF_LIFE_SECONDS` without one, so the fleet's rate falls fast and climbs back slowly, and the
  record costs a write only when Runware pushes back.
Each process also limits its POSTs in flight with an AIMD window: halved on a 429/503, grown by about one
per window's worth of answered POSTs, between 1 and its maximum.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .deadline import Deadline
from .domain.throttle import first_throttle
from .ports import ThrottleStore

THROTTLE_STATUSES = frozenset({429, 503})
# POSTs one submit environment keeps in flight: enough to hide the round trips (bench/README.md,
# submit_throughput); the adaptive window never goes above it.
DEFAULT_POSTS_IN_FLIGHT = 4


class CooldownTooLong(Exception):
    """The shared cool-down outlasts the caller's deadline: the work is better retried later."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Runware asked every submitter to wait {seconds:.1f}s, past this call's deadline")
        self.seconds = seconds


class AdaptiveWindow:
    """How many POSTs this process has in flight at most: additive increase, multiplicative decrease."""

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError("the window's maximum must be at least 1")
        self.maximum = maximum
        self.limit = float(maximum)  # start open: without a 429 nothing changes
        self.in_flight = 0
        self._changed = threading.Condition()

    def take(self, timeout: float) -> bool:
        """Take a place, waiting up to `timeout` for one; past it, take one anyway (the deadline, not
        the window, decides when to stop). True if it came within the limit."""
        with self._changed:
            within = self._changed.wait_for(self._has_room, timeout=max(0.0, timeout))
            self.in_flight += 1
            return within

    def _has_room(self) -> bool:
        return self.in_flight < int(self.limit)

    def release(self, *, throttled: bool) -> None:
        with self._changed:
            self.in_flight -= 1
            if throttled:
                self.limit = max(1.0, self.limit / 2)
            else:
                self.limit = min(float(self.maximum), self.limit + 1 / self.limit)
            self._changed.notify_all()


class SharedBackPressure:
    """What the Runware client calls around each POST attempt (`RunwareClient(pacing=...)`)."""

    def __init__(
        self,
        store: ThrottleStore,
        window: AdaptiveWindow,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._next_post_at = 0.0  # this process's next POST under the shared spacing
        self._spacing = threading.Lock()
        self.waited_seconds = 0.0  # time spent waiting for the cool-down and the spacing

    def before_attempt(self, deadline: Deadline, min_attempt_seconds: float) -> None:
        """Wait out the cool-down and this process's turn under the spacing, then take a place in the
        window. Raises `CooldownTooLong` (nothing sent, no place taken) if that leaves too little time."""
        now = self._clock()
        throttle = self.store.current()
        interval = throttle.interval_at(now) if throttle is not None else 0.0
        with self._spacing:
            start = max(now, throttle.until if throttle is not None else now)
            if interval > 0:
                start = max(start, self._next_post_at)
            if start - now + min_attempt_seconds > deadline.remaining():
                raise CooldownTooLong(start - now)
            if interval > 0:
                self._next_post_at = start + interval
        if start > now:
            self._sleep(start - now)
            self.waited_seconds += start - now
        self.window.take(deadline.remaining() - min_attempt_seconds)

    def after_attempt(self, *, throttled: bool, pause_seconds: float) -> None:
        """Give the place back; after a 429/503 make every submitter pause and space out."""
        self.window.release(throttled=throttled)
        if not throttled:
            return
        now = self._clock()
        current = self.store.current()
        if current is None:
            self.store.record(first_throttle(now, pause_seconds), replacing=None)
            return
        if now - current.throttled_at < current.interval_at(now):
            # Another submitter was told within the current spacing: one doubling per round is enough.
            self.store.extend_until(now + pause_seconds)
            return
        self.store.record(current.after_another(now, pause_seconds), replacing=current)
