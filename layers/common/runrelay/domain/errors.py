"""How much of an error a task keeps: enough to read, never so much that it cannot be stored or announced.

A REJECTED, FAILED or CANCELLED row keeps its error, and the task's TaskCompleted event carries it. An item
is limited to 400 KB and a PutEvents call to 256 KB, and an error's text can come from anywhere: pydantic
listing every bad element of a huge array, or an error document Runware sends back. Unbounded, one such
error would make the same write fail on every delivery, and the task, or the record carrying it, would be
lost. Every task repository stores `bounded_error(error)`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Ten errors in one PutEvents call stay far below its 256 KB even with every character escaped.
MAX_MESSAGE_CHARS = 1_000
MAX_CODE_CHARS = 200
# The whole error as stored, JSON-encoded; past it only the fields a reader needs are kept.
MAX_ERROR_BYTES = 8 * 1024
_ESSENTIAL_FIELDS = ("code", "message", "parameter", "taskUUID", "line")


def clipped(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` in at most `limit` characters, saying how many were left out (so clipping twice changes
    nothing)."""
    if len(text) <= limit:
        return text
    suffix = f"… ({len(text)} characters in all)"
    return text[: max(0, limit - len(suffix))] + suffix


def bounded_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """`error` with every text clipped and, if it is still larger than MAX_ERROR_BYTES, only its
    essential fields (marked `"truncated": true`)."""
    bounded = {key: clipped(value) if isinstance(value, str) else value for key, value in error.items()}
    if isinstance(bounded.get("code"), str):
        bounded["code"] = clipped(bounded["code"], MAX_CODE_CHARS)
    if len(json.dumps(bounded, default=str)) <= MAX_ERROR_BYTES:
        return bounded
    essential = {key: bounded[key] for key in _ESSENTIAL_FIELDS if isinstance(bounded.get(key), str | int)}
    return {**essential, "truncated": True}
