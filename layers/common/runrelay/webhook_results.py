"""Results as they arrive in webhook bodies, checked without pydantic.

The webhook is the latency-critical function: importing pydantic and building the contract's models
is a large share of its cold start (bench/README.md, cold_start). A result is a small, open-ended object, so a
plain check of the documented fields' types does the same job here: unknown fields are kept, known
ones must have their documented types. `contract.InferenceResult` stays the model for everything the
client reads; both expose what `TaskRepository.store_result` needs (`domain.tasks.StorableResult`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import DEFAULT_MODEL

# Documented result fields and the JSON types they may have (docs/runware-behaviour.md, "Results"); the
# string fields come from the model's entry (`models.ModelEntry.string_fields`).
_USAGE_COUNTS = ("promptTokens", "completionTokens", "totalTokens", "thinkingTokens")


class InvalidResult(ValueError):
    """A result whose documented fields have the wrong types."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    # An int of any size is an integer (JSON allows 10**400; the store keeps what DynamoDB cannot hold as
    # text); a float only if finite and whole. float(value) would overflow on such an int.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


@dataclass(frozen=True)
class WebhookResult:
    """One result: its fields as sent (unknown ones kept), the taskUUID canonical. A webhook is result 0
    of its task's first attempt unless its URL says otherwise (`webhook_logic`)."""

    document: dict[str, Any]
    slot: int = 0
    attempt: int = 0

    @classmethod
    def parse(
        cls, raw: dict[str, Any], task_uuid: str, string_fields: tuple[str, ...] = DEFAULT_MODEL.string_fields
    ) -> WebhookResult:
        for name in string_fields:
            if raw.get(name) is not None and not isinstance(raw[name], str):
                raise InvalidResult(f"{name} must be a string")
        if raw.get("cost") is not None and not _is_number(raw["cost"]):
            raise InvalidResult("cost must be a number")
        if raw.get("seed") is not None and not _is_integer(raw["seed"]):
            raise InvalidResult("seed must be an integer")
        usage = raw.get("usage")
        if usage is not None:
            if not isinstance(usage, dict):
                raise InvalidResult("usage must be an object")
            for name in _USAGE_COUNTS:
                if usage.get(name) is not None and not _is_integer(usage[name]):
                    raise InvalidResult(f"usage.{name} must be an integer")
        if raw.get("error") is not None and not isinstance(raw["error"], dict):
            raise InvalidResult("error must be an object")
        document = {**raw, "taskUUID": task_uuid}
        if document.get("seed") is not None:
            document["seed"] = int(document["seed"])
        return cls(document)

    @property
    def taskUUID(self) -> str:
        return str(self.document["taskUUID"])

    @property
    def text(self) -> str | None:
        return self.document.get("text")

    @property
    def seed(self) -> int | None:
        return self.document.get("seed")

    @property
    def reasoningContent(self) -> str | None:
        return self.document.get("reasoningContent")

    @property
    def finishReason(self) -> str | None:
        return self.document.get("finishReason")

    @property
    def cost(self) -> float | None:
        return self.document.get("cost")

    @property
    def usage(self) -> dict[str, Any]:
        return self.document.get("usage") or {}

    @property
    def error(self) -> dict[str, Any] | None:
        return self.document.get("error")

    @property
    def is_error(self) -> bool:
        return self.document.get("status") == "error" or self.error is not None

    def as_document(self) -> dict[str, Any]:
        """What is stored: every field sent but the task's identity, nulls left out."""
        return {
            key: value
            for key, value in self.document.items()
            if key not in ("taskUUID", "taskType") and value is not None
        }


def error_document(raw: dict[str, Any]) -> dict[str, Any]:
    """A Runware error item as stored: `code` and `message` always there, other fields kept."""
    code, message = raw.get("code"), raw.get("message")
    if (code is not None and not isinstance(code, str)) or (
        message is not None and not isinstance(message, str)
    ):
        raise InvalidResult("error code and message must be strings")
    kept = {k: v for k, v in raw.items() if k != "status" and v is not None}
    return {**kept, "code": code or "unknown", "message": message or ""}
