"""Faults injected into the functions' own AWS calls, as AWS produces them, for `make chaos` and tests.

Loaded into each worker process of the local runtime through RUNRELAY_LOCAL_PRELOAD (see
`local/stack/lambda_bootstrap.py`); it reads its settings from RUNRELAY_AWS_FAULTS (JSON of `AwsFaults`) and
wraps botocore's `Endpoint._do_get_response`, i.e. every HTTP attempt of every client in that process,
below botocore's own retries. So a fault is first met by botocore's retry policy, as on AWS; what gets
through, the product must survive. Each fault is one line appended to the `log_file` (summed by chaos).

Kinds, each with a rate per attempt:
- `throttle`: ThrottlingException / ProvisionedThroughputExceededException (DynamoDB) / SlowDown (S3);
- `server_error`: a 500 InternalServerError / InternalError;
- `reset`: the connection closed before the request was sent;
- `lost_response`: a write is applied, then its answer never arrives (a read timeout); botocore's retry
  then meets its own write (a conditional write fails its condition, a message is sent twice);
- `transaction_conflict`: TransactWriteItems cancelled with TransactionConflict;
- `put_events_refused`: PutEvents answers 200 but refuses some entries (FailedEntryCount > 0); only the
  accepted entries reach the bus;
- `broken_body`: an S3 GetObject body breaks off midway.
`outages` are windows (epoch seconds) in which every attempt to a service fails (500 or reset).

This file imports only the standard library and botocore: it runs in the workers, where only the
function's code, its layers and the runtime's packages are importable.
"""

from __future__ import annotations

import io
import json
import os
import random
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

ENV_VAR = "RUNRELAY_AWS_FAULTS"
WRITES = frozenset(
    {
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "TransactWriteItems",
        "BatchWriteItem",
        "BatchExecuteStatement",
        "SendMessage",
        "SendMessageBatch",
        "PutObject",
        "PutEvents",
    }
)
_THROTTLE_CODES = {"dynamodb": "ProvisionedThroughputExceededException", "s3": "SlowDown"}


@dataclass(frozen=True)
class AwsFaults:
    throttle: float = 0.0
    server_error: float = 0.0
    reset: float = 0.0
    lost_response: float = 0.0
    transaction_conflict: float = 0.0
    put_events_refused: float = 0.0
    broken_body: float = 0.0
    outages: tuple[dict[str, Any], ...] = ()  # {"service", "start", "end"} (epoch seconds)
    seed: int = 0
    log_file: str = ""

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, text: str) -> AwsFaults:
        values = json.loads(text)
        return cls(**{**values, "outages": tuple(values.get("outages", ()))})

    def with_outage(self, service: str, start_in: float, seconds: float) -> AwsFaults:
        start = time.time() + start_in
        return AwsFaults(
            **{
                **asdict(self),
                "outages": [*self.outages, {"service": service, "start": start, "end": start + seconds}],
            }
        )


def count_faults(log_file: str) -> dict[str, int]:
    """Faults injected so far, by kind (`service.kind`), read from the shared log file."""
    counts: dict[str, int] = {}
    try:
        with open(log_file, encoding="utf-8") as lines:
            for line in lines:
                key = " ".join(line.split()[:2])
                if key:
                    counts[key] = counts.get(key, 0) + 1
    except FileNotFoundError:
        pass
    return counts


class _Injector:
    def __init__(self, faults: AwsFaults) -> None:
        self.faults = faults
        self.random = random.Random(f"{faults.seed}:{os.getpid()}")
        self.lock = threading.Lock()

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self.lock:
            return self.random.random() < rate

    def record(self, service: str, kind: str, operation: str) -> None:
        if not self.faults.log_file:
            return
        line = f"{service} {kind} {operation}\n".encode()
        descriptor = os.open(self.faults.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line)  # one small O_APPEND write: lines of several processes never mix
        finally:
            os.close(descriptor)

    def in_outage(self, service: str) -> bool:
        now = time.time()
        return any(o["service"] == service and o["start"] <= now < o["end"] for o in self.faults.outages)


