"""Webhook fuzz: random bodies, tokens, content types and headers against the real route (API shim →
WebhookFunction → DynamoDB Local). Properties: never a 5xx, and a rejected request changes no item."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runrelay.domain.tasks import TaskRecord
from runrelay.webhook_token import token_for

from .conftest import Pipeline

# Derandomized: the same 70 requests every run, so the check that each kind of refusal was reached
# cannot pass or fail by chance; the strategies still cover the shapes below.
FUZZ_SETTINGS = settings(
    max_examples=70,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TASK_UUIDS = st.uuids(version=4).map(str)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/octet-stream",  # the shim hands the body over base64-encoded, as API Gateway does
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "",
    ]
)
HEADER_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(
    lambda n: f"x-{n}"
)
# requests refuses header values with leading or trailing blanks before anything is sent.
HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(
    str.strip
)


def _deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


# Bodies no generator should have to stumble upon.
SPECIAL_BODIES = st.sampled_from(
    [
        b"",
        b"   ",
        b"null",
        b"{not json",
        b"\xff\xfe\x00garbage",
        '{"taskUUID": "caf\u00e9"}'.encode("latin-1"),
        b"[" * 20_000 + b"]" * 20_000,
        _deep(33),
        _deep(31),
        b'{"data": "' + b"x" * (1024 * 1024 + 10) + b'"}',
        b'{"data": [' + b"1," * 200_000 + b"1]}",
    ]
)


@st.composite
def result_objects(draw: st.DrawFn, task_uuid: str) -> dict[str, Any]:
    result: dict[str, Any] = {"taskUUID": draw(st.sampled_from([task_uuid, task_uuid.upper(), "not-a-uuid"]))}
    fields = {
        "taskType": st.sampled_from(["textInference", "imageInference", 7]),
        "text": st.text(max_size=40) | SCALARS,
        "finishReason": st.sampled_from(["stop", "length", "content_filter", "unknown", "bogus", 3]),
        "seed": SCALARS,
        "cost": SCALARS,
        "usage": JSON_VALUES,
        "status": st.sampled_from(["success", "error", "processing", "pending", None]),
        "error": JSON_VALUES,
        "reasoningContent": st.text(max_size=20) | SCALARS,
        "someNewField": JSON_VALUES,
    }
    for name, strategy in fields.items():
        if draw(st.booleans()):
            result[name] = draw(strategy)
    return result


@st.composite
def webhook_requests(draw: st.DrawFn) -> dict[str, Any]:
    task_uuid = draw(TASK_UUIDS)
    shape = draw(st.sampled_from(["wrapped", "bare", "errors", "error", "list", "random", "special"]))
    if shape == "special":
        body = draw(SPECIAL_BODIES)
    else:
        result = draw(result_objects(task_uuid))
        payload: Any = {
            "wrapped": {"data": [result]},
            "bare": result,
            "errors": {"errors": [result]},
            "error": {"taskUUID": task_uuid, "error": result},
            "list": [result, draw(result_objects(draw(TASK_UUIDS)))],
            "random": draw(JSON_VALUES),
        }[shape]
        body = json.dumps(payload).encode()
    token_kind = draw(
        st.sampled_from(["valid", "valid", "other-task", "garbage", "empty", "missing", "previous"])
    )
    headers = draw(st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3))
    content_type = draw(CONTENT_TYPES)
    if content_type:
        headers["content-type"] = content_type
    return {
        "task_uuid": task_uuid,
        "token_kind": token_kind,
        "garbage": draw(st.text(max_size=80)),
        "body": body,
        "headers": headers,
    }


@pytest.fixture
def webhook_target(pipeline_factory: Callable[..., Pipeline]) -> tuple[Pipeline, str]:
    pipeline = pipeline_factory(schedule_period=3600)
    secret_arn = pipeline.stack.endpoints.webhook_secret_arn
    secret = json.loads(pipeline.clients.secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"])
    return pipeline, secret["current"]


def _snapshot(pipeline: Pipeline) -> list[TaskRecord]:
    """The tasks: all the webhook writes (every write stamps `updatedAt`). The results function adds
    its own bookkeeping items from the table's stream a moment after an accepted webhook, so those are
    left out."""
    return sorted(pipeline.inspector.all_tasks(), key=lambda task: task.task_uuid)


def _token(request: dict[str, Any], secret: str) -> str | None:
    kind = request["token_kind"]
    if kind == "valid":
        return token_for(secret, request["task_uuid"])
    if kind == "other-task":
        return token_for(secret, str(uuid.uuid4()))
    if kind == "previous":  # a secret the receiver does not hold
        return token_for("a-retired-secret", request["task_uuid"])
    return {"garbage": request["garbage"], "empty": "", "missing": None}[kind]


def test_fuzzed_webhooks_never_get_a_5xx_and_rejections_write_nothing(
    webhook_target: tuple[Pipeline, str],
) -> None:
    pipeline, secret = webhook_target
    url = pipeline.stack.endpoints.webhook_url
    seen: dict[int, int] = {}

    @FUZZ_SETTINGS
    @given(request=webhook_requests())
    def check(request: dict[str, Any]) -> None:
        before = _snapshot(pipeline)
        token = _token(request, secret)
        params = {} if token is None else {"token": token}
        answer = requests.post(
            url, params=params, data=request["body"], headers=request["headers"], timeout=30
        )
        seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
        assert answer.status_code < 500, (answer.status_code, answer.text[:300])
        if answer.status_code != 200:
            assert _snapshot(pipeline) == before, f"rejected with {answer.status_code} but the table changed"
        if request["token_kind"] != "valid":
            assert answer.status_code in (400, 401, 403, 413), answer.text[:300]

    check()
    # The generator reached both sides of the receiver: stored results and each kind of refusal.
    assert seen.get(200, 0) > 0
    assert {401, 403, 400} <= set(seen)
