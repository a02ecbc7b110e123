"""The moto server (S3, SQS, Secrets Manager) as a managed child process on an ephemeral port."""

from __future__ import annotations

import select
import subprocess
import sys
import tempfile
import time
from typing import IO

from local.stack.services.dynamodb_local import REPO_ROOT
from local.stack.services.managed_process import ManagedProcess
from local.stack.services.moto_process import READY_PREFIX


class MotoServer(ManagedProcess[str]):
    """moto in server mode; S3→SQS notifications and SQS redrive are moto's own (see DESIGN notes).

    Ready when the child reports its bound port, which it does only after the server socket listens.
    """

    _description = "moto server"
    _not_running = "the moto server is not running"

    def _open_log(self) -> IO[str]:
        return tempfile.TemporaryFile("w+", prefix="moto-server-")  # closed in stop()

    def _launch(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "local.stack.services.moto_process"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.port = self._read_port()

    def _request_exit(self, process: subprocess.Popen[str]) -> None:
        if process.stdin is not None:
            process.stdin.close()  # the child's cue to shut down cleanly

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
