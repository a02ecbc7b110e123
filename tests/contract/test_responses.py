"""Response models are lenient: every documented variant parses and unknown fields survive a round trip."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from runrelay.contract import (
    ErrorResponse,
    GetResponseTask,
    InferenceResult,
    RunwareError,
    TextInferenceTask,
    Usage,
)
from tests.contract.samples import TASK_UUID, load_example, parse_jsonc
from tests.contract.schema import component, examples_dir, schema_errors, validator

FULL_RESULT: dict[str, Any] = {
    "taskType": "textInference",
    "taskUUID": TASK_UUID,
    "text": "Queues wait in line",
    "finishReason": "stop",
    "cost": 0.0012,
    "usage": {
        "promptTokens": 12,
        "completionTokens": 30,
        "totalTokens": 42,
        "thinkingTokens": 20,
        "completionTokensDetails": {"reasoningTokens": 20},
    },
    "seed": 4_294_967_295,
    "status": "success",
    "reasoningContent": "The user wants a haiku.",
}


def _round_trip(raw: dict[str, Any]) -> dict[str, Any]:
    dumped: dict[str, Any] = InferenceResult.model_validate(raw).model_dump(mode="json", exclude_unset=True)
    return dumped


def test_full_result_parses_and_round_trips() -> None:
    result = InferenceResult.model_validate(FULL_RESULT)
    assert result.text == "Queues wait in line"
    assert result.usage is not None
    assert (result.usage.promptTokens, result.usage.completionTokens, result.usage.totalTokens) == (
        12,
        30,
        42,
    )
    assert result.usage.thinkingTokens == 20
    assert result.usage.model_extra == {"completionTokensDetails": {"reasoningTokens": 20}}
    assert result.is_final
    assert not result.is_error
    assert _round_trip(FULL_RESULT) == FULL_RESULT


@pytest.mark.parametrize("reason", ["stop", "length", "content_filter", "unknown", "tool_calls"])
def test_every_finish_reason_is_kept(reason: str) -> None:
    assert InferenceResult.model_validate({**FULL_RESULT, "finishReason": reason}).finishReason == reason


@pytest.mark.parametrize(
    ("status", "final", "error"),
    [
        ("processing", False, False),
        ("pending", False, False),
        ("success", True, False),
        ("error", True, True),
    ],
)
def test_every_documented_status(status: str, final: bool, error: bool) -> None:
    result = InferenceResult.model_validate(
        {"taskType": "textInference", "taskUUID": TASK_UUID, "status": status}
    )
    assert result.status == status
    assert result.is_final is final
    assert result.is_error is error


def test_async_acknowledgement_is_not_an_outcome() -> None:
    ack = InferenceResult.model_validate({"taskType": "textInference", "taskUUID": TASK_UUID})
    assert not ack.is_final
    assert not ack.is_error


def test_text_without_status_is_final() -> None:
    """The official SDK stops polling on `status: success` OR on a `text`; so do we."""
    assert InferenceResult.model_validate({"taskUUID": TASK_UUID, "text": ""}).is_final


def test_failed_item_with_an_error_object() -> None:
    raw = {"taskUUID": TASK_UUID, "status": "error", "error": {"code": "timeoutProvider", "message": "late"}}
    result = InferenceResult.model_validate(raw)
    assert result.is_error
    assert result.is_final
    assert result.error is not None
    assert result.error.code == "timeoutProvider"
    assert _round_trip(raw) == raw


def test_error_object_alone_marks_an_error_even_without_status() -> None:
    result = InferenceResult.model_validate({"taskUUID": TASK_UUID, "error": {"code": "x", "message": "y"}})
    assert result.is_error


def test_a_result_without_task_uuid_is_refused() -> None:
    """The taskUUID is how a result finds its task; without it there is nothing to store."""
    with pytest.raises(ValidationError, match="taskUUID"):
        InferenceResult.model_validate({"text": "orphan"})


_declared = set(InferenceResult.model_fields)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: k not in _declared), _json, max_size=4),
    st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in Usage.model_fields), _json, max_size=3
    ),
    st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in RunwareError.model_fields),
        _json,
        max_size=3,
    ),
)
def test_unknown_fields_survive_at_every_level(
    top: dict[str, Any], usage: dict[str, Any], error: dict[str, Any]
) -> None:
    raw = {
        **FULL_RESULT,
        **top,
        "usage": {**FULL_RESULT["usage"], **usage},
        "error": {"code": "c", "message": "m", **error},
    }
    assert _round_trip(raw) == raw


@pytest.mark.parametrize(
    "code",
    [
        "conflictTaskUUID",
        "ConflictTaskUUID",
        "CONFLICTTASKUUID",
        "error.conflictTaskUUID",
        "conflictTaskUUIDs",
    ],
)
def test_conflict_variants_are_recognised(code: str) -> None:
    error = RunwareError.model_validate({"code": code, "taskUUID": TASK_UUID, "message": "already exists"})
    assert error.is_conflict


@pytest.mark.parametrize(
    "code", ["invalidApiKey", "timeoutProvider", "conflict", "taskUUIDConflict", "unknown"]
)
def test_other_codes_are_not_conflicts(code: str) -> None:
    assert not RunwareError.model_validate({"code": code, "message": "m"}).is_conflict


def test_error_without_code_or_message_still_parses() -> None:
    error = RunwareError.model_validate({"status": "error"})
    assert (error.code, error.message, error.is_conflict) == ("unknown", "", False)
    assert error.model_extra == {"status": "error"}


def test_error_response_needs_at_least_one_error() -> None:
    with pytest.raises(ValidationError, match="errors"):
        ErrorResponse.model_validate({"errors": []})


def test_webhook_failure_shapes_all_parse() -> None:
    """Failures arrive as `{"errors": [...]}`, `{"error": ...}` or a result with `status: error`."""
    error = {"code": "timeoutProvider", "message": "late", "taskUUID": TASK_UUID}
    assert ErrorResponse.model_validate({"errors": [error]}).errors[0].taskUUID == TASK_UUID
    assert RunwareError.model_validate({"error": error}["error"]).code == "timeoutProvider"
    assert InferenceResult.model_validate({"taskUUID": TASK_UUID, "status": "error"}).is_error


def test_webhook_bodies_wrapped_or_bare_parse_the_same() -> None:
    wrapped = InferenceResult.model_validate({"data": [FULL_RESULT]}["data"][0])
    bare = InferenceResult.model_validate(FULL_RESULT)
    assert wrapped == bare


# --- Runware's own published examples -------------------------------------------------------------------


def _error_example(body: Any) -> None:
    assert schema_errors(validator(component("ErrorResponse")), body) == []
    [error] = ErrorResponse.model_validate(body).errors
    assert (error.code, error.parameter, error.taskType) == ("invalidApiKey", "apiKey", "authentication")
    assert not error.is_conflict


def _get_response_request(body: Any) -> None:
    assert GetResponseTask.model_validate(body).to_request() == body


def _get_response_response(body: Any) -> None:
    processing, success = (InferenceResult.model_validate(item) for item in body["data"])
    assert processing.status == "processing"
    assert not processing.is_final
    assert success.is_final
    assert not success.is_error
    assert success.cost == 0.18
    assert success.model_extra is not None
    assert success.model_extra["videoURL"].endswith(".mp4")
    for item in body["data"]:
        assert _round_trip(item) == item
    # a 200 answer holding data AND a failed task: both halves must be readable
    answer = ErrorResponse.model_validate(body)
    [error] = answer.errors
    assert error.code == "timeoutProvider"
    assert error.taskUUID == success.taskUUID
    assert error.model_extra == {"status": "error"}
    assert answer.model_extra == {"data": body["data"]}


def _get_task_details_request(body: Any) -> None:
    assert [item["taskType"] for item in body] == ["getTaskDetails"]


def _stream_request(body: Any) -> None:
    [task] = body
    assert TextInferenceTask.model_validate(task).to_request() == task


def _webhook_payload(body: Any) -> None:
    [item] = body["data"]
    result = InferenceResult.model_validate(item)
    assert result.cost == 0.0013
    assert _round_trip(item) == item


def _webhook_request(body: Any) -> None:
    with pytest.raises(ValidationError):
        TextInferenceTask.model_validate(body)  # an imageInference request is not ours


EXAMPLES: dict[str, Callable[[Any], None]] = {
    "error_invalidApiKey.json": _error_example,
    "getResponse_request.jsonc": _get_response_request,
    "getResponse_response.jsonc": _get_response_response,
    "getTaskDetails_request.json": _get_task_details_request,
    "stream_request_textInference.json": _stream_request,
    "webhook_payload_imageInference.json": _webhook_payload,
    "webhook_request_imageInference.json": _webhook_request,
}


def test_every_published_example_is_covered() -> None:
    present = {p.name for p in examples_dir().iterdir() if p.suffix in (".json", ".jsonc")}
    assert present == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_published_example_parses(name: str) -> None:
    EXAMPLES[name](load_example(name))


def test_jsonc_helper_keeps_strings_intact() -> None:
    text = '{\n  // note\n  "url": "https://x/y//z", "odd": "a,}", "list": [1, 2,],\n}'
    assert parse_jsonc(text) == {"url": "https://x/y//z", "odd": "a,}", "list": [1, 2]}
