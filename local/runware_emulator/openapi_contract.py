"""Runware's OpenAPI file as a JSON Schema oracle, independent of the `runrelay` package.

The emulator and the contract tests both judge requests with this module, so a request the project
sends is checked against the published file itself rather than against our own pydantic models.
The file is the repository's vendored copy, `spec/runware-minimax-m2.7.openapi.json` (byte for byte
what Runware publishes; `$RUNRELAY_SPEC` may point elsewhere), loaded once per process.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

SPEC_ENV_VAR = "RUNRELAY_SPEC"
SPEC_FILE_NAME = "runware-minimax-m2.7.openapi.json"
TEXT_INFERENCE = "textInference"

MISSING_PARAMETER = "missingParameter"
UNSUPPORTED_PARAMETER = "unsupportedParameter"
INVALID_PARAMETER = "invalidParameter"

_REPO_ROOT = Path(__file__).resolve().parents[2]


def spec_path() -> Path:
    """Where the OpenAPI file is: `$RUNRELAY_SPEC` if set, else the repository's `spec/<file>`."""
    configured = os.environ.get(SPEC_ENV_VAR)
    if configured:
        return Path(configured).expanduser().resolve()
    return (_REPO_ROOT / "spec" / SPEC_FILE_NAME).resolve()


@cache
def load_spec() -> dict[str, Any]:
    """The parsed OpenAPI document (read once; callers must not mutate it)."""
    path = spec_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as missing:
        raise FileNotFoundError(
            f"Runware OpenAPI file not found at {path}; set ${SPEC_ENV_VAR} to its location"
        ) from missing
    document: dict[str, Any] = json.loads(text)
    return document


