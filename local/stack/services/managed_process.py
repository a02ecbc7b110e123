"""Lifecycle shared by the local services that run as child processes on a loopback port."""

from __future__ import annotations

import subprocess
from types import TracebackType
from typing import IO, AnyStr, Generic, Self

from local.net import LOOPBACK
from local.stack.services import process_cleanup


class ManagedProcess(Generic[AnyStr]):
    """A child process with a log file, a port and a process-wide cleanup entry; a context manager.

    Subclasses open the log (`_open_log`), launch the process and learn its port (`_launch`), and may
    change how the child is asked to exit (`_request_exit`).
    """

    _description: str  # for the cleanup registry
    _not_running: str  # RuntimeError message of `endpoint_url` while stopped

    def __init__(self, *, startup_timeout: float = 60.0) -> None:
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[AnyStr] | None = None
        self._log: IO[AnyStr] | None = None
        self._cleanup_handle: int | None = None
        self.port: int | None = None

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError(self._not_running)
        return f"http://{LOOPBACK}:{self.port}"

    def _open_log(self) -> IO[AnyStr]:
        raise NotImplementedError

    def _launch(self) -> None:
        raise NotImplementedError

    def _request_exit(self, process: subprocess.Popen[AnyStr]) -> None:
        if process.poll() is None:
            process.terminate()

    def start(self) -> Self:
        if self._process is not None:
            return self
        self._log = self._open_log()
        self._cleanup_handle = process_cleanup.register(self._description, self.stop)
        try:
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, limit: int = 4000) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        data = self._log.read()
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        return text[-limit:]

    def _reap(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        self._request_exit(process)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    def stop(self) -> None:
        self._reap()
        self.port = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._cleanup_handle is not None:
            process_cleanup.unregister(self._cleanup_handle)
            self._cleanup_handle = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
