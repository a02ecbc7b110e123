"""Thread-safe counters behind `GET /admin/stats` and `EmulatorServer.stats()`."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Counters:
    """What happened: executions per task, answers per HTTP status, faults and webhook deliveries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executions: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._webhooks: Counter[str] = Counter()

    def executed(self, task_uuid: str) -> None:
        with self._lock:
            self._executions[task_uuid] += 1

    def request(self, status: int | str) -> None:
        with self._lock:
            self._requests[str(status)] += 1

    def fault(self, kind: str, count: int = 1) -> None:
        with self._lock:
            self._faults[kind] += count

    def webhook(self, event: str, count: int = 1) -> None:
        with self._lock:
            self._webhooks[event] += count

    def reset(self) -> None:
        with self._lock:
            for counter in (self._executions, self._requests, self._faults, self._webhooks):
                counter.clear()

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy; `max_executions` is the number tests check never exceeds 1."""
        with self._lock:
            webhooks = {
                name: self._webhooks.get(name, 0)
                for name in ("attempted", "succeeded", "failed_attempts", "gave_up", "dropped", "duplicated")
            }
            webhooks.update(self._webhooks)
            return {
                "executions": dict(self._executions),
                "max_executions": max(self._executions.values(), default=0),
                "requests_by_status": dict(self._requests),
                "faults": dict(self._faults),
                "webhooks": webhooks,
            }
