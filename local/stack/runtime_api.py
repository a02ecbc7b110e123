"""The Lambda Runtime API of one execution environment, served on a loopback port.

A worker process runs AWS's Python runtime interface client (`awslambdaric`) unchanged; the client
long-polls `GET /2018-06-01/runtime/invocation/next`, runs the handler and posts the answer to
`/invocation/<id>/response` or `/invocation/<id>/error`; a handler that cannot be loaded is reported
on `/init/error`. The endpoints and headers are those of AWS's "Using the Lambda runtime API for
custom runtimes" page. Each environment gets its own server because the API has no notion of which
environment is asking: on Lambda, too, every environment talks to its own endpoint.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_VERSION = "2018-06-01"
_NEXT = f"/{API_VERSION}/runtime/invocation/next"
_INVOCATION = f"/{API_VERSION}/runtime/invocation/"
_INIT_ERROR = f"/{API_VERSION}/runtime/init/error"
_STOP = object()  # handed to a waiting `next` when the environment shuts down


@dataclass
class Invocation:
    """One event on its way through an environment; `done` is set once the runtime answered."""

    request_id: str
    body: bytes
    deadline_epoch_ms: int
    trace_id: str = ""
    done: threading.Event = field(default_factory=threading.Event)
    response: bytes | None = None
    error: dict[str, Any] | None = None

    def answer(self, response: bytes | None, error: dict[str, Any] | None) -> None:
        if not self.done.is_set():
            self.response, self.error = response, error
            self.done.set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a worker killed mid-request (timeout, crash) is reported by its invocation, not here


class RuntimeApi:
    """Hands invocations to the environment's runtime client one at a time and collects answers."""

    def __init__(self, function_arn: str) -> None:
        self.function_arn = function_arn
        self._queue: queue.Queue[Any] = queue.Queue()
        self._current: Invocation | None = None
        self._lock = threading.Lock()
        self.ready = threading.Event()  # the runtime asked for its first event: init is over
        self.ready_at: float | None = None
        self.init_error: dict[str, Any] | None = None
        self.init_failed = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> RuntimeApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._queue.put(_STOP)
        self._server.shutdown()
        self._server.server_close()

    def deliver(self, invocation: Invocation) -> None:
        with self._lock:
            self._current = invocation
        self._queue.put(invocation)

    # ------------------------------------------------------------------ called by the request handler
    def next_invocation(self) -> Invocation | None:
        if not self.ready.is_set():
            self.ready_at = time.monotonic()
            self.ready.set()
        item = self._queue.get()
        if item is _STOP:
            self._queue.put(_STOP)  # wake any other waiter too
            return None
        assert isinstance(item, Invocation)
        return item

    def answered(self, request_id: str, response: bytes | None, error: dict[str, Any] | None) -> bool:
        with self._lock:
            current = self._current
            if current is None or current.request_id != request_id:
                return False
            self._current = None
        current.answer(response, error)
        return True

    def answered_by_exit(self, how: str) -> None:
        """The process died: its invocation in hand fails as Lambda reports a runtime exit."""
        with self._lock:
            current, self._current = self._current, None
        if current is not None:
            current.answer(
                None,
                {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {current.request_id} "
                    f"Error: Runtime exited with error: {how}",
                },
            )

    def failed_init(self, error: dict[str, Any]) -> None:
        self.init_error = error
        self.init_failed.set()


def _handler_for(api: RuntimeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # The runtime client keeps its connection open between calls; HTTP/1.0 answers broke it.
        protocol_version = "HTTP/1.1"
        # Small answers: headers and body leave in one buffered write, without Nagle's delay; else
        # every call waits for the client's delayed ACK.
        disable_nagle_algorithm = True
        wbufsize = -1

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path != _NEXT:
                self._send(404, {"errorMessage": f"unknown path {self.path}", "errorType": "NotFound"})
                return
            invocation = api.next_invocation()
            if invocation is None:
                self._send(410, {"errorMessage": "environment shut down", "errorType": "Shutdown"})
                return
            headers = {
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_epoch_ms),
                "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
            }
            if invocation.trace_id:
                headers["Lambda-Runtime-Trace-Id"] = invocation.trace_id
            self._send_bytes(200, invocation.body, headers)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == _INIT_ERROR:
                api.failed_init(_error_document(body, self.headers))
                self._send(202, {"status": "OK"})
                return
            request_id, _, outcome = self.path.removeprefix(_INVOCATION).partition("/")
            if not self.path.startswith(_INVOCATION) or outcome not in ("response", "error"):
                self._send(404, {"errorMessage": f"unknown path {self.path}", "errorType": "NotFound"})
                return
            error = _error_document(body, self.headers) if outcome == "error" else None
            if not api.answered(request_id, body if error is None else None, error):
                self._send(400, {"errorMessage": "unknown request id", "errorType": "InvalidRequestID"})
                return
            self._send(202, {"status": "OK"})

        def _send(self, status: int, document: dict[str, Any]) -> None:
            self._send_bytes(status, json.dumps(document).encode(), {})

        def _send_bytes(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

    return Handler


def _error_document(body: bytes, headers: Any) -> dict[str, Any]:
    """The runtime's error body, or one built from the error-type header when the body is not JSON."""
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        document = {"errorMessage": body.decode("utf-8", "replace")}
    if not isinstance(document, dict):
        document = {"errorMessage": str(document)}
    document.setdefault("errorType", headers.get("Lambda-Runtime-Function-Error-Type") or "Unhandled")
    return document
