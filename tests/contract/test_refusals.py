"""Table-driven: each invalid request is refused by BOTH the schema and our model, and both name the field.

Every case mutates one spot of an otherwise valid request (`full_request()`, every field set), so a
refusal can only come from that spot. The valid bounds themselves are accepted by both.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from runrelay.contract import TextInferenceTask
from tests.contract.samples import TASK_UUID, full_request
from tests.contract.schema import item_validator, request_item_schema, schema_errors

DELETE = object()
Path = tuple[str | int, ...]


def _mutated(path: Path, value: object) -> dict[str, Any]:
    request = copy.deepcopy(full_request())
    parent: Any = request
    for step in path[:-1]:
        parent = parent[step]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return request


def _case(path: Path, value: object, hint: str | None = None, case_id: str | None = None) -> Any:
    label = case_id or f"{'.'.join(map(str, path))}={'<deleted>' if value is DELETE else repr(value)[:40]}"
    return pytest.param(path, value, hint, id=label)


_BIG_PROMPT = "x" * 200_001

CASES = [
    # integer bounds, one step outside, and the wrong JSON types
    _case(("seed",), -1, "greater than or equal to 0"),
    _case(("seed",), 4_294_967_296, "less than or equal to 4294967295"),
    _case(("seed",), 1.5),
    _case(("seed",), "42"),
    _case(("seed",), True),
    _case(("settings", "maxTokens"), 0, "greater than or equal to 1"),
    _case(("settings", "maxTokens"), 196_609, "less than or equal to 196608"),
    _case(("settings", "maxTokens"), "1024"),
    _case(("settings", "maxTokens"), False),
    _case(("numberResults",), 0, "greater than or equal to 1"),
    _case(("numberResults",), 5, "less than or equal to 4"),
    _case(("numberResults",), True),
    _case(("numberResults",), 2.5),
    # strings
    _case(("settings", "systemPrompt"), "", "at least 1 character"),
    _case(
        ("settings", "systemPrompt"), _BIG_PROMPT, "at most 200000 characters", "systemPrompt=200001 chars"
    ),
    _case(("settings", "systemPrompt"), 7),
    # the 0.01 grid, its bounds and its float quirk
    _case(("settings", "temperature"), 0, "greater than 0"),
    _case(("settings", "temperature"), 0.0, "greater than 0"),
    _case(("settings", "temperature"), 1.01, "less than or equal to 1"),
    _case(("settings", "temperature"), -0.01),
    _case(("settings", "temperature"), 0.005, "not a multiple of 0.01"),
    _case(("settings", "temperature"), 0.07, "use 0.06 or 0.08"),
    _case(("settings", "temperature"), "0.7"),
    _case(("settings", "temperature"), True),
    _case(("settings", "topP"), -0.01, "greater than or equal to 0"),
    _case(("settings", "topP"), 1.01, "less than or equal to 1"),
    _case(("settings", "topP"), 0.555, "not a multiple of 0.01"),
    _case(("settings", "topP"), 0.94, "use 0.93 or 0.95"),
    _case(("settings", "topP"), "0.9"),
    _case(("settings", "topP"), False),
    # messages
    _case(("messages",), [], "at least 1 item"),
    _case(("messages",), "Hello"),
    _case(("messages",), {"role": "user", "content": "Hello"}),
    _case(("messages", 0), "Hello"),
    _case(("messages", 0, "role"), "system", "'user' or 'assistant'"),
    _case(("messages", 0, "role"), "User"),
    _case(("messages", 0, "role"), ""),
    _case(("messages", 1, "role"), None),
    _case(("messages", 0, "role"), DELETE, "Field required"),
    _case(("messages", 0, "content"), "", "at least 1 character"),
    _case(("messages", 2, "content"), 5),
    _case(("messages", 0, "content"), ["Hello"]),
    _case(("messages", 0, "content"), DELETE, "Field required"),
    # an unknown key at each level
    _case(("prompt",), "Hello", "Extra inputs are not permitted"),
    _case(("settings", "topK"), 40, "Extra inputs are not permitted"),
    _case(("messages", 0, "name"), "alice", "Extra inputs are not permitted"),
    _case(("settings",), "fast"),
    _case(("settings",), []),
    # identity and constants
    _case(("taskUUID",), "not-a-uuid"),
    _case(("taskUUID",), ""),
    _case(("taskUUID",), TASK_UUID[:-1], case_id="taskUUID=one digit short"),
    _case(("taskUUID",), TASK_UUID + "0", case_id="taskUUID=one digit long"),
    _case(("taskUUID",), TASK_UUID.replace("a", "g", 1), case_id="taskUUID=non-hex digit"),
    _case(("taskUUID",), 123),
    _case(("taskUUID",), DELETE, "Field required"),
    _case(("model",), "minimax:m2.7@1", "'minimax:m2.7@0'"),
    _case(("model",), "minimax:m2.5@0"),
    _case(("model",), ""),
    _case(("taskType",), "imageInference", "'textInference'"),
    _case(("taskType",), "TextInference"),
    _case(("taskType",), "authentication"),
    # webhookURL: the schema's `format: uri` (RFC 3986), and our own narrowing to http(s)
    _case(("webhookURL",), "not a url", "http(s) URI"),
    _case(("webhookURL",), "hooks.example.com/runware", "http(s) URI"),
    _case(("webhookURL",), "https://hooks.example.com/run ware", "http(s) URI"),
    _case(("webhookURL",), "https://hooks.example.com:port/", "http(s) URI"),
    _case(("webhookURL",), "https://hooks.example.com/caf\u00e9", "http(s) URI"),
    _case(("webhookURL",), "https://hooks.example.com/<hook>", "http(s) URI"),
    _case(("webhookURL",), "https://hooks.example.com/%zz", "http(s) URI"),
    _case(("webhookURL",), "https://[::1/hook", "http(s) URI"),
    _case(("webhookURL",), "https://hooks.example.com/a#b#c", "http(s) URI"),
    _case(("webhookURL",), 42),
    # enums and booleans
    _case(("deliveryMethod",), "SYNC", "'sync', 'async' or 'stream'"),
    _case(("deliveryMethod",), "webhook"),
    _case(("deliveryMethod",), ""),
    _case(("deliveryMethod",), 1),
    _case(("includeCost",), "true", "valid boolean"),
    _case(("includeCost",), 1),
    _case(("includeUsage",), "false", "valid boolean"),
    _case(("includeUsage",), 0),
]


@pytest.mark.parametrize(("path", "value", "hint"), CASES)
def test_invalid_input_is_refused_by_both_naming_the_field(
    path: Path, value: object, hint: str | None
) -> None:
    request = _mutated(path, value)
    field = path[-1] if value is DELETE or isinstance(path[-1], str) else path[-2]

    errors = schema_errors(item_validator(), request)
    assert errors, "the schema accepted it"
    schema_path = "/".join(map(str, path))
    assert any(e.startswith(f"{schema_path}:") or f"'{field}'" in e for e in errors), errors

    with pytest.raises(ValidationError) as refused:
        TextInferenceTask.model_validate(request)
    locations = [tuple(error["loc"]) for error in refused.value.errors()]
    assert locations == [path], locations
    message = str(refused.value)
    assert ".".join(map(str, path)) in message
    if hint is not None:
        assert hint in message


def test_the_base_request_of_the_table_is_valid_for_both() -> None:
    """Without this, every case above could pass for a reason unrelated to its mutation."""
    assert schema_errors(item_validator(), full_request()) == []
    TextInferenceTask.model_validate(full_request())


def _bounds() -> list[Any]:
    props = request_item_schema()["properties"]
    settings = props["settings"]["properties"]
    cases: list[Any] = []
    for path, spec in [
        (("seed",), props["seed"]),
        (("numberResults",), props["numberResults"]),
        (("settings", "maxTokens"), settings["maxTokens"]),
    ]:
        cases += [_case(path, spec["minimum"]), _case(path, spec["maximum"])]
    prompt = settings["systemPrompt"]
    cases += [
        _case(("settings", "systemPrompt"), "x" * prompt["minLength"], case_id="systemPrompt=minLength"),
        _case(("settings", "systemPrompt"), "x" * prompt["maxLength"], case_id="systemPrompt=maxLength"),
        _case(("settings", "temperature"), 0.01),
        _case(("settings", "temperature"), settings["temperature"]["maximum"]),
        _case(("settings", "topP"), settings["topP"]["minimum"]),
        _case(("settings", "topP"), settings["topP"]["maximum"]),
        _case(("messages",), [{"role": "assistant", "content": " "}]),
        _case(("webhookURL",), "http://[::1]:8080/hook?x=%20#frag"),
        _case(("webhookURL",), "HTTPS://user:pw@10.0.0.1/a/../b;c=d?e=f&g"),
    ]
    cases += [_case(("deliveryMethod",), one["const"]) for one in props["deliveryMethod"]["oneOf"]]
    return cases


@pytest.mark.parametrize(("path", "value", "hint"), _bounds())
def test_valid_bounds_are_accepted_by_both(path: Path, value: object, hint: str | None) -> None:
    request = _mutated(path, value)
    assert schema_errors(item_validator(), request) == []
    sent = TextInferenceTask.model_validate(request).to_request()
    assert sent == request
    assert schema_errors(item_validator(), sent) == []
