"""The API Gateway shim produces HTTP API payload 2.0 events and maps answers like HTTP APIs do."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.stack.apigw_shim import MAX_BODY_BYTES, ApiGatewayShim

SAMPLE_EVENT = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "apigw_http_api_v2_event.json").read_text()
)
ROUTE = "POST /webhooks/runware"


class Capture:
    def __init__(self, answer: Callable[[dict[str, Any]], Any] = lambda event: {"statusCode": 200}) -> None:
        self.events: list[dict[str, Any]] = []
        self.answer = answer
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> Any:
        with self._lock:
            self.events.append(event)
        return self.answer(event)


@pytest.fixture
def shim() -> Iterator[ApiGatewayShim]:
    with ApiGatewayShim(api_id="a1b2c3d4e5") as server:
        yield server


def _raw_post(base_url: str, path: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, bytes]:
    """POST with repeated headers, which `requests` cannot send."""
    host_port = base_url.removeprefix("http://")
    connection = http.client.HTTPConnection(host_port, timeout=10)
    try:
        connection.putrequest("POST", path)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_event_has_the_keys_and_shape_of_a_real_http_api_event(shim: ApiGatewayShim) -> None:
    capture = Capture()
    shim.add_route(ROUTE, capture)
    body = b'{"data":[{"taskUUID":"x","text":"hi"}]}'
    status, _ = _raw_post(
        shim.base_url,
        "/webhooks/runware?token=3f1c9a&token=b2",
        [
            ("Content-Type", "application/json"),
            ("X-Custom", "one"),
            ("x-custom", "two"),
            ("Cookie", "cookie1; cookie2"),
            ("User-Agent", "runware-test/1.0"),
        ],
        body,
    )
    assert status == 200

    (event,) = capture.events
    assert list(event) == list(SAMPLE_EVENT)
    assert list(event["requestContext"]) == list(SAMPLE_EVENT["requestContext"])
    assert list(event["requestContext"]["http"]) == list(SAMPLE_EVENT["requestContext"]["http"])
    assert {k: event[k] for k in ("version", "routeKey", "rawPath", "rawQueryString")} == {
        "version": "2.0",
        "routeKey": ROUTE,
        "rawPath": "/webhooks/runware",
        "rawQueryString": "token=3f1c9a&token=b2",
    }
    assert event["queryStringParameters"] == {"token": "3f1c9a,b2"}
    assert event["cookies"] == ["cookie1", "cookie2"]
    assert all(name == name.lower() for name in event["headers"])
    assert event["headers"]["x-custom"] == "one,two"
    assert "cookie" not in event["headers"]
    assert event["body"] == body.decode()
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert (context["apiId"], context["stage"], context["routeKey"]) == ("a1b2c3d4e5", "$default", ROUTE)
    assert context["domainName"] == "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
    assert context["http"] == {
        "method": "POST",
        "path": "/webhooks/runware",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "runware-test/1.0",
    }
    assert isinstance(context["timeEpoch"], int)


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "application/x-www-form-urlencoded", None]
)
def test_non_text_bodies_arrive_base64_encoded(shim: ApiGatewayShim, content_type: str | None) -> None:
    capture = Capture()
    shim.add_route(ROUTE, capture)
    headers = [("Content-Type", content_type)] if content_type else []
    _raw_post(shim.base_url, "/webhooks/runware", headers, b"\x00\xffa=b")
    (event,) = capture.events
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\xffa=b"


def test_a_request_without_body_query_or_cookies_has_no_such_keys(shim: ApiGatewayShim) -> None:
    capture = Capture()
    shim.add_route("GET /items/{id}", capture)
    assert requests.get(f"{shim.base_url}/items/42", timeout=10).status_code == 200
    (event,) = capture.events
    assert event["pathParameters"] == {"id": "42"}
    assert event["routeKey"] == "GET /items/{id}"
    assert not {"body", "cookies", "queryStringParameters", "stageVariables"} & set(event)
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize(("method", "path"), [("POST", "/nowhere"), ("GET", "/webhooks/runware")])
def test_unknown_routes_get_api_gateways_404(shim: ApiGatewayShim, method: str, path: str) -> None:
    capture = Capture()
    shim.add_route(ROUTE, capture)
    response = requests.request(method, f"{shim.base_url}{path}", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    assert capture.events == []


def test_bodies_over_ten_megabytes_get_413_without_invoking(shim: ApiGatewayShim) -> None:
    capture = Capture()
    shim.add_route(ROUTE, capture)
    response = requests.post(
        f"{shim.base_url}/webhooks/runware", data=b"x" * (MAX_BODY_BYTES + 1), timeout=30
    )
    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}
    assert capture.events == []
    at_limit = requests.post(f"{shim.base_url}/webhooks/runware", data=b"x" * MAX_BODY_BYTES, timeout=30)
    assert at_limit.status_code == 200


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda event: 1 / 0, id="handler-raises"),
        pytest.param(lambda event: {"statusCode": "teapot"}, id="invalid-status"),
    ],
)
def test_integration_failures_get_api_gateways_500(shim: ApiGatewayShim, answer: Callable[..., Any]) -> None:
    shim.add_route(ROUTE, Capture(answer))
    response = requests.post(f"{shim.base_url}/webhooks/runware", json={}, timeout=10)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


def test_structured_responses_map_status_headers_cookies_and_body(shim: ApiGatewayShim) -> None:
    shim.add_route(
        ROUTE,
        Capture(
            lambda event: {
                "statusCode": 202,
                "headers": {"content-type": "text/plain", "x-result": "stored"},
                "cookies": ["a=1", "b=2"],
                "body": "accepted",
            }
        ),
    )
    response = requests.post(f"{shim.base_url}/webhooks/runware", json={}, timeout=10)
    assert response.status_code == 202
    assert response.headers["x-result"] == "stored"
    assert response.headers["content-type"] == "text/plain"
    assert response.cookies.get("a") == "1"
    assert response.cookies.get("b") == "2"
    assert response.text == "accepted"


def test_base64_response_bodies_are_decoded(shim: ApiGatewayShim) -> None:
    encoded = base64.b64encode(b"\x89PNG").decode()
    shim.add_route(
        ROUTE, Capture(lambda event: {"statusCode": 200, "body": encoded, "isBase64Encoded": True})
    )
    assert requests.post(f"{shim.base_url}/webhooks/runware", timeout=10).content == b"\x89PNG"


@pytest.mark.parametrize(
    ("returned", "expected_body"),
    [({"ok": True}, '{"ok": true}'), ("plain text", "plain text"), ([1, 2], "[1, 2]")],
)
def test_plain_return_values_become_200_json_bodies(
    shim: ApiGatewayShim, returned: Any, expected_body: str
) -> None:
    shim.add_route(ROUTE, Capture(lambda event: returned))
    response = requests.post(f"{shim.base_url}/webhooks/runware", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text == expected_body