def _resolve_refs(node: Any, document: Mapping[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Inline every local `#/...` $ref so the schema stands alone (the spec has no recursive refs)."""
    if isinstance(node, list):
        return [_resolve_refs(child, document, seen) for child in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        if ref in seen:
            raise ValueError(f"recursive $ref {ref!r} cannot be inlined")
        target: Any = document
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return _resolve_refs({**copy.deepcopy(target), **siblings}, document, (*seen, ref))
    return {key: _resolve_refs(value, document, seen) for key, value in node.items()}


def _component_schema(name: str) -> dict[str, Any]:
    document = load_spec()
    resolved: dict[str, Any] = _resolve_refs(document["components"]["schemas"][name], document)
    return resolved


@cache
def _request_item_schema() -> dict[str, Any]:
    return _component_schema("RequestBody")["items"]


def request_item_schema() -> dict[str, Any]:
    """The schema of one `textInference` task (`RequestBody.items`), refs resolved; a fresh copy."""
    return copy.deepcopy(_request_item_schema())


def authentication_task_schema() -> dict[str, Any]:
    """The schema of the `authentication` utility task; a fresh copy."""
    return copy.deepcopy(_component_schema("AuthenticationTask"))


@cache
def format_checker() -> FormatChecker:
    """A format checker enforcing `uuid` and `uri` (the latter needs rfc3986-validator installed)."""
    checker = FormatChecker()
    missing = {"uuid", "uri"} - set(checker.checkers)
    if missing:
        raise RuntimeError(f"jsonschema cannot check formats {sorted(missing)}; install rfc3986-validator")
    return checker


def _validator_for(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=format_checker())


@cache
def request_item_validator() -> Draft202012Validator:
    """A cached Draft 2020-12 validator for one `textInference` task, formats enforced."""
    return _validator_for(request_item_schema())


@cache
def authentication_task_validator() -> Draft202012Validator:
    """A cached Draft 2020-12 validator for the `authentication` task, formats enforced."""
    return _validator_for(authentication_task_schema())


def parameter_path(parts: Iterable[str | int]) -> str:
    """`["messages", 0, "role"]` -> `messages[0].role`, the way Runware names a parameter."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _describe(error: ValidationError, parameter: str) -> str:
    label = parameter or "task"
    if error.validator == "oneOf":
        choices = [
            option["const"]
            for option in error.schema.get("oneOf", [])
            if isinstance(option, dict) and "const" in option
        ]
        if choices:
            return f"Invalid value for '{label}': {error.instance!r} is not one of {', '.join(choices)}."
    if error.validator == "const":
        return f"Invalid value for '{label}': expected {error.validator_value!r}, got {error.instance!r}."
    return f"Invalid value for '{label}': {error.message}."


def error_items(error: ValidationError, task: Any, task_type: str = TEXT_INFERENCE) -> list[dict[str, Any]]:
    """Turn one jsonschema error into Runware error items (`{"code", "message", "parameter", ...}`).

    `required` and `additionalProperties` errors name every missing or extra key as its own item,
    so `parameter` always points at one field.
    """
    base = list(error.absolute_path)
    found: list[tuple[str, str, str]] = []  # (code, parameter, message)
    if error.validator == "required" and isinstance(error.instance, Mapping):
        for name in error.validator_value:
            if name not in error.instance:
                parameter = parameter_path([*base, name])
                found.append((MISSING_PARAMETER, parameter, f"Missing required parameter '{parameter}'."))
    elif error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = error.schema.get("properties", {})
        for name in error.instance:
            if name not in known:
                parameter = parameter_path([*base, name])
                found.append((UNSUPPORTED_PARAMETER, parameter, f"Unsupported parameter '{parameter}'."))
    if not found:
        parameter = parameter_path(base)
        found.append((INVALID_PARAMETER, parameter, _describe(error, parameter)))

    task_uuid = task.get("taskUUID") if isinstance(task, Mapping) else None
    items = []
    for code, parameter, message in found:
        item: dict[str, Any] = {
            "code": code,
            "message": message,
            "parameter": parameter,
            "taskType": task_type,
        }
        if isinstance(task_uuid, str):
            item["taskUUID"] = task_uuid
        items.append(item)
    return items


def error_item(error: ValidationError, task: Any, task_type: str = TEXT_INFERENCE) -> dict[str, Any]:
    """The first (for `required`/`additionalProperties` possibly one of several) Runware error item."""
    return error_items(error, task, task_type)[0]


def collect_error_items(
    validator: Draft202012Validator, task: Any, task_type: str = TEXT_INFERENCE
) -> list[dict[str, Any]]:
    """Every schema problem of `task` as Runware error items, one per (code, parameter), in path order."""
    seen: set[tuple[str, str]] = set()
    items: list[dict[str, Any]] = []
    errors = sorted(validator.iter_errors(task), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        for item in error_items(error, task, task_type):
            key = (item["code"], item["parameter"])
            if key not in seen:
                seen.add(key)
                items.append(item)
    return items


def is_uuid_v4(value: str) -> bool:
    """True for a canonical hyphenated UUID with version 4 and the RFC 4122 variant bits."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return str(parsed) == value.lower() and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def text_task_error_items(task: Any) -> list[dict[str, Any]]:
    """Schema problems of a `textInference` task plus the spec's prose rule that taskUUID is a UUID v4."""
    items = collect_error_items(request_item_validator(), task)
    task_uuid = task.get("taskUUID") if isinstance(task, Mapping) else None
    already_flagged = any(item["parameter"] == "taskUUID" for item in items)
    if isinstance(task_uuid, str) and not already_flagged and not is_uuid_v4(task_uuid):
        items.append(
            {
                "code": INVALID_PARAMETER,
                "message": "Invalid value for 'taskUUID': must be a UUID v4 (version 4, RFC 4122 variant).",
                "parameter": "taskUUID",
                "taskType": TEXT_INFERENCE,
                "taskUUID": task_uuid,
            }
        )
    return items


def enum_values(schema: Mapping[str, Any]) -> Sequence[Any]:
    """The allowed values of an `enum`, `const` or `oneOf`-of-consts schema (for tests drawing values)."""
    if "enum" in schema:
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    return [option["const"] for option in schema.get("oneOf", []) if "const" in option]
