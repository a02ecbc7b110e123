"""The moto server (S3, SQS, Secrets Manager) as a managed child process on an ephemeral port."""

from __future__ import annotations

import select
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import IO, Self

from local.net import LOOPBACK
from local.services import process_cleanup
from local.services.dynamodb_local import REPO_ROOT
from local.services.moto_process import READY_PREFIX


class MotoServer:
    """moto in server mode; S3→SQS notifications and SQS redrive are moto's own (see DESIGN notes).

    Ready when the child reports its bound port, which it does only after the server socket listens.
    """

    def __init__(self, *, startup_timeout: float = 60.0) -> None:
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._cleanup_handle: int | None = None
        self.port: int | None = None

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the moto server is not running")
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        if self._process is not None:
            return self
        self._log = tempfile.TemporaryFile("w+", prefix="moto-server-")  # noqa: SIM115 - closed in stop()
        self._cleanup_handle = process_cleanup.register("moto server", self.stop)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "local.services.moto_process"],
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                text=True,
            )
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self) -> int:
        assert self._process is not None
        assert self._process.stdout is not None
        deadline = time.monotonic() + self._startup_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self._process.stdout], [], [], remaining)
            if not readable:
                break
            line = self._process.stdout.readline()
            if not line:
                raise RuntimeError(f"the moto server exited early:\n{self.log_tail()}")
            if line.startswith(READY_PREFIX):
                return int(line.removeprefix(READY_PREFIX))
        raise TimeoutError(f"the moto server did not start within {self._startup_timeout:.0f}s")

    def log_tail(self, limit: int = 4000) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read()[-limit:]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()  # the child's cue to shut down cleanly
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()
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
