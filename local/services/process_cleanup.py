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

_lock = threading.Lock()
_stoppers: dict[int, tuple[str, Callable[[], None]]] = {}
_ids = itertools.count()
_installed = False


def _raise_system_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _install_once() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(stop_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still covers us
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, _raise_system_exit)


def register(description: str, stop: Callable[[], None]) -> int:
    """Remember a stop callback; returns a handle for `unregister` once the owner stopped cleanly."""
    with _lock:
        _install_once()
        handle = next(_ids)
        _stoppers[handle] = (description, stop)
        return handle


def unregister(handle: int) -> None:
    with _lock:
        _stoppers.pop(handle, None)


def stop_all() -> None:
    """Stop everything still registered, newest first; one failure does not spare the others."""
    with _lock:
        pending = sorted(_stoppers.items(), reverse=True)
        _stoppers.clear()
    for _handle, (description, stop) in pending:
        try:
            stop()
        except Exception:
            log.exception("stopping %s failed", description)
