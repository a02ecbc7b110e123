"""The Runware emulator over real HTTP: validation, auth, sync/async/stream, getResponse, conflicts."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.runware_emulator import EmulatorServer
from tests.support.runware_requests import (
    AUTH,
    get_response,
    new_uuid,
    poll,
    post,
    sse_lines,
    sse_payloads,
    text_task,
)

Mutation = Callable[[dict[str, Any]], None]


def setting(name: str, value: Any) -> Mutation:
    def mutate(task: dict[str, Any]) -> None:
        task.setdefault("settings", {})[name] = value

    return mutate


def field(name: str, value: Any) -> Mutation:
    def mutate(task: dict[str, Any]) -> None:
        task[name] = value

    return mutate


def without(name: str) -> Mutation:
    def mutate(task: dict[str, Any]) -> None:
        del task[name]

    return mutate


def message(index: int, **changes: Any) -> Mutation:
    def mutate(task: dict[str, Any]) -> None:
        while len(task["messages"]) <= index:
            task["messages"].append({"role": "assistant", "content": "ok"})
        task["messages"][index].update(changes)
        for key, value in changes.items():
            if value is ...:
                del task["messages"][index][key]

    return mutate


INVALID = "invalidParameter"
MISSING = "missingParameter"
UNSUPPORTED = "unsupportedParameter"

INVALID_TASKS = [
    pytest.param(field("seed", -1), "seed", INVALID, id="seed-below-0"),
    pytest.param(field("seed", 4294967296), "seed", INVALID, id="seed-above-uint32"),
    pytest.param(field("seed", 1.5), "seed", INVALID, id="seed-fractional"),
    pytest.param(field("seed", "42"), "seed", INVALID, id="seed-string"),
    pytest.param(setting("maxTokens", 0), "settings.maxTokens", INVALID, id="maxTokens-0"),
    pytest.param(setting("maxTokens", 196609), "settings.maxTokens", INVALID, id="maxTokens-196609"),
    pytest.param(setting("maxTokens", True), "settings.maxTokens", INVALID, id="maxTokens-bool"),
    pytest.param(field("numberResults", 0), "numberResults", INVALID, id="numberResults-0"),
    pytest.param(field("numberResults", 5), "numberResults", INVALID, id="numberResults-5"),
    pytest.param(field("numberResults", 2.5), "numberResults", INVALID, id="numberResults-fractional"),
    pytest.param(setting("temperature", 0), "settings.temperature", INVALID, id="temperature-0"),
    pytest.param(setting("temperature", 1.01), "settings.temperature", INVALID, id="temperature-1.01"),
    pytest.param(setting("temperature", 0.005), "settings.temperature", INVALID, id="temperature-0.005"),
    pytest.param(setting("temperature", "0.5"), "settings.temperature", INVALID, id="temperature-string"),
    pytest.param(setting("topP", -0.01), "settings.topP", INVALID, id="topP-negative"),
    pytest.param(setting("topP", 1.01), "settings.topP", INVALID, id="topP-1.01"),
    pytest.param(setting("systemPrompt", ""), "settings.systemPrompt", INVALID, id="systemPrompt-empty"),
    pytest.param(
        setting("systemPrompt", "x" * 200001), "settings.systemPrompt", INVALID, id="systemPrompt-200001"
    ),
    pytest.param(setting("topK", 40), "settings.topK", UNSUPPORTED, id="settings-extra-key"),
    pytest.param(field("settings", []), "settings", INVALID, id="settings-not-object"),
    pytest.param(message(0, role="system"), "messages[0].role", INVALID, id="role-system"),
    pytest.param(message(1, role="tool"), "messages[1].role", INVALID, id="second-role-wrong"),
    pytest.param(message(0, content=""), "messages[0].content", INVALID, id="content-empty"),
    pytest.param(message(0, content=42), "messages[0].content", INVALID, id="content-number"),
    pytest.param(message(0, name="bob"), "messages[0].name", UNSUPPORTED, id="message-extra-key"),
    pytest.param(message(1, role=...), "messages[1].role", MISSING, id="message-missing-role"),
    pytest.param(field("messages", []), "messages", INVALID, id="messages-empty"),
    pytest.param(field("messages", "hello"), "messages", INVALID, id="messages-string"),
    pytest.param(without("messages"), "messages", MISSING, id="messages-missing"),
    pytest.param(without("model"), "model", MISSING, id="model-missing"),
    pytest.param(without("taskUUID"), "taskUUID", MISSING, id="taskUUID-missing"),
    pytest.param(without("taskType"), "taskType", MISSING, id="taskType-missing"),
    pytest.param(field("model", "minimax:m2.5@0"), "model", INVALID, id="model-wrong"),
    pytest.param(field("taskUUID", "not-a-uuid"), "taskUUID", INVALID, id="taskUUID-garbage"),
    pytest.param(field("taskUUID", str(uuid.uuid1())), "taskUUID", INVALID, id="taskUUID-not-v4"),
    pytest.param(field("webhookURL", "not a url"), "webhookURL", INVALID, id="webhookURL-spaces"),
    pytest.param(field("webhookURL", "/webhooks/runware"), "webhookURL", INVALID, id="webhookURL-relative"),
    pytest.param(field("prompt", "hi"), "prompt", UNSUPPORTED, id="top-level-extra-key"),
    pytest.param(field("includeCost", "true"), "includeCost", INVALID, id="includeCost-string"),
    pytest.param(field("includeUsage", 1), "includeUsage", INVALID, id="includeUsage-int"),
    pytest.param(field("deliveryMethod", "batch"), "deliveryMethod", INVALID, id="deliveryMethod-batch"),
    pytest.param(
        lambda t: t.update(deliveryMethod="stream", numberResults=2),
        "numberResults",
        INVALID,
        id="stream-with-2-results",
    ),
    pytest.param(field("taskType", "imageInference"), "taskType", "unsupportedTaskType", id="taskType-other"),
    pytest.param(field("taskType", 7), "taskType", INVALID, id="taskType-number"),
]


def test_at_least_thirty_distinct_invalid_requests_are_covered() -> None:
    assert len({param.id for param in INVALID_TASKS}) >= 30


@pytest.mark.parametrize(("mutate", "parameter", "code"), INVALID_TASKS)
def test_invalid_task_is_rejected_naming_the_parameter(
    emulator: EmulatorServer, mutate: Mutation, parameter: str, code: str
) -> None:
    task = text_task()
    mutate(task)

    response = post(emulator.url, [task])

    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"errors"}
    matching = [error for error in body["errors"] if error["parameter"] == parameter]
    assert matching, body
    assert matching[0]["code"] == code
    assert matching[0]["message"]
    if isinstance(task.get("taskType"), str):
        assert matching[0]["taskType"] == task["taskType"]
    if isinstance(task.get("taskUUID"), str):
        assert matching[0]["taskUUID"] == task["taskUUID"]
    assert emulator.stats()["executions"] == {}


def test_temperature_that_fails_float_multiple_of_is_rejected(emulator: EmulatorServer) -> None:
    # JSON Schema validators compute 0.07 / 0.01 = 7.000000000000001, so 0.07 is not a "multiple of 0.01";
    # the contract models refuse it for that reason and the emulator must agree.
    response = post(emulator.url, [text_task(settings={"temperature": 0.07})])

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == "settings.temperature"


def test_every_problem_of_a_task_is_listed(emulator: EmulatorServer) -> None:
    task = text_task(seed=-1, numberResults=9, extra=True, settings={"topP": 2})

    response = post(emulator.url, [task])

    assert response.status_code == 400
    parameters = {error["parameter"] for error in response.json()["errors"]}
    assert parameters == {"seed", "numberResults", "extra", "settings.topP"}


def test_one_invalid_task_rejects_the_whole_batch_and_runs_nothing(emulator: EmulatorServer) -> None:
    good = text_task()
    bad = text_task(numberResults=5)

    rejected = post(emulator.url, [good, bad])
    assert rejected.status_code == 400
    assert [e["taskUUID"] for e in rejected.json()["errors"]] == [bad["taskUUID"]]
    assert emulator.stats()["executions"] == {}

    # Nothing was claimed: the good task runs normally afterwards.
    accepted = post(emulator.url, [good])
    assert accepted.status_code == 200
    assert "errors" not in accepted.json()


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        pytest.param(b"{not json", "invalidJson", "not valid JSON", id="not-json"),
        pytest.param(b"", "invalidJson", "not valid JSON", id="empty-body"),
        pytest.param(b"[NaN]", "invalidJson", "NaN", id="nan-constant"),
        pytest.param(b'{"taskType": "textInference"}', "invalidRequestBody", "JSON array", id="object"),
        pytest.param(b"[]", "invalidRequestBody", "at least one task", id="empty-array"),
        pytest.param(b"\xff\xfe", "invalidJson", "not valid JSON", id="not-utf8"),
    ],
)
def test_malformed_body_is_rejected(emulator: EmulatorServer, body: bytes, code: str, fragment: str) -> None:
    response = post(emulator.url, body)

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["code"] == code
    assert fragment in error["message"]


def test_task_that_is_not_an_object_is_rejected(emulator: EmulatorServer) -> None:
    response = post(emulator.url, [text_task(), "hello"])

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == "[1]"


@pytest.mark.parametrize(
    ("task", "parameter", "code"),
    [
        pytest.param({"taskType": "getResponse"}, "taskUUID", MISSING, id="missing-uuid"),
        pytest.param({"taskType": "getResponse", "taskUUID": "nope"}, "taskUUID", INVALID, id="bad-uuid"),
        pytest.param(
            {"taskType": "getResponse", "taskUUID": new_uuid(), "wait": True}, "wait", UNSUPPORTED, id="extra"
        ),
    ],
)
def test_get_response_tasks_are_strict(
    emulator: EmulatorServer, task: dict[str, Any], parameter: str, code: str
) -> None:
    response = post(emulator.url, [task])

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["parameter"], error["code"], error["taskType"]) == (parameter, code, "getResponse")


def test_stream_task_must_be_alone_in_its_request(emulator: EmulatorServer) -> None:
    response = post(emulator.url, [text_task(deliveryMethod="stream"), text_task()])

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == "deliveryMethod"


# ---- valid requests drawn from the schema's ranges -----------------------------------------------------


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(time_scale=0.0) as server:
        yield server


def _passes_float_multiple_of(value: float) -> bool:
    quotient = value / 0.01
    return int(quotient) == quotient


hundredths = st.integers(min_value=1, max_value=100).map(lambda n: n / 100)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant"]), "content": st.text(min_size=1, max_size=40)}
    ),
    min_size=1,
    max_size=4,
)
valid_settings = st.fixed_dictionaries(
    {},
    optional={
        "systemPrompt": st.text(min_size=1, max_size=60),
        "temperature": hundredths.filter(_passes_float_multiple_of),
        "topP": st.one_of(st.just(0), hundredths.filter(_passes_float_multiple_of)),
        "maxTokens": st.integers(min_value=1, max_value=196608),
    },
)
valid_tasks = st.fixed_dictionaries(
    {
        "taskType": st.just("textInference"),
        "taskUUID": st.uuids(version=4).map(str),
        "model": st.just("minimax:m2.7@0"),
        "messages": messages,
    },
    optional={
        "seed": st.integers(min_value=0, max_value=4294967295),
        "settings": valid_settings,
        "includeCost": st.booleans(),
        "includeUsage": st.booleans(),
        "deliveryMethod": st.sampled_from(["sync", "async"]),
        "numberResults": st.integers(min_value=1, max_value=4),
        "webhookURL": st.just("http://127.0.0.1:9/hook?token=abc"),
    },
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task=valid_tasks)
def test_valid_tasks_from_the_schema_ranges_are_accepted(
    shared_emulator: EmulatorServer, task: dict[str, Any]
) -> None:
    task = copy.deepcopy(task)
    task.pop("webhookURL", None)  # keep the property about validation, not about delivery
    shared_emulator.reset()  # hypothesis may draw the same taskUUID twice

    response = post(shared_emulator.url, [task])

    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body
    if task.get("deliveryMethod") == "async":
        assert body["data"] == [{"taskType": "textInference", "taskUUID": task["taskUUID"]}]
        return
    results = body["data"]
    assert len(results) == task.get("numberResults", 1)
    max_tokens = task.get("settings", {}).get("maxTokens", 32768)
    for result in results:
        assert result["taskUUID"] == task["taskUUID"]
        assert result["finishReason"] in ("stop", "length")
        assert 1 <= len(result["text"].split()) <= max_tokens
        assert ("cost" in result) == task.get("includeCost", False)
        assert ("usage" in result) == task.get("includeUsage", False)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(["seed", "numberResults", "maxTokens"]),
    low_side=st.booleans(),
    distance=st.integers(min_value=1, max_value=10**6),
)
def test_integers_outside_the_schema_ranges_are_rejected(
    shared_emulator: EmulatorServer, name: str, low_side: bool, distance: int
) -> None:
    bounds = {"seed": (0, 4294967295), "numberResults": (1, 4), "maxTokens": (1, 196608)}
    low, high = bounds[name]
    value = low - distance if low_side else high + distance
    task = text_task(settings={"maxTokens": value}) if name == "maxTokens" else text_task(**{name: value})

    response = post(shared_emulator.url, [task])

    assert response.status_code == 400
    expected = "settings.maxTokens" if name == "maxTokens" else name
    assert [error["parameter"] for error in response.json()["errors"]] == [expected]


# ---- authentication ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-key"),
        pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
        pytest.param({"Authorization": "Basic dGVzdDp0ZXN0"}, id="basic-scheme"),
        pytest.param({"Authorization": "Bearer wrong-key"}, id="wrong-key"),
    ],
)
def test_missing_or_wrong_key_is_401(
    emulator_factory: Callable[..., EmulatorServer], headers: dict[str, str]
) -> None:
    emulator = emulator_factory(api_key="the-key")
    task = text_task()

    response = post(emulator.url, [task], headers=headers)

    assert response.status_code == 401
    assert response.json() == {
        "errors": [
            {
                "code": "invalidApiKey",
                "message": "Invalid API key. Get one at https://my.runware.ai/signup",
                "parameter": "apiKey",
                "taskType": "authentication",
            }
        ]
    }
    assert emulator.stats()["executions"] == {}


def test_configured_key_is_accepted(emulator_factory: Callable[..., EmulatorServer]) -> None:
    emulator = emulator_factory(api_key="the-key")

    response = post(emulator.url, [text_task()], headers={"Authorization": "Bearer the-key"})

    assert response.status_code == 200


def test_any_non_empty_key_is_accepted_without_a_configured_key(emulator: EmulatorServer) -> None:
    response = post(emulator.url, [text_task()], headers={"Authorization": "bearer anything"})

    assert response.status_code == 200


def test_wrong_header_is_refused_before_the_body_is_judged(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    emulator = emulator_factory(api_key="the-key")

    response = post(emulator.url, b"not json", headers={"Authorization": "Bearer nope"})

    assert response.status_code == 401


def test_authentication_task_as_first_element_authenticates(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    emulator = emulator_factory(api_key="the-key")
    task = text_task()

    response = post(emulator.url, [{"taskType": "authentication", "apiKey": "the-key"}, task], headers={})

    assert response.status_code == 200
    assert response.json()["data"][0]["taskUUID"] == task["taskUUID"]


def test_authentication_task_with_wrong_key_is_401(emulator_factory: Callable[..., EmulatorServer]) -> None:
    emulator = emulator_factory(api_key="the-key")

    response = post(emulator.url, [{"taskType": "authentication", "apiKey": "x"}, text_task()], headers={})

    assert response.status_code == 401


def test_authentication_task_is_validated_against_the_spec(emulator: EmulatorServer) -> None:
    auth = {"taskType": "authentication", "apiKey": "k", "connectionSessionUUID": "nope", "user": "me"}

    response = post(emulator.url, [auth, text_task()], headers={})

    assert response.status_code == 400
    parameters = {error["parameter"] for error in response.json()["errors"]}
    assert parameters == {"connectionSessionUUID", "user"}


def test_authentication_task_only_answers_a_session(emulator: EmulatorServer) -> None:
    session = new_uuid()
    auth = {"taskType": "authentication", "apiKey": "k", "connectionSessionUUID": session}

    response = post(emulator.url, [auth], headers={})

    assert response.json() == {"data": [{"taskType": "authentication", "connectionSessionUUID": session}]}


def test_authentication_task_later_in_the_array_is_rejected(emulator: EmulatorServer) -> None:
    response = post(emulator.url, [text_task(), {"taskType": "authentication", "apiKey": "k"}])

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == "taskType"


# ---- sync ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1", "/v1/", "/"])
def test_sync_answers_with_the_results(emulator: EmulatorServer, path: str) -> None:
    task = text_task(seed=41, numberResults=3, includeCost=True, includeUsage=True)

    response = post(emulator.base_url + path, [task])

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data"}
    results = body["data"]
    assert [r["seed"] for r in results] == [41, 42, 43]
    assert len({r["text"] for r in results}) == 3
    for result in results:
        assert result["taskType"] == "textInference"
        assert result["taskUUID"] == task["taskUUID"]
        assert result["status"] == "success"
        assert result["finishReason"] == "stop"
        assert result["cost"] > 0
        usage = result["usage"]
        assert usage["totalTokens"] == usage["promptTokens"] + usage["completionTokens"]
        assert usage["completionTokensDetails"]["reasoningTokens"] <= usage["completionTokens"]


def test_sync_is_the_default_and_leaves_out_cost_and_usage(emulator: EmulatorServer) -> None:
    results = post(emulator.url, [text_task()]).json()["data"]

    assert len(results) == 1
    assert "cost" not in results[0]
    assert "usage" not in results[0]


def test_text_is_deterministic_from_messages_settings_and_seed(emulator: EmulatorServer) -> None:
    first = post(emulator.url, [text_task(seed=7, settings={"temperature": 0.5})]).json()["data"][0]
    again = post(emulator.url, [text_task(seed=7, settings={"temperature": 0.5})]).json()["data"][0]
    other = post(emulator.url, [text_task(seed=8, settings={"temperature": 0.5})]).json()["data"][0]

    assert first["text"] == again["text"]
    assert first["text"] != other["text"]


def test_seed_wraps_in_the_uint32_range(emulator: EmulatorServer) -> None:
    results = post(emulator.url, [text_task(seed=4294967295, numberResults=2)]).json()["data"]

    assert [r["seed"] for r in results] == [4294967295, 0]


def test_tiny_max_tokens_truncates_with_finish_reason_length(emulator: EmulatorServer) -> None:
    task = text_task(settings={"maxTokens": 1}, includeUsage=True)

    result = post(emulator.url, [task]).json()["data"][0]

    assert result["finishReason"] == "length"
    assert len(result["text"].split()) == 1
    assert result["usage"]["completionTokens"] <= 1


def test_unknown_extra_fields_appear_in_some_results(emulator: EmulatorServer) -> None:
    tasks = [text_task(numberResults=4) for _ in range(5)]

    results = post(emulator.url, tasks).json()["data"]

    assert len(results) == 20
    assert any("providerLatencyMs" in r for r in results)
    assert any("providerLatencyMs" not in r for r in results)


def test_get_on_the_submit_path_is_405(emulator: EmulatorServer) -> None:
    response = requests.get(emulator.url, timeout=5)

    assert response.status_code == 405


# ---- async and getResponse -----------------------------------------------------------------------------


def test_async_acknowledges_then_get_response_shows_processing_then_success(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    emulator = emulator_factory(time_scale=1.0, result_delay=0.6)
    task = text_task(deliveryMethod="async", numberResults=2, seed=10)

    ack = post(emulator.url, [task])
    early = poll(emulator.url, task["taskUUID"])

    assert ack.json() == {"data": [{"taskType": "textInference", "taskUUID": task["taskUUID"]}]}
    assert early == {
        "data": [{"taskType": "textInference", "taskUUID": task["taskUUID"], "status": "processing"}]
    }
    deadline = time.monotonic() + 5
    late = early
    while time.monotonic() < deadline and any(item["status"] != "success" for item in late["data"]):
        time.sleep(0.05)
        late = poll(emulator.url, task["taskUUID"])
    assert [item["seed"] for item in late["data"]] == [10, 11]
    assert all(item["status"] == "success" and item["text"] for item in late["data"])


def test_get_response_for_a_sync_task_returns_its_results(emulator: EmulatorServer) -> None:
    task = text_task(numberResults=2)
    sync_results = post(emulator.url, [task]).json()["data"]

    polled = poll(emulator.url, task["taskUUID"])

    assert polled == {"data": sync_results}


def test_get_response_for_an_unknown_task_is_task_not_found(emulator: EmulatorServer) -> None:
    unknown = new_uuid()

    body = poll(emulator.url, unknown)

    assert body["data"] == []
    assert body["errors"][0]["code"] == "taskNotFound"
    assert body["errors"][0]["taskUUID"] == unknown


def test_several_get_responses_in_one_request(emulator: EmulatorServer) -> None:
    first, second = text_task(), text_task()
    post(emulator.url, [first, second])

    body = post(emulator.url, [get_response(first["taskUUID"]), get_response(second["taskUUID"])]).json()

    assert [item["taskUUID"] for item in body["data"]] == [first["taskUUID"], second["taskUUID"]]


# ---- stream --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sse_shape", ["bare", "wrapped", "mixed"])
def test_stream_sends_deltas_finish_reason_usage_and_done(
    emulator_factory: Callable[..., EmulatorServer], sse_shape: str
) -> None:
    emulator = emulator_factory(sse_shape=sse_shape)
    task = text_task(deliveryMethod="stream", includeUsage=True, includeCost=True)

    response = post(emulator.url, [task], headers={**AUTH, "Accept": "text/event-stream"}, stream=True)
    text = response.content.decode()

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    lines = sse_lines(text)
    assert ": keep-alive" in lines
    assert lines[-1] == "data: [DONE]"
    payloads = sse_payloads(text)
    deltas = [p["delta"] for p in payloads[:-1] if "delta" in p]
    streamed = "".join(d.get("text", "") for d in deltas)
    finish = [index for index, p in enumerate(payloads) if isinstance(p, dict) and "finishReason" in p]
    usage = [index for index, p in enumerate(payloads) if isinstance(p, dict) and "usage" in p]
    assert len(finish) == 1
    assert usage
    assert usage[0] > finish[0]
    assert any("reasoningContent" in d for d in deltas)
    wrapped_lines = [line for line in lines if line.startswith('data: {"data"')]
    assert bool(wrapped_lines) == (sse_shape != "bare")

    polled = poll(emulator.url, task["taskUUID"])["data"][0]
    assert polled["text"] == streamed
    assert payloads[finish[0]]["finishReason"] == polled["finishReason"]


# ---- conflicts -----------------------------------------------------------------------------------------


def test_resubmitted_task_uuid_conflicts_and_never_runs_twice(emulator: EmulatorServer) -> None:
    task = text_task()
    other = text_task()
    assert post(emulator.url, [task]).status_code == 200

    response = post(emulator.url, [copy.deepcopy(task), other])

    assert response.status_code == 200
    body = response.json()
    assert [item["taskUUID"] for item in body["data"]] == [other["taskUUID"]]
    assert body["errors"] == [
        {
            "code": "conflictTaskUUID",
            "message": body["errors"][0]["message"],
            "parameter": "taskUUID",
            "taskType": "textInference",
            "taskUUID": task["taskUUID"],
        }
    ]
    assert task["taskUUID"] in body["errors"][0]["message"]
    assert emulator.stats()["executions"][task["taskUUID"]] == 1


def test_same_task_uuid_twice_in_one_request_runs_once(emulator: EmulatorServer) -> None:
    task = text_task()

    body = post(emulator.url, [task, copy.deepcopy(task)]).json()

    assert len(body["data"]) == 1
    assert [error["code"] for error in body["errors"]] == ["conflictTaskUUID"]
    assert emulator.stats()["executions"] == {task["taskUUID"]: 1}


def test_all_tasks_conflicting_is_still_200_with_empty_data(emulator: EmulatorServer) -> None:
    task = text_task(deliveryMethod="async")
    post(emulator.url, [task])

    response = post(emulator.url, [task])

    assert response.status_code == 200
    assert response.json()["data"] == []
    assert response.json()["errors"][0]["code"] == "conflictTaskUUID"


def test_conflict_ignores_uuid_letter_case(emulator: EmulatorServer) -> None:
    task = text_task()
    post(emulator.url, [task])

    body = post(emulator.url, [{**task, "taskUUID": task["taskUUID"].upper()}]).json()

    assert body["errors"][0]["code"] == "conflictTaskUUID"


def test_execution_counter_never_exceeds_one(emulator: EmulatorServer) -> None:
    tasks = [text_task() for _ in range(5)]
    for _ in range(3):
        post(emulator.url, tasks)
        post(emulator.url, [tasks[0], tasks[0]])

    stats = emulator.stats()

    assert stats["executions"] == {task["taskUUID"]: 1 for task in tasks}
    assert stats["max_executions"] == 1
    assert stats["requests_by_status"] == {"200": 6}
