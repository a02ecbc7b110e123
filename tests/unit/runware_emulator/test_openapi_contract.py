"""The emulator's openapi_contract: finding and loading the shared spec, and Runware-style error items."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from local.runware_emulator import openapi_contract
from local.runware_emulator.openapi_contract import (
    error_items,
    parameter_path,
    request_item_schema,
    request_item_validator,
    spec_path,
    text_task_error_items,
)

VALID = {
    "taskType": "textInference",
    "taskUUID": "50836053-a0ee-4cf5-b9d6-ae7c5d140ada",
    "model": "minimax:m2.7@0",
    "messages": [{"role": "user", "content": "hi"}],
}


def test_spec_path_follows_the_environment_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RUNRELAY_SPEC", str(tmp_path / "spec.json"))

    assert spec_path() == tmp_path / "spec.json"


def test_spec_path_defaults_to_the_vendored_copy_in_the_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNRELAY_SPEC", raising=False)
    repo = Path(openapi_contract.__file__).resolve().parents[2]

    assert spec_path() == repo / "spec" / "runware-minimax-m2.7.openapi.json"
    assert spec_path().is_file()


def test_request_item_schema_is_the_spec_items_with_refs_resolved() -> None:
    spec = json.loads(spec_path().read_text())

    schema = request_item_schema()

    assert schema == spec["components"]["schemas"]["RequestBody"]["items"]
    assert "$ref" not in json.dumps(schema)
    schema["properties"].clear()  # callers get a copy: the cached schema is untouched
    assert request_item_schema()["properties"]


def test_validator_is_cached_and_enforces_formats() -> None:
    validator = request_item_validator()

    assert validator is request_item_validator()
    assert validator.is_valid(VALID)
    assert not validator.is_valid({**VALID, "taskUUID": "123"})
    assert not validator.is_valid({**VALID, "webhookURL": "no scheme here"})
    assert validator.is_valid({**VALID, "webhookURL": "https://example.com/hook?token=abc"})


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["seed"], "seed"),
        (["messages", 0, "role"], "messages[0].role"),
        (["settings", "topP"], "settings.topP"),
    ],
)
def test_parameter_path(parts: list[str | int], expected: str) -> None:
    assert parameter_path(parts) == expected


def test_every_missing_and_extra_key_gets_its_own_item() -> None:
    task = {"taskType": "textInference", "taskUUID": VALID["taskUUID"], "a": 1, "b": 2}

    items = text_task_error_items(task)

    found = {(item["code"], item["parameter"]) for item in items}
    assert found == {
        ("missingParameter", "model"),
        ("missingParameter", "messages"),
        ("unsupportedParameter", "a"),
        ("unsupportedParameter", "b"),
    }
    assert all(item["taskUUID"] == VALID["taskUUID"] for item in items)
    assert all(item["taskType"] == "textInference" for item in items)


def test_error_item_for_a_nested_value() -> None:
    task = {**VALID, "messages": [{"role": "user", "content": ""}]}
    error = next(request_item_validator().iter_errors(task))

    (item,) = error_items(error, task)

    assert item["code"] == "invalidParameter"
    assert item["parameter"] == "messages[0].content"
    assert "messages[0].content" in item["message"]


def test_task_uuid_must_be_version_4() -> None:
    items = text_task_error_items({**VALID, "taskUUID": str(uuid.uuid1())})

    assert [(item["code"], item["parameter"]) for item in items] == [("invalidParameter", "taskUUID")]
    assert text_task_error_items(VALID) == []
