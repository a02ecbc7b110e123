"""WebhookResult: documented field types checked without pydantic, unknown fields kept."""

from __future__ import annotations

from typing import Any

import pytest

from runrelay.contract import InferenceResult
from runrelay.webhook_results import InvalidResult, WebhookResult, error_document

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_fields_kept_and_document_without_identity_or_nulls() -> None:
    raw = {
        "taskUUID": UUID.upper(),
        "taskType": "textInference",
        "text": "hi",
        "seed": 7.0,
        "cost": 0.1,
        "usage": {"promptTokens": 3, "completionTokensDetails": {"reasoningTokens": 1}},
        "reasoningContent": None,
        "newField": [1, 2],
    }
    result = WebhookResult.parse(raw, UUID)
    assert result.taskUUID == UUID
    assert result.seed == 7
    assert result.as_document() == {
        "text": "hi",
        "seed": 7,
        "cost": 0.1,
        "newField": [1, 2],
        "usage": {"promptTokens": 3, "completionTokensDetails": {"reasoningTokens": 1}},
    }


def test_stored_as_the_polled_model_stores_it() -> None:
    raw = {"taskUUID": UUID, "text": "same", "seed": 3, "finishReason": "stop"}
    pushed, polled = WebhookResult.parse(raw, UUID), InferenceResult.model_validate(raw)
    assert (pushed.taskUUID, pushed.slot, pushed.as_document()) == (
        polled.taskUUID,
        polled.slot,
        polled.as_document(),
    )


def test_a_field_named_slot_from_runware_is_not_taken_for_ours() -> None:
    raw = {"taskUUID": UUID, "text": "x", "slot": 3}
    assert WebhookResult.parse(raw, UUID).slot == InferenceResult.model_validate(raw).slot == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("text", 5),
        ("finishReason", ["stop"]),
        ("cost", "cheap"),
        ("cost", True),
        ("seed", 1.5),
        ("seed", "7"),
        ("usage", [1]),
        ("usage", {"totalTokens": "many"}),
        ("error", "boom"),
    ],
)
def test_wrong_types_are_refused_with_the_field_named(field: str, value: Any) -> None:
    with pytest.raises(InvalidResult, match=field.split(".")[0]):
        WebhookResult.parse({"taskUUID": UUID, "text": "t", field: value}, UUID)


def test_error_documents() -> None:
    assert error_document({"taskUUID": UUID, "status": "error", "code": "timeoutProvider"}) == {
        "taskUUID": UUID,
        "code": "timeoutProvider",
        "message": "",
    }
    with pytest.raises(InvalidResult):
        error_document({"code": 42})
    assert WebhookResult.parse({"taskUUID": UUID, "status": "error"}, UUID).is_error
