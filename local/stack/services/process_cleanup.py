"""Process-level safety net: whatever the local stack started is stopped when this process ends.

Context managers stop services on normal exits and on Ctrl-C (KeyboardInterrupt unwinds them). This
registry also covers SIGTERM/SIGHUP (turned into SystemExit so `finally` blocks and atexit run) and
code paths that forgot a `with`. Child processes additionally die with us through their own means
(PR_SET_PDEATHSIG for Java, stdin EOF for the moto child), which covers SIGKILL.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def _raise_system_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


class CleanupRegistry:
    """Stop callbacks still owed; `stop_all` runs them newest first, whatever fails."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stoppers: dict[int, tuple[str, Callable[[], None]]] = {}
        self._ids = itertools.count()

    def register(self, description: str, stop: Callable[[], None]) -> int:
        """Remember a stop callback; returns a handle for `unregister` once the owner stopped cleanly."""
        with self._lock:
            handle = next(self._ids)
            self._stoppers[handle] = (description, stop)
            return handle

    def unregister(self, handle: int) -> None:
        with self._lock:
            self._stoppers.pop(handle, None)

    def stop_all(self) -> None:
        with self._lock:
            pending = sorted(self._stoppers.items(), reverse=True)
            self._stoppers.clear()
        for _handle, (description, stop) in pending:
            try:
                stop()
            except Exception:
                log.exception("stopping %s failed", description)


_registry = CleanupRegistry()
_install_lock = threading.Lock()
_installed = False


def _install_once() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        atexit.register(_registry.stop_all)
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread; atexit still covers us
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                signal.signal(signum, _raise_system_exit)


def register(description: str, stop: Callable[[], None]) -> int:
    """Register with the process-wide registry (installs the atexit and signal hooks on first use)."""
    _install_once()
    return _registry.register(description, stop)


def unregister(handle: int) -> None:
    _registry.unregister(handle)
