"""Judging a submit request the way Runware does, before anything runs.

Order: a bad `Authorization` header is refused first (401); then the body must be a JSON array (400);
then the key from an `authentication` task is checked (401); then every task is validated and a single
problem anywhere rejects the whole request (400, one error item per problem).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from local.runware_emulator.openapi_contract import (
    INVALID_PARAMETER,
    TEXT_INFERENCE,
    authentication_task_validator,
    collect_error_items,
    format_checker,
    text_task_error_items,
)

GET_RESPONSE = "getResponse"
AUTHENTICATION = "authentication"
INVALID_API_KEY_MESSAGE = "Invalid API key. Get one at https://my.runware.ai/signup"

# getResponse is a Runware utility task the OpenAPI file does not describe; held to the same strictness.
_GET_RESPONSE_VALIDATOR = Draft202012Validator(
    {
        "type": "object",
        "properties": {
            "taskType": {"const": GET_RESPONSE},
            "taskUUID": {"type": "string", "format": "uuid"},
        },
        "required": ["taskType", "taskUUID"],
        "additionalProperties": False,
    },
    format_checker=format_checker(),
)


class Rejection(Exception):
    """The whole request is refused with `status` and a Runware `{"errors": [...]}` body."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"HTTP {status}: {errors}")
        self.status = status
        self.errors = errors


@dataclass(frozen=True)
class TextTask:
    """A validated textInference task."""

    payload: dict[str, Any]

    @property
    def task_uuid(self) -> str:
        return str(self.payload["taskUUID"])

    @property
    def delivery_method(self) -> str:
        return str(self.payload.get("deliveryMethod", "sync"))


@dataclass(frozen=True)
class PollTask:
    """A validated getResponse task."""

    task_uuid: str


Task = TextTask | PollTask


def error_item(code: str, message: str, parameter: str | None = None, **extra: Any) -> dict[str, Any]:
    """One item of an answer's `errors` list, as Runware writes it."""
    item: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        item["parameter"] = parameter
    item.update(extra)
    return item


def invalid_api_key() -> Rejection:
    return Rejection(
        401,
        [error_item("invalidApiKey", INVALID_API_KEY_MESSAGE, "apiKey", taskType=AUTHENTICATION)],
    )


def _reject_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(raw: bytes) -> list[Any]:
    """The request body as a non-empty JSON array, or a 400 Rejection that names the problem."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_json_constant)
    except (UnicodeDecodeError, ValueError) as problem:
        message = f"The request body is not valid JSON: {problem}"
        raise Rejection(400, [error_item("invalidJson", message)]) from None
    if not isinstance(body, list):
        message = f"The request body must be a JSON array of task objects, got a JSON {type(body).__name__}."
        raise Rejection(400, [error_item("invalidRequestBody", message)])
    if not body:
        raise Rejection(
            400, [error_item("invalidRequestBody", "The request body must hold at least one task.")]
        )
    return body


def key_accepted(key: str | None, expected: str | None) -> bool:
    """Any non-empty key when no key is configured, else exactly the configured one."""
    if key is None or not key.strip():
        return False
    if expected is None:
        return True
    return hmac.compare_digest(key.encode(), expected.encode())


def bearer_key(header: str | None) -> str | None:
    """The key in `Authorization: Bearer <key>`; None if the header is absent or not a Bearer header."""
    if header is None:
        return None
    scheme, _, key = header.strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" else None


def check_header(header: str | None, expected: str | None) -> None:
    """A present but unacceptable Authorization header is refused before the body is read."""
    if header is not None and not key_accepted(bearer_key(header), expected):
        raise invalid_api_key()


def authenticate(
    header: str | None, tasks: list[Any], expected: str | None
) -> tuple[list[Any], dict[str, Any] | None]:
    """Check the API key; return the tasks without a leading `authentication` task, and that task."""
    first = tasks[0]
    if isinstance(first, Mapping) and first.get("taskType") == AUTHENTICATION:
        problems = collect_error_items(authentication_task_validator(), first, AUTHENTICATION)
        if problems:
            raise Rejection(400, problems)
        if not key_accepted(first["apiKey"], expected):
            raise invalid_api_key()
        return tasks[1:], dict(first)
    if header is None:
        raise invalid_api_key()
    return tasks, None


def _unsupported_task_type(index: int, task: Mapping[str, Any]) -> dict[str, Any]:
    task_type = task["taskType"]
    if task_type == AUTHENTICATION:
        message = f"The authentication task must be the first element of the request, found at index {index}."
    else:
        message = (
            f"Unsupported taskType {task_type!r} at index {index}; "
            "this endpoint serves textInference, getResponse and authentication."
        )
    code = INVALID_PARAMETER if task_type == AUTHENTICATION else "unsupportedTaskType"
    extra = {"taskUUID": task["taskUUID"]} if isinstance(task.get("taskUUID"), str) else {}
    return error_item(code, message, "taskType", taskType=task_type, **extra)


def _stream_problems(tasks: list[Any]) -> list[dict[str, Any]]:
    problems = []
    for task in tasks:
        if not isinstance(task, Mapping) or task.get("deliveryMethod") != "stream":
            continue
        extra = {"taskType": TEXT_INFERENCE, "taskUUID": task.get("taskUUID")}
        if task.get("numberResults", 1) != 1:
            message = (
                f"numberResults must be 1 when deliveryMethod is 'stream' (got {task['numberResults']}); "
                "use 'sync' or 'async' for several results."
            )
            problems.append(error_item(INVALID_PARAMETER, message, "numberResults", **extra))
        if len(tasks) > 1:
            message = "A task with deliveryMethod 'stream' must be the only task in its request."
            problems.append(error_item(INVALID_PARAMETER, message, "deliveryMethod", **extra))
    return problems


def validate_tasks(tasks: list[Any]) -> list[Task]:
    """Every task checked; any problem rejects the whole request with all problems listed."""
    problems: list[dict[str, Any]] = []
    accepted: list[Task] = []
    for index, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            message = f"Task at index {index} must be a JSON object, got {type(task).__name__}."
            problems.append(error_item(INVALID_PARAMETER, message, f"[{index}]"))
            continue
        task_type = task.get("taskType")
        if task_type == GET_RESPONSE:
            found = collect_error_items(_GET_RESPONSE_VALIDATOR, task, GET_RESPONSE)
            problems.extend(found)
            if not found:
                accepted.append(PollTask(str(task["taskUUID"])))
        elif isinstance(task_type, str) and task_type != TEXT_INFERENCE:
            problems.append(_unsupported_task_type(index, task))
        else:
            found = text_task_error_items(task)
            problems.extend(found)
            if not found:
                accepted.append(TextTask(dict(task)))
    if not problems:
        problems = _stream_problems(tasks)
    if problems:
        raise Rejection(400, problems)
    return accepted
