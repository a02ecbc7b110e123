"""A loop on a daemon thread between `start()` and `stop()`, shared by the local pollers and schedules."""

from __future__ import annotations

import threading
from typing import Self


class BackgroundWorker:
    """Runs `_run` on a daemon thread; `_run` watches `self._stop` and returns soon after it is set."""

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        raise NotImplementedError

    def _before_start(self) -> None:
        """Runs on the caller's thread just before the worker thread starts."""

    def start(self) -> Self:
        if self._thread is None:
            self._before_start()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to stop and wait up to `timeout` for it to finish the step in hand."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
