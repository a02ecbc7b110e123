"""Runware's OpenAPI file, read as it is (the vendored `spec/` copy), and JSON Schema validators from it.

The file is found as the emulator finds it (`local.runware_emulator.openapi_contract.spec_path`:
`RUNRELAY_SPEC`, else the repository's `spec/runware-minimax-m2.7.openapi.json`).
Validators are Draft 2020-12 (OpenAPI 3.1's dialect) with a live `FormatChecker`, so `format: uuid` and
`format: uri` are really enforced (jsonschema only checks `uri` when rfc3986-validator is installed;
`test_format_checker_is_live` proves it is). Local `$ref`s are inlined, so each schema stands alone.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from local.runware_emulator.openapi_contract import load_spec, spec_path

Schema = dict[str, Any]


def examples_dir() -> Path:
    return spec_path().parent / "runware-examples"


def openapi() -> Schema:
    """The parsed OpenAPI document, read once (the emulator's own loader)."""
    return load_spec()


def _resolve(node: Schema) -> Schema:
    """Follow a local `$ref` (`#/a/b`) inside the OpenAPI document; any other node is returned as is."""
    seen: set[str] = set()
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise ValueError(f"cannot resolve {ref!r}")
        seen.add(ref)
        target: Any = openapi()
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _inline(node: Any, trail: tuple[str, ...] = ()) -> Any:
    """A copy of `node` with every local `$ref` replaced by its target, so a schema stands on its own."""
    if isinstance(node, list):
        return [_inline(item, trail) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if ref in trail:
            raise ValueError(f"recursive $ref {ref!r} is not supported")
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return {**_inline(_resolve({"$ref": ref}), (*trail, ref)), **_inline(siblings, trail)}
    return {key: _inline(value, trail) for key, value in node.items()}


def component(name: str) -> Schema:
    inlined: Schema = _inline(openapi()["components"]["schemas"][name])
    return inlined


def request_body_schema() -> Schema:
    """What the operation really POSTs: followed from `paths./.post.requestBody`, not picked by name."""
    body = _resolve(openapi()["paths"]["/"]["post"]["requestBody"])
    schema: Schema = _inline(body["content"]["application/json"]["schema"])
    if schema.get("type") != "array" or "items" not in schema:
        raise ValueError("the request body is expected to be an array of tasks")
    return schema


def request_item_schema() -> Schema:
    items: Schema = _inline(request_body_schema()["items"])
    return items


def authentication_schema() -> Schema:
    return component("AuthenticationTask")


def request_array_schema(*, with_authentication: bool) -> Schema:
    """The request array; with an `authentication` task as its first element when asked."""
    if not with_authentication:
        return request_body_schema()
    return {
        "type": "array",
        "minItems": 2,
        "prefixItems": [authentication_schema()],
        "items": request_item_schema(),
    }


def validator(schema: Schema) -> Draft202012Validator:
    """A Draft 2020-12 validator that really checks `format` (uuid, uri, ...)."""
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


@functools.cache
def item_validator() -> Draft202012Validator:
    return validator(request_item_schema())


@functools.cache
def array_validator(*, with_authentication: bool = False) -> Draft202012Validator:
    return validator(request_array_schema(with_authentication=with_authentication))


@functools.cache
def authentication_validator() -> Draft202012Validator:
    return validator(authentication_schema())


def schema_errors(check: Draft202012Validator, instance: object) -> list[str]:
    """Every error as `path: message`, empty when the instance is valid."""
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in check.iter_errors(instance)
    ]