def install(faults: AwsFaults) -> Any:
    """Wrap botocore's per-attempt send in this process; returns a function that undoes it."""
    from botocore import endpoint
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

    injector = _Injector(faults)
    original = endpoint.Endpoint._do_get_response

    def attempt(self: Any, request: Any, operation_model: Any, context: Any) -> Any:
        service = operation_model.service_model.endpoint_prefix
        operation = operation_model.name
        f = injector.faults
        if injector.in_outage(service):
            injector.record(service, "outage", operation)
            if injector.chance(0.5):
                return None, ConnectionClosedError(endpoint_url=request.url)
            return _error(request, service, 500, _server_error_code(service)), None
        if injector.chance(f.reset):
            injector.record(service, "reset", operation)
            return None, ConnectionClosedError(endpoint_url=request.url)
        if injector.chance(f.throttle):
            injector.record(service, "throttle", operation)
            code = _THROTTLE_CODES.get(service, "ThrottlingException")
            return _error(request, service, 503 if service == "s3" else 400, code), None
        if injector.chance(f.server_error):
            injector.record(service, "server_error", operation)
            return _error(request, service, 500, _server_error_code(service)), None
        if operation == "TransactWriteItems" and injector.chance(f.transaction_conflict):
            injector.record(service, "transaction_conflict", operation)
            return _transaction_conflict(request, json.loads(request.body or b"{}")), None
        if operation == "PutEvents" and injector.chance(f.put_events_refused):
            injector.record(service, "put_events_refused", operation)
            return _put_events_partly(original, self, request, operation_model, context, injector)
        outcome = original(self, request, operation_model, context)
        if operation in WRITES and outcome[1] is None and injector.chance(f.lost_response):
            injector.record(service, "lost_response", operation)
            return None, ReadTimeoutError(endpoint_url=request.url)
        if operation == "GetObject" and outcome[1] is None and injector.chance(f.broken_body):
            body = outcome[0][1].get("Body")
            if body is not None:
                injector.record(service, "broken_body", operation)
                body._raw_stream = _BreaksOff(body._raw_stream, int(body._content_length or 0))
        return outcome

    endpoint.Endpoint._do_get_response = attempt

    def uninstall() -> None:
        endpoint.Endpoint._do_get_response = original

    return uninstall


def _server_error_code(service: str) -> str:
    return "InternalError" if service == "s3" else "InternalServerError"


def _answer(request: Any, status: int) -> tuple[Any, dict[str, Any]]:
    """An empty HTTP answer and the parsed form botocore's retry policy and callers read."""
    from botocore.awsrequest import AWSResponse

    raw = io.BytesIO(b"")
    raw.stream = lambda **_: iter([b""])  # type: ignore[attr-defined]
    http = AWSResponse(request.url, status, {"x-amzn-requestid": "injected"}, raw)
    return http, {"ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RequestId": "injected"}}


def _error(request: Any, service: str, status: int, code: str) -> tuple[Any, dict[str, Any]]:
    """An error answer as botocore's parser returns it (its retry policy reads code and status)."""
    http, parsed = _answer(request, status)
    parsed["Error"] = {"Code": code, "Message": f"injected by local/stack/aws_faults.py ({service})"}
    return http, parsed


def _transaction_conflict(request: Any, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    http, parsed = _error(request, "dynamodb", 400, "TransactionCanceledException")
    reasons = [{"Code": "TransactionConflict", "Message": "injected"} for _ in body.get("TransactItems", [])]
    parsed["CancellationReasons"] = reasons
    parsed["Error"]["Message"] = (
        "Transaction cancelled, please refer cancellation reasons for specific reasons"
    )
    return http, parsed


def _put_events_partly(
    original: Any, endpoint: Any, request: Any, operation_model: Any, context: Any, injector: _Injector
) -> Any:
    """Send only some entries; answer as EventBridge does for the others (FailedEntryCount > 0)."""
    body = json.loads(request.body)
    entries = body.get("Entries", [])
    refused = {i for i in range(len(entries)) if injector.chance(0.5)} or {0}
    kept = [entry for i, entry in enumerate(entries) if i not in refused]
    if kept:
        request.body = json.dumps({**body, "Entries": kept}).encode()
        request.headers["Content-Length"] = str(len(request.body))
        outcome = original(endpoint, request, operation_model, context)
        if outcome[1] is not None or "Error" in outcome[0][1]:
            return outcome
        http, parsed = outcome[0]
        accepted = iter(parsed.get("Entries", []))
    else:
        http, parsed = _answer(request, 200)
        accepted = iter([])
    merged = [
        {"ErrorCode": "InternalFailure", "ErrorMessage": "injected"} if i in refused else next(accepted, {})
        for i in range(len(entries))
    ]
    failed = sum(1 for entry in merged if "ErrorCode" in entry)
    return (http, {**parsed, "Entries": merged, "FailedEntryCount": failed}), None


class _BreaksOff:
    """A raw stream that delivers the first part of the body, then fails as a reset connection does."""

    def __init__(self, raw: Any, length: int) -> None:
        self._raw = raw
        self._left = max(1, length // 2)

    def read(self, amt: int | None = None) -> bytes:
        from urllib3.exceptions import ProtocolError

        if self._left <= 0 or amt is None:  # a read to the end never gets there
            raise ProtocolError("Connection broken: injected by local/stack/aws_faults.py")
        chunk = self._raw.read(min(amt, self._left))
        self._left -= len(chunk)
        return bytes(chunk)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def install_from_environment() -> None:
    text = os.environ.get(ENV_VAR)
    if text:
        install(AwsFaults.from_env(text))


if __name__ == "<run_path>":  # run as a preload file by local/stack/lambda_bootstrap.py
    install_from_environment()
