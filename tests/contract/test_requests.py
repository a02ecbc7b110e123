"""Our request models serialise only what the shared OpenAPI file allows, checked against the file itself."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
from jsonschema import FormatChecker

from runrelay.contract import (
    AuthenticationTask,
    GetResponseTask,
    InferenceSettings,
    Message,
    TextInferenceTask,
)
from tests.contract.samples import OTHER_UUID, TASK_UUID, full_request, load_example, minimal_request
from tests.contract.schema import (
    array_validator,
    authentication_schema,
    authentication_validator,
    item_validator,
    request_body_schema,
    request_item_schema,
    schema_errors,
)


def test_loader_resolves_the_request_array_and_its_items() -> None:
    assert request_body_schema()["type"] == "array"
    item = request_item_schema()
    assert item["additionalProperties"] is False
    assert set(item["required"]) == {"taskType", "taskUUID", "model", "messages"}
    assert item["properties"]["taskUUID"]["format"] == "uuid"
    assert item["properties"]["webhookURL"]["format"] == "uri"
    assert authentication_schema()["properties"]["taskType"]["const"] == "authentication"


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        ("not-a-uuid", "uuid"),
        ("a770f077f41347de9dacbe0b26a35da6", "uuid"),  # parses as a UUID, but not in the hyphenated form
        ("a770f077-f413-47de-9dac-be0b26a35da", "uuid"),
        ("hooks.example.com/runware", "uri"),  # relative: no scheme
        ("https://hooks.example.com/a b", "uri"),
        ("https://hooks.example.com:port/", "uri"),
        ("https://hooks.example.com/%zz", "uri"),
    ],
)
def test_format_checker_is_live(value: str, fmt: str) -> None:
    """jsonschema skips a format it has no checker for; these must really be refused, or every
    `format` assertion in this suite would silently pass."""
    assert fmt in FormatChecker().checkers
    assert not FormatChecker().conforms(value, fmt)
    field = "taskUUID" if fmt == "uuid" else "webhookURL"
    errors = schema_errors(item_validator(), {**minimal_request(), field: value})
    assert errors == [f"{field}: {value!r} is not a {fmt!r}"]


def test_format_checker_accepts_the_good_forms() -> None:
    assert FormatChecker().conforms(TASK_UUID, "uuid")
    assert FormatChecker().conforms("https://hooks.example.com/runware?token=abc", "uri")


def _full_task() -> TextInferenceTask:
    return TextInferenceTask(
        taskUUID=UUID(TASK_UUID),
        messages=[Message(role="user", content="Hello"), Message(role="assistant", content="Hi")],
        seed=4_294_967_295,
        settings=InferenceSettings(systemPrompt="Be brief.", temperature=0.7, topP=0.95, maxTokens=196_608),
        webhookURL="https://hooks.example.com/runware?token=abc",
        includeCost=True,
        includeUsage=False,
        deliveryMethod="stream",
        numberResults=4,
    )


def test_full_request_array_validates_with_an_authentication_task_first() -> None:
    auth = AuthenticationTask(apiKey="rw-key", connectionSessionUUID=UUID(OTHER_UUID)).to_request()
    tasks = [
        _full_task().to_request(),
        TextInferenceTask(
            taskUUID=UUID(OTHER_UUID), messages=[Message(role="user", content="x")]
        ).to_request(),
    ]
    assert auth == {"taskType": "authentication", "apiKey": "rw-key", "connectionSessionUUID": OTHER_UUID}
    assert schema_errors(authentication_validator(), auth) == []
    assert schema_errors(array_validator(with_authentication=True), [auth, *tasks]) == []
    assert schema_errors(array_validator(), tasks) == []
    # The arrays' schemas are not vacuous: the authentication task is no textInference item.
    assert schema_errors(array_validator(), [auth, *tasks])
    assert schema_errors(array_validator(with_authentication=True), [*tasks, auth])


def test_authentication_task_without_session_leaves_it_out() -> None:
    auth = AuthenticationTask(apiKey="rw-key").to_request()
    assert auth == {"taskType": "authentication", "apiKey": "rw-key"}
    assert schema_errors(authentication_validator(), auth) == []


def test_full_request_serialises_every_field_exactly() -> None:
    body = _full_task().to_request()
    assert body == {
        "taskType": "textInference",
        "taskUUID": TASK_UUID,
        "model": "minimax:m2.7@0",
        "messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"}],
        "seed": 4_294_967_295,
        "settings": {"systemPrompt": "Be brief.", "temperature": 0.7, "topP": 0.95, "maxTokens": 196_608},
        "webhookURL": "https://hooks.example.com/runware?token=abc",
        "includeCost": True,
        "includeUsage": False,
        "deliveryMethod": "stream",
        "numberResults": 4,
    }
    assert schema_errors(item_validator(), body) == []


def test_unset_optionals_are_absent_from_the_json() -> None:
    body = TextInferenceTask(taskUUID=UUID(TASK_UUID), messages=[Message(role="user", content="Hello")])
    assert body.to_request() == minimal_request()
    with_empty_settings = TextInferenceTask.model_validate({**minimal_request(), "settings": {}})
    assert with_empty_settings.to_request() == minimal_request()
    partial = TextInferenceTask.model_validate({**minimal_request(), "settings": {"maxTokens": 5}, "seed": 0})
    assert partial.to_request() == {**minimal_request(), "settings": {"maxTokens": 5}, "seed": 0}
    assert "null" not in json.dumps(partial.to_request())


def test_none_means_unset_and_is_never_sent_as_null() -> None:
    """The schema refuses `null` for every optional; our models take None as "not given" and leave it out."""
    nulls = {**minimal_request(), "seed": None, "webhookURL": None, "settings": {"temperature": None}}
    assert schema_errors(item_validator(), nulls)  # the schema itself does refuse null
    assert TextInferenceTask.model_validate(nulls).to_request() == minimal_request()


def test_required_constants_are_always_serialised() -> None:
    """taskType and model have defaults in the model, but the schema requires them on the wire."""
    task = TextInferenceTask.model_validate(
        {"taskUUID": TASK_UUID, "messages": [{"role": "user", "content": "x"}]}
    )
    body = task.to_request()
    assert body["taskType"] == "textInference"
    assert body["model"] == "minimax:m2.7@0"
    assert schema_errors(item_validator(), body) == []


@pytest.mark.parametrize(
    ("given", "sent", "text"),
    [
        (0.7, 0.7, '"temperature": 0.7}'),
        (0.7000000001, 0.7, '"temperature": 0.7}'),
        (0.1 + 0.2, 0.3, '"temperature": 0.3}'),  # 0.30000000000000004
        (0.6999999999, 0.7, '"temperature": 0.7}'),
        (0.01, 0.01, '"temperature": 0.01}'),
        (1, 1, '"temperature": 1'),
    ],
)
def test_no_float_artefacts_in_the_json(given: float, sent: float, text: str) -> None:
    body = TextInferenceTask.model_validate(
        {**minimal_request(), "settings": {"temperature": given}}
    ).to_request()
    assert body["settings"]["temperature"] == sent
    dumped = json.dumps(body)
    assert text in dumped
    assert "0000000" not in dumped
    assert "9999999" not in dumped
    assert schema_errors(item_validator(), body) == []


def test_top_p_artefact_is_removed_too() -> None:
    body = TextInferenceTask.model_validate(
        {**minimal_request(), "settings": {"topP": 0.1 * 3}}  # 0.30000000000000004
    ).to_request()
    assert json.dumps(body["settings"]) == '{"topP": 0.3}'


def test_full_sample_request_round_trips_unchanged() -> None:
    request = full_request()
    assert schema_errors(item_validator(), request) == []
    assert TextInferenceTask.model_validate(request).to_request() == request


def test_equivalent_uuid_spellings_are_sent_in_the_schema_form() -> None:
    """pydantic parses other UUID spellings; the wire always gets the hyphenated lower-case form."""
    for spelling in (TASK_UUID.upper(), TASK_UUID.replace("-", ""), "{" + TASK_UUID + "}", UUID(TASK_UUID)):
        body = TextInferenceTask.model_validate({**minimal_request(), "taskUUID": spelling}).to_request()
        assert body["taskUUID"] == TASK_UUID
        assert schema_errors(item_validator(), body) == []


def test_runware_stream_example_is_a_valid_request_for_our_model() -> None:
    [example] = load_example("stream_request_textInference.json")
    assert schema_errors(item_validator(), example) == []
    assert TextInferenceTask.model_validate(example).to_request() == example


def test_runware_image_webhook_example_is_refused_by_both() -> None:
    """Runware's webhook example is an imageInference request: not ours, and both sides must say so."""
    example = load_example("webhook_request_imageInference.json")
    assert schema_errors(item_validator(), example)
    with pytest.raises(ValueError, match="taskType"):
        TextInferenceTask.model_validate(example)


def test_get_response_task_matches_runware_example() -> None:
    example = load_example("getResponse_request.jsonc")
    assert GetResponseTask(taskUUID=UUID(example["taskUUID"])).to_request() == example
    assert GetResponseTask.model_validate(example).to_request() == example


def test_request_models_are_frozen() -> None:
    task = _full_task()
    with pytest.raises(ValueError, match="frozen"):
        task.seed = 1  # type: ignore[misc]
