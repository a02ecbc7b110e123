"""Loopback networking helpers shared by the local stack's servers."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago (for servers that cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `condition` until it holds; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def serve_in_background(
    server: socketserver.BaseServer, *, name: str, poll_interval: float
) -> threading.Thread:
    """Run `server.serve_forever` on a started daemon thread called `name`."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True
    )
    thread.start()
    return thread


def stop_serving(server: socketserver.BaseServer, thread: threading.Thread | None, timeout: float) -> None:
    """Undo `serve_in_background`: end the serve loop, close the socket, join the thread (up to `timeout`)."""
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout)
