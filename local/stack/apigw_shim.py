"""API Gateway HTTP API (payload format 2.0) in front of in-process Lambda handlers.

Each request becomes the event API Gateway would send; the handler's answer is mapped back the way
HTTP APIs map it (including the plain-value shortcut and API Gateway's own 404/413/500 bodies).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.http_bodies import BodyTooLarge, read_body
from local.net import LOOPBACK, serve_in_background, stop_serving

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # HTTP API payload quota
STAGE = "$default"
_TEXT_TYPES = re.compile(r"^(text/.*|application/(.+\+)?(json|xml|javascript))$")
_NOT_FOUND = {"message": "Not Found"}
_TOO_LARGE = {"message": "Request Entity Too Large"}
_INTERNAL_ERROR = {"message": "Internal Server Error"}

HttpHandler = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Route:
    """`POST /webhooks/runware`; `ANY` matches every method, `{name}`/`{name+}` capture path parts."""

    method: str
    path: str
    handler: HttpHandler

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method):
            return None
        pattern = re.sub(
            r"\\\{([A-Za-z0-9_]+)(\\\+)?\\\}",
            lambda m: f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})",
            re.escape(self.path),
        )
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None


class _ShimServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default listen backlog (5) overflows under a burst of webhook deliveries, and each refused
    # connection then waits out a SYN retransmit (1 s or more); API Gateway itself takes thousands.
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A caller that gave up before the answer (Runware's delivery timeout) is not a shim error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.info("%s: the caller closed the connection before the answer", client_address)
            return
        super().handle_error(request, client_address)


class ApiGatewayShim:
    """A ThreadingHTTPServer on a free loopback port; `base_url` is what the template's
    `https://${Api}.execute-api...` becomes locally."""

    def __init__(
        self, *, api_id: str = "localapi", region: str = "us-east-1", account_id: str = "123456789012"
    ):
        self.api_id = api_id
        self.region = region
        self.account_id = account_id
        self._routes: list[Route] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.answers: dict[int, int] = {}  # how often each status was answered
        self._counts_lock = threading.Lock()

    def count_answer(self, status: int) -> None:
        with self._counts_lock:
            self.answers[status] = self.answers.get(status, 0) + 1

    def add_route(self, route_key: str, handler: HttpHandler) -> None:
        method, _, path = route_key.partition(" ")
        self._routes.append(Route(method.upper(), path, handler))

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the API shim is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ApiGatewayShim:
        if self._server is None:
            self._server = _ShimServer((LOOPBACK, 0), _request_handler_for(self))
            self._thread = serve_in_background(self._server, name="apigw-shim", poll_interval=0.05)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            stop_serving(server, self._thread, 10)
        self._thread = None

    def __enter__(self) -> ApiGatewayShim:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ request -> event
    def find_route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self._routes:
            parameters = route.match(method, path)
            if parameters is not None:
                return route, parameters
        return None

    def build_event(
        self,
        *,
        route: Route,
        path_parameters: Mapping[str, str],
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Message,
        body: bytes,
        source_ip: str,
        protocol: str,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        combined: dict[str, str] = {}
        for name, value in headers.items():
            key = name.lower()
            combined[key] = f"{combined[key]},{value}" if key in combined else value
        cookie_header = combined.pop("cookie", None)
        domain = f"{self.api_id}.execute-api.{self.region}.amazonaws.com"
        combined.setdefault("x-forwarded-for", source_ip)
        combined.setdefault("x-forwarded-proto", "http")
        combined.setdefault("x-amzn-trace-id", f"Root=1-{int(now.timestamp()):08x}-{secrets.token_hex(12)}")
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
        }
        if cookie_header:
            event["cookies"] = [c.strip() for c in re.split(r"[;,]", cookie_header) if c.strip()]
        event["headers"] = combined
        if raw_query:
            parameters: dict[str, str] = {}
            for key, value in parse_qsl(raw_query, keep_blank_values=True):
                parameters[key] = f"{parameters[key]},{value}" if key in parameters else value
            event["queryStringParameters"] = parameters
        event["requestContext"] = {
            "accountId": self.account_id,
            "apiId": self.api_id,
            "domainName": domain,
            "domainPrefix": self.api_id,
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": combined.get("user-agent", ""),
            },
            "requestId": base64.b32encode(secrets.token_bytes(10)).decode("ascii").rstrip("=")[:16],
            "routeKey": route.route_key,
            "stage": STAGE,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }
        if path_parameters:
            event["pathParameters"] = dict(path_parameters)
        if body:
            is_text = bool(_TEXT_TYPES.match(headers.get_content_type())) and "content-type" in combined
            if is_text:
                event["body"] = body.decode("utf-8", "replace")
            else:
                event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = not is_text
        else:
            event["isBase64Encoded"] = False
        return event


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def map_response(result: Any) -> HttpResponse:
    """A handler's return value as HTTP API format 2.0 interprets it."""
    if isinstance(result, dict) and "statusCode" in result:
        status = result["statusCode"]
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"invalid statusCode {status!r}")
        headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
        headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
        raw = result.get("body")
        text = raw if isinstance(raw, str) else ("" if raw is None else json.dumps(raw))
        body = base64.b64decode(text) if result.get("isBase64Encoded") else text.encode("utf-8")
        return HttpResponse(status, headers, body)
    # Any other valid JSON: 200, application/json, the value itself as the body (a string verbatim).
    body_text = result if isinstance(result, str) else json.dumps(result)
    return HttpResponse(200, [("Content-Type", "application/json")], body_text.encode("utf-8"))


def _json_response(status: int, document: Mapping[str, str]) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", "application/json")], json.dumps(document).encode("utf-8"))


def _request_handler_for(shim: ApiGatewayShim) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "local-apigw"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _dispatch(self) -> None:
            started = time.monotonic()
            request_id = secrets.token_hex(8)
            split = urlsplit(self.path)
            try:
                body = read_body(self.rfile, self.headers, MAX_BODY_BYTES, drain=True)
            except BodyTooLarge:
                self._send(_json_response(413, _TOO_LARGE), request_id, close=True)
                return
            found = shim.find_route(self.command, split.path)
            if found is None:
                self._send(_json_response(404, _NOT_FOUND), request_id)
                return
            route, path_parameters = found
            event = shim.build_event(
                route=route,
                path_parameters=path_parameters,
                method=self.command,
                raw_path=split.path,
                raw_query=split.query,
                headers=self.headers,
                body=body,
                source_ip=self.client_address[0],
                protocol=self.request_version,
            )
            try:
                response = map_response(route.handler(event))
            except Exception as error:
                # As API Gateway: a 500 and one line; the function's own log stream holds its traceback.
                log.warning("%s: the integration failed: %s", route.route_key, error)
                response = _json_response(500, _INTERNAL_ERROR)
            shim.count_answer(response.status)
            log.debug(
                "%s %s -> %d in %.0f ms",
                self.command,
                split.path,
                response.status,
                (time.monotonic() - started) * 1000,
            )
            self._send(response, request_id)

        def _send(self, response: HttpResponse, request_id: str, *, close: bool = False) -> None:
            self.send_response(response.status)
            names = {name.lower() for name, _ in response.headers}
            for name, value in response.headers:
                self.send_header(name, value)
            if "content-type" not in names and response.body:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Apigw-Requestid", request_id)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _dispatch

    return _Handler
