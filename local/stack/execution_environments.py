"""Lambda's execution environments, locally: one process per environment, several per function.

Each environment is a worker process (`lambda_bootstrap.py`, i.e. `awslambdaric`) with the function's
own environment variables and its own Runtime API. The first event is a cold start (process start and
handler import, reported as Init Duration); later events reuse the warm process, one at a time. A
function runs at most `max_concurrency` environments; an invocation that finds all of them busy waits
for one, as an event source held at its MaximumConcurrency would. Past the function's Timeout the
process is killed and the invocation fails as Lambda reports it (`Sandbox.Timedout`); a process that
dies fails its invocation (`Runtime.ExitError`). Either way the environment is replaced by a new one.

The worker's stdout and stderr are the function's log stream. `FunctionLog` writes every line, and the
START/END/REPORT lines Lambda adds, into one combined stream prefixed with the function's name.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from local.stack.runtime_api import Invocation, RuntimeApi

BOOTSTRAP = Path(__file__).resolve().with_name("lambda_bootstrap.py")
# Lambda gives init 10 s; a shared development machine starting many workers at once is slower than
# Lambda's init (which runs on a full vCPU burst), so a local init may take longer before it counts
# as failed.
LOCAL_INIT_TIMEOUT_SECONDS = 60.0
_INHERITED = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")


class FunctionError(RuntimeError):
    """An invocation failed as Lambda reports it: `error_type` is Lambda's (or the handler's)."""

    def __init__(self, function_name: str, error: Mapping[str, Any]) -> None:
        self.error_type = str(error.get("errorType") or "Unhandled")
        self.error_message = str(error.get("errorMessage") or "")
        self.stack_trace = error.get("stackTrace") or []
        super().__init__(f"{function_name}: {self.error_type}: {self.error_message}")


class FunctionTimeout(FunctionError):
    """The handler ran past the function's Timeout; its environment was killed."""


@dataclass(frozen=True)
class WorkerSpec:
    """What one function's environments are started with."""

    function_name: str
    handler: str  # module.function, as the template's Handler
    task_root: Path  # CodeUri: the working directory and first on sys.path
    python_path: tuple[Path, ...]  # layers after the task root, as /opt/python on Lambda
    environment: Mapping[str, str]  # the function's variables, already resolved
    timeout_seconds: float
    memory_mb: int
    region: str = "us-east-1"
    account_id: str = "123456789012"
    python: str = sys.executable

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"


class FunctionLog:
    """One combined log for every function: each line is `<function name> | <line>`.

    `target` is a stream, or None for this process's stdout as it is when the log is made.
    """

    def __init__(self, target: IO[str] | None = None) -> None:
        self._target = target or sys.stdout
        self._lock = threading.Lock()

    def write(self, function_name: str, line: str) -> None:
        stream = self._target
        with self._lock:
            stream.write(f"{function_name} | {line.rstrip(chr(10))}\n")
            stream.flush()


