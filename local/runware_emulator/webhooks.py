"""Webhook delivery the way Runware does it: one POST per body, retried with capped, jittered backoff.

A scheduler thread keeps a heap of deliveries by due time and hands due ones to a small worker pool.
A failed attempt (non-2xx, connection error, timeout) goes back on the heap after a full-jitter
backoff: uniform(0, min(cap, base * 2**attempt)), all scaled by `time_scale`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from local.runware_emulator.counters import Counters

USER_AGENT = "runware-emulator-webhooks/1.0"


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for failed deliveries; seconds before `time_scale` applies."""

    max_attempts: int = 8
    base_delay: float = 0.25
    max_delay: float = 8.0
    timeout: float = 5.0  # per attempt; Runware expects an answer within about 5 s

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < self.base_delay or self.timeout <= 0:
            raise ValueError("delays must satisfy 0 <= base_delay <= max_delay and timeout > 0")

    def backoff_ceiling(self, failed_attempts: int) -> float:
        """The jitter window after the n-th failed attempt (n >= 1): 0.25, 0.5, 1, ... capped at 8 s."""
        return min(self.max_delay, self.base_delay * 2 ** (failed_attempts - 1))


@dataclass
class Delivery:
    url: str
    body: bytes
    attempts: int = 0


def post_json(url: str, body: bytes, timeout: float) -> int:
    """POST `body` to `url` exactly as given (query string included); the HTTP status, or raise OSError."""
    request = urllib.request.Request(  # noqa: S310 - the URL is the task's webhookURL, http(s) checked below
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    if request.type not in ("http", "https"):
        raise OSError(f"cannot deliver to a {request.type!r} URL")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        return int(error.code)


class WebhookDispatcher:
    """Schedules, sends and retries webhook deliveries; `pending` counts queued plus in-flight ones."""

    def __init__(
        self,
        policy: RetryPolicy,
        counters: Counters,
        jitter: Callable[[float, float], float],
        time_scale: float = 1.0,
        workers: int = 8,
        sender: Callable[[str, bytes, float], int] = post_json,
    ) -> None:
        self._policy = policy
        self._counters = counters
        self._jitter = jitter
        self._time_scale = time_scale
        self._sender = sender
        self._heap: list[tuple[float, int, Delivery]] = []
        self._sequence = itertools.count()
        self._in_flight = 0
        self._generation = 0  # bumped by clear(): answers for deliveries from before are ignored
        self._condition = threading.Condition()
        self._stopping = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook")
        self._scheduler = threading.Thread(target=self._run, name="webhook-scheduler", daemon=True)

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._heap.clear()
            self._condition.notify_all()
        if self._scheduler.is_alive():
            self._scheduler.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def schedule(self, url: str, body: bytes, due_at: float) -> None:
        """Send `body` to `url` at monotonic time `due_at` (or as soon as possible after it)."""
        self._push(Delivery(url=url, body=body), due_at)

    def pending(self) -> int:
        with self._condition:
            return len(self._heap) + self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or in flight; False if `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._heap or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    def clear(self) -> None:
        """Forget every queued delivery (in-flight ones finish but are not retried)."""
        with self._condition:
            self._heap.clear()
            self._generation += 1
            self._condition.notify_all()

    def _push(self, delivery: Delivery, due_at: float) -> None:
        with self._condition:
            if self._stopping:
                return
            heapq.heappush(self._heap, (due_at, next(self._sequence), delivery))
            self._condition.notify_all()

    def _run(self) -> None:
        with self._condition:
            while not self._stopping:
                if not self._heap:
                    self._condition.wait()
                    continue
                due_at, _, delivery = self._heap[0]
                delay = due_at - time.monotonic()
                if delay > 0:
                    self._condition.wait(delay)
                    continue
                heapq.heappop(self._heap)
                self._in_flight += 1
                generation = self._generation
                try:
                    self._pool.submit(self._attempt, delivery, generation)
                except RuntimeError:  # pool shut down while stopping
                    self._in_flight -= 1

    def _attempt(self, delivery: Delivery, generation: int) -> None:
        delivery.attempts += 1
        self._counters.webhook("attempted")
        try:
            status = self._sender(delivery.url, delivery.body, self._policy.timeout)
            succeeded = 200 <= status < 300
        except (OSError, ValueError):
            succeeded = False
        retry_at: float | None = None
        if succeeded:
            self._counters.webhook("succeeded")
        else:
            self._counters.webhook("failed_attempts")
            if delivery.attempts >= self._policy.max_attempts:
                self._counters.webhook("gave_up")
            else:
                ceiling = self._policy.backoff_ceiling(delivery.attempts)
                retry_at = time.monotonic() + self._jitter(0.0, ceiling) * self._time_scale
                self._counters.webhook("retried")
        with self._condition:
            self._in_flight -= 1
            if retry_at is not None and not self._stopping and generation == self._generation:
                heapq.heappush(self._heap, (retry_at, next(self._sequence), delivery))
            self._condition.notify_all()
