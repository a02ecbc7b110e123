"""A tiny local HTTP server that records webhook POSTs, for tests of anything that sends webhooks.

It can answer the first N POSTs with an error status, to exercise the sender's retries.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

from local.net import serve_in_background, stop_serving


@dataclass(frozen=True)
class ReceivedWebhook:
    path: str
    query: dict[str, list[str]]
    raw_path: str  # path and query string exactly as requested
    headers: dict[str, str]
    body: bytes
    answered: int  # the status the sink answered with
    received_at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


class _SinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _SinkServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.server.sink._next_status()
        parts = urlsplit(self.path)
        self.server.sink._record(
            ReceivedWebhook(
                path=parts.path,
                query=parse_qs(parts.query),
                raw_path=self.path,
                headers=dict(self.headers.items()),
                body=body,
                answered=status,
                received_at=time.monotonic(),
            )
        )
        payload = b'{"ok": true}' if status < 300 else b'{"error": "injected by the sink"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _SinkServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, sink: WebhookSink) -> None:
        self.sink = sink
        super().__init__(("127.0.0.1", 0), _SinkHandler)


class WebhookSink:
    """Records every POST; `fail_first(n)` makes the next n POSTs answer `status` (default 500)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._requests: list[ReceivedWebhook] = []
        self._failures_left = 0
        self._failure_status = 500
        self._server = _SinkServer(self)
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._thread = serve_in_background(self._server, name="webhook-sink", poll_interval=0.02)
        return self

    def stop(self) -> None:
        stop_serving(self._server, self._thread, 5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str = "/webhooks/runware", **query: str) -> str:
        """A webhook URL on this sink, with an optional query string (e.g. `token=...`)."""
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{self.base_url}{path}{suffix}"

    def fail_first(self, count: int, status: int = 500) -> None:
        with self._condition:
            self._failures_left = count
            self._failure_status = status

    @property
    def requests(self) -> list[ReceivedWebhook]:
        """Every POST so far, failed ones included, in arrival order."""
        with self._condition:
            return list(self._requests)

    @property
    def accepted(self) -> list[ReceivedWebhook]:
        """The POSTs answered 2xx, in arrival order."""
        return [request for request in self.requests if request.answered < 300]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedWebhook]:
        """Block until at least `count` POSTs were answered 2xx; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while sum(1 for r in self._requests if r.answered < 300) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = sum(1 for r in self._requests if r.answered < 300)
                    raise TimeoutError(f"expected {count} accepted webhooks, got {got}")
                self._condition.wait(remaining)
        return self.accepted

    def _next_status(self) -> int:
        with self._condition:
            if self._failures_left > 0:
                self._failures_left -= 1
                return self._failure_status
            return 200

    def _record(self, request: ReceivedWebhook) -> None:
        with self._condition:
            self._requests.append(request)
            self._condition.notify_all()
