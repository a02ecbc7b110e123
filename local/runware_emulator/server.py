"""The HTTP layer: a threaded stdlib server speaking HTTP/1.1 and the `EmulatorServer` test handle."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from local.http_bodies import BodyTooLarge, read_body
from local.net import serve_in_background, stop_serving
from local.runware_emulator.app import EmulatorApp, Reply
from local.runware_emulator.counters import Counters
from local.runware_emulator.engine import Engine, EngineOptions, ErrorStyle, WebhookShape
from local.runware_emulator.faults import FaultConfig, FaultInjector
from local.runware_emulator.sse import SSE_SHAPES, SseShape
from local.runware_emulator.webhooks import RetryPolicy, WebhookDispatcher

SUBMIT_PATHS = frozenset({"/", "/v1", "/v1/"})
MAX_BODY_BYTES = 32 * 1024 * 1024


def _sleep_until(moment: float) -> None:
    remaining = moment - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "RunwareEmulator/1.0"
    timeout = 60  # an idle keep-alive connection is closed after this many seconds
    server: _HttpServer

    # --- plumbing -----------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def _count(self, status: int | str) -> None:
        """Count answers to the Runware API itself, not to the admin and health routes."""
        if urlsplit(self.path).path in SUBMIT_PATHS:
            self.server.app.counters.request(status)

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self._count(status)  # before answering: a client may read the stats right after the answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_events(self, reply: Reply) -> None:
        self._count(reply.status)
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        assert reply.events is not None
        for event in reply.events:
            self.wfile.write(event.encode())
            self.wfile.flush()
            if reply.event_gap > 0:
                time.sleep(reply.event_gap)

    def _drop(self) -> None:
        """Answer nothing: the client sees its connection reset or closed, as after a timeout."""
        self.close_connection = True
        self._count("dropped")
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _deliver(self, reply: Reply) -> None:
        _sleep_until(reply.respond_at)
        if reply.drop:
            self._drop()
        elif reply.events is not None:
            self._send_events(reply)
        else:
            self._send_json(reply.status, reply.body, reply.headers)

    def _not_found(self) -> None:
        message = f"No route for {self.command} {self.path}."
        self._send_json(404, {"errors": [{"code": "notFound", "message": message}]})

    # --- routes -------------------------------------------------------------------------------------

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        try:
            raw = read_body(self.rfile, self.headers, MAX_BODY_BYTES)
        except (BodyTooLarge, ValueError):
            self.close_connection = True
            message = f"The request body must be a valid HTTP body of at most {MAX_BODY_BYTES} bytes."
            self._send_json(413, {"errors": [{"code": "requestTooLarge", "message": message}]})
            return
        app = self.server.app
        if path in SUBMIT_PATHS:
            self._deliver(app.handle_submit(self.headers.get("Authorization"), raw))
        elif path == "/admin/faults":
            self._deliver(app.handle_admin_faults(raw))
        elif path == "/admin/reset":
            app.reset()
            self._send_json(200, {"reset": True})
        else:
            self._not_found()

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        app = self.server.app
        if path == "/admin/stats":
            self._send_json(200, app.stats())
        elif path == "/admin/faults":
            self._send_json(200, {"faults": app.faults.config.to_dict()})
        elif path == "/health":
            self._send_json(200, {"status": "ok"})
        elif path in SUBMIT_PATHS:
            error = {"code": "methodNotAllowed", "message": "Use POST with a JSON array of tasks."}
            self._send_json(405, {"errors": [error]}, {"Allow": "POST"})
        else:
            self._not_found()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: EmulatorApp, verbose: bool) -> None:
        self.app = app
        self.verbose = verbose
        super().__init__(address, _Handler)


class EmulatorServer:
    """A strict Runware emulator on a local port; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        api_key: str | None = None,
        webhook_shape: WebhookShape = "wrapped",
        faults: FaultConfig | None = None,
        time_scale: float = 1.0,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        error_style: ErrorStyle = "errors",
        sse_shape: SseShape = "bare",
        result_delay: float = 0.02,
        retry: RetryPolicy | None = None,
        webhook_workers: int = 8,
        verbose: bool = False,
    ) -> None:
        if sse_shape not in SSE_SHAPES:
            raise ValueError(f"sse_shape must be one of {SSE_SHAPES}, got {sse_shape!r}")
        options = EngineOptions(
            webhook_shape=webhook_shape,
            error_style=error_style,
            time_scale=time_scale,
            result_delay=result_delay,
        )
        self._counters = Counters()
        self._faults = FaultInjector(faults, seed)
        self._dispatcher = WebhookDispatcher(
            retry or RetryPolicy(),
            self._counters,
            jitter=self._faults.uniform,
            time_scale=time_scale,
            workers=webhook_workers,
        )
        engine = Engine(options, self._faults, self._counters, self._dispatcher)
        self.app = EmulatorApp(api_key, engine, self._faults, self._counters, self._dispatcher, sse_shape)
        self._address = (host, port)
        self._verbose = verbose
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._http is not None:
            raise RuntimeError("the emulator is already running")
        self._http = _HttpServer(self._address, self.app, self._verbose)
        self._dispatcher.start()
        self._thread = serve_in_background(self._http, name="runware-emulator", poll_interval=0.02)
        return self

    def stop(self) -> None:
        if self._http is None:
            return
        stop_serving(self._http, self._thread, 5)
        self._dispatcher.stop()
        self._http = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("the emulator is not running")
        return int(self._http.server_address[1])

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` (no path)."""
        host = self._address[0]
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        return f"http://{shown}:{self.port}"

    @property
    def url(self) -> str:
        """The submit URL, `<base_url>/v1`: what RUNWARE_API_URL should be set to."""
        return f"{self.base_url}/v1"

    @property
    def faults(self) -> FaultConfig:
        return self._faults.config

    def set_faults(self, faults: FaultConfig | None = None, /, **changes: Any) -> FaultConfig:
        """Replace the fault settings (`faults`), or change some fields of the current ones (`**changes`)."""
        config = (faults or self._faults.config).with_changes(changes)
        self.app.set_faults(config)
        return config

    def stats(self) -> dict[str, Any]:
        """Counters: executions, max_executions, requests_by_status, faults, webhooks, tasks, fault_config."""
        return self.app.stats()

    def reset(self) -> None:
        self.app.reset()

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Block until no webhook delivery is queued, waiting for retry or in flight; False on timeout."""
        return self._dispatcher.wait_idle(timeout)
