"""Fault injection: what can go wrong, and a seeded dice roller so a run can be replayed.

Rates are probabilities in [0, 1]. Task failures are not random: they follow the taskUUID's hash
(`task_fails`) plus an explicit list, so a test can predict exactly which tasks end in error.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.runware_emulator.generation import uuid_fraction

SUBMIT_STATUS_FAULTS = ((429, "rate_429"), (500, "rate_500"), (503, "rate_503"))
_RATE_FIELDS = (
    "rate_429",
    "rate_500",
    "rate_503",
    "drop_response_rate",
    "task_error_rate",
    "webhook_duplicate_rate",
    "webhook_late_rate",
    "webhook_reorder_rate",
    "webhook_drop_rate",
)
_SECONDS_FIELDS = ("latency", "late_delay", "rate_limit")


@dataclass(frozen=True)
class FaultConfig:
    """Every injectable fault. Seconds are real seconds before the emulator's `time_scale` applies."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    retry_after: int = 1  # the 429 answer's Retry-After header, in whole seconds (never scaled)
    # POSTs per second the account may make (0: no limit), in real seconds, never scaled: past it a request
    # is answered 429 with a Retry-After of the whole seconds until it would be let in.
    rate_limit: float = 0.0
    latency: float = 0.0  # added before every submit answer
    drop_response_rate: float = 0.0  # run the tasks, then close the connection without answering
    task_error_rate: float = 0.0  # share of tasks that fail, chosen by taskUUID hash
    fail_task_uuids: frozenset[str] = field(default_factory=frozenset)
    webhook_duplicate_rate: float = 0.0  # the same body is POSTed twice
    webhook_late_rate: float = 0.0  # the delivery waits `late_delay` more seconds
    late_delay: float = 2.0
    webhook_reorder_rate: float = 0.0  # a multi-result task's results go out in shuffled order
    webhook_drop_rate: float = 0.0  # never sent, though getResponse shows the result
    # Every result of a prompt is the same answer with no seed (a short deterministic completion): two
    # results of one task, or two tasks of one prompt, are then indistinguishable by their content.
    identical_results: bool = False

    def __post_init__(self) -> None:
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
        for name in _SECONDS_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")
        if not isinstance(self.identical_results, bool):
            raise ValueError(f"identical_results must be true or false, got {self.identical_results!r}")
        retry_after = self.retry_after
        if not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 0:
            raise ValueError(f"retry_after must be a non-negative integer, got {self.retry_after!r}")
        uuids = self.fail_task_uuids
        if isinstance(uuids, str) or not all(isinstance(u, str) for u in uuids):
            raise ValueError("fail_task_uuids must be a collection of taskUUID strings")
        object.__setattr__(self, "fail_task_uuids", frozenset(u.lower() for u in uuids))

    def with_changes(self, changes: Mapping[str, Any]) -> FaultConfig:
        """A copy with some fields replaced; unknown names are refused (the admin endpoint relies on it)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(
                f"unknown fault settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = dict(changes)
        if "fail_task_uuids" in values:
            raw = values["fail_task_uuids"]
            if isinstance(raw, str) or not isinstance(raw, Iterable):
                raise ValueError("fail_task_uuids must be a list of taskUUID strings")
            values["fail_task_uuids"] = frozenset(raw)
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["fail_task_uuids"] = sorted(self.fail_task_uuids)
        return data


def task_fails(task_uuid: str, config: FaultConfig) -> bool:
    """Whether a task ends in error: listed explicitly, or its hash falls in the failing share."""
    if task_uuid.lower() in config.fail_task_uuids:
        return True
    return uuid_fraction(task_uuid, "fail") < config.task_error_rate


class FaultInjector:
    """Holds the current FaultConfig and rolls a seeded, thread-safe die against its rates."""

    def __init__(self, config: FaultConfig | None = None, seed: int = 0) -> None:
        self._config = config or FaultConfig()
        self._seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    @property
    def config(self) -> FaultConfig:
        return self._config

    def replace(self, config: FaultConfig) -> None:
        self._config = config

    def reset(self) -> None:
        with self._lock:
            self._rng = random.Random(self._seed)

    def roll(self, rate: float) -> bool:
        if rate <= 0.0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def uniform(self, low: float, high: float) -> float:
        with self._lock:
            return self._rng.uniform(low, high)

    def shuffled(self, items: list[int]) -> list[int]:
        with self._lock:
            copy = list(items)
            self._rng.shuffle(copy)
            return copy

    def submit_status_fault(self) -> int | None:
        """The HTTP status (429/500/503) that rejects this submit, if any; one die per request."""
        config = self._config
        total = sum(getattr(config, name) for _, name in SUBMIT_STATUS_FAULTS)
        if total <= 0.0:
            return None
        with self._lock:
            draw = self._rng.random()
        threshold = 0.0
        for status, name in SUBMIT_STATUS_FAULTS:
            threshold += getattr(config, name)
            if draw < threshold:
                return status
        return None


class RateLimiter:
    """A token bucket of `rate_limit` POSTs per second holding one second's worth (at least one)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens = 0.0
        self._filled_at: float | None = None
        self._lock = threading.Lock()

    def admit(self, rate: float) -> float | None:
        """None if a request may go now (it takes a token), else the seconds until one would."""
        if rate <= 0:
            return None
        capacity = max(1.0, rate)
        with self._lock:
            now = self._clock()
            if self._filled_at is None:
                self._tokens = capacity
            else:
                self._tokens = min(capacity, self._tokens + (now - self._filled_at) * rate)
            self._filled_at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return (1.0 - self._tokens) / rate