class ExecutionEnvironment:
    """One worker process and its Runtime API; `invoke` runs one event and returns the raw answer."""

    def __init__(self, spec: WorkerSpec, function_log: FunctionLog) -> None:
        self.spec = spec
        self._log = function_log
        self.log_stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self._api = RuntimeApi(spec.arn).start()
        self._started = time.monotonic()
        self._process = subprocess.Popen(
            [spec.python, str(BOOTSTRAP), spec.handler],
            cwd=spec.task_root,
            env=self._variables(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.exited = threading.Event()
        self._reader = threading.Thread(
            target=self._forward_output, name=f"log-{spec.function_name}", daemon=True
        )
        self._reader.start()
        self._invoked = False
        self.healthy = True

    @property
    def pid(self) -> int:
        return self._process.pid

    def _variables(self) -> dict[str, str]:
        spec = self.spec
        inherited = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        return {
            **inherited,
            **spec.environment,
            "AWS_LAMBDA_RUNTIME_API": self._api.address,
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "LAMBDA_TASK_ROOT": str(spec.task_root),
            "_HANDLER": spec.handler,
            "PYTHONPATH": os.pathsep.join(str(p) for p in (spec.task_root, *spec.python_path)),
            "PYTHONUNBUFFERED": "1",
            "TZ": ":UTC",
        }

    def _forward_output(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._log.write(self.spec.function_name, line)
        self._process.wait()
        self.exited.set()
        self._api.answered_by_exit(self._exit_description())

    def _exit_description(self) -> str:
        code = self._process.returncode
        return f"signal: {-code}" if code is not None and code < 0 else f"exit status {code}"

    # ------------------------------------------------------------------ invocation
    def invoke(self, body: bytes, *, trace_id: str = "") -> bytes:
        init_ms = None if self._invoked else self._wait_for_init()
        self._invoked = True
        request_id = str(uuid.uuid4())
        timeout = self.spec.timeout_seconds
        deadline = time.time() + timeout
        invocation = Invocation(request_id, body, int(deadline * 1000), trace_id=trace_id)
        self._log.write(self.spec.function_name, f"START RequestId: {request_id} Version: $LATEST")
        started = time.monotonic()
        self._api.deliver(invocation)
        finished = invocation.done.wait(timeout)
        duration_ms = (time.monotonic() - started) * 1000
        status = ""
        try:
            if not finished:
                self.kill()
                status = "timeout"
                self._log.write(
                    self.spec.function_name,
                    f"{_utc_now()} {request_id} Task timed out after {timeout:.2f} seconds",
                )
                raise FunctionTimeout(
                    self.spec.function_name,
                    {
                        "errorType": "Sandbox.Timedout",
                        "errorMessage": f"RequestId: {request_id} Error: "
                        f"Task timed out after {timeout:.2f} seconds",
                    },
                )
            if invocation.error is not None:
                if invocation.error.get("errorType") == "Runtime.ExitError":
                    status = "error"
                    self.healthy = False
                raise FunctionError(self.spec.function_name, invocation.error)
            assert invocation.response is not None
            return invocation.response
        finally:
            self._log.write(self.spec.function_name, f"END RequestId: {request_id}")
            self._log.write(self.spec.function_name, self._report(request_id, duration_ms, init_ms, status))

    def _wait_for_init(self) -> float:
        """Wait until the runtime asks for its first event; FunctionError if init failed."""
        deadline = time.monotonic() + LOCAL_INIT_TIMEOUT_SECONDS
        while not self._api.ready.wait(0.05):
            if self._api.init_failed.is_set() or self.exited.is_set() or time.monotonic() > deadline:
                self.healthy = False
                self.kill()
                raise FunctionError(self.spec.function_name, self._init_error())
        assert self._api.ready_at is not None
        return (self._api.ready_at - self._started) * 1000

    def _init_error(self) -> dict[str, Any]:
        if self._api.init_error is not None:
            return self._api.init_error
        if self.exited.is_set():
            return {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"Runtime exited: {self._exit_description()}",
            }
        return {"errorType": "Sandbox.Timedout", "errorMessage": "init did not finish"}

    def _report(self, request_id: str, duration_ms: float, init_ms: float | None, status: str) -> str:
        parts = [
            f"REPORT RequestId: {request_id}",
            f"Duration: {duration_ms:.2f} ms",
            f"Billed Duration: {math.ceil(duration_ms + (init_ms or 0))} ms",
            f"Memory Size: {self.spec.memory_mb} MB",
            f"Max Memory Used: {self._max_memory_mb()} MB",
        ]
        if init_ms is not None:
            parts.append(f"Init Duration: {init_ms:.2f} ms")
        if status:
            parts.append(f"Status: {status}")
        return "\t".join(parts)

    def _max_memory_mb(self) -> int:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
        return 0

    # ------------------------------------------------------------------ end of life
    def kill(self) -> None:
        """SIGKILL, and wait until the process is gone (Lambda reports a timeout once the sandbox is)."""
        self.healthy = False
        if self._process.poll() is None:
            self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        self._reader.join(timeout=5)
        self._api.stop()


class FunctionPool:
    """A function's environments: reuse a warm one, start one while under `max_concurrency`, else wait."""

    def __init__(self, spec: WorkerSpec, function_log: FunctionLog, *, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.spec = spec
        self.max_concurrency = max_concurrency
        self._log = function_log
        self._idle: list[ExecutionEnvironment] = []
        self._all: set[ExecutionEnvironment] = set()
        self._count = 0  # environments running or starting
        self._condition = threading.Condition()
        self._closed = False
        self.cold_starts = 0
        self.invocations = 0

    def invoke(self, event: Any) -> Any:
        """A synchronous invoke: the handler's JSON answer, or FunctionError as Lambda reports it."""
        body = json.dumps(event).encode()
        environment = self._acquire()
        try:
            answer = environment.invoke(body)
        finally:
            self._release(environment)
        return json.loads(answer) if answer else None

    def _acquire(self) -> ExecutionEnvironment:
        with self._condition:
            while True:
                if self._closed:
                    raise self._stopped()
                while self._idle:
                    environment = self._idle.pop()  # the most recently used: warmest
                    if environment.healthy and not environment.exited.is_set():
                        self.invocations += 1
                        return environment
                    self._discard(environment)
                if self._count < self.max_concurrency:
                    break
                self._condition.wait()
            self._count += 1  # the slot is taken before the process starts, outside the lock
            self.cold_starts += 1
            self.invocations += 1
        try:
            environment = ExecutionEnvironment(self.spec, self._log)
        except BaseException:
            with self._condition:
                self._count -= 1
                self._condition.notify()
            raise
        with self._condition:
            if not self._closed:
                self._all.add(environment)
                return environment
        environment.close()  # the pool stopped while this one started: `stop` never saw it
        raise self._stopped()

    def _stopped(self) -> RuntimeError:
        return RuntimeError(f"{self.spec.function_name}: the local runtime is stopped")

    def _release(self, environment: ExecutionEnvironment) -> None:
        with self._condition:
            if environment.healthy and not self._closed:
                self._idle.append(environment)
            else:
                self._discard(environment)
            self._condition.notify()

    def _discard(self, environment: ExecutionEnvironment) -> None:
        if environment in self._all:
            self._all.discard(environment)
            self._count -= 1
        threading.Thread(target=environment.close, name="env-close", daemon=True).start()

    @property
    def environments(self) -> int:
        with self._condition:
            return len(self._all)

    def stop(self) -> None:
        with self._condition:
            self._closed = True
            environments = list(self._all)
            self._all.clear()
            self._count = 0
            self._idle.clear()
            self._condition.notify_all()
        for environment in environments:
            environment.close()


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
