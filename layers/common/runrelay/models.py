"""The (taskType, model) seam: everything runrelay knows of one Runware model, in one entry.

An entry names the request builder (a task spec → the request item for one result, with the model's own
settings model: `model_requests.py`), the result fields the webhook checks for type (the result parser's
rules) and the fields of a stored result the results file keeps. A result's identity is not the model's
business: each result is its own Runware task (`task_ids.result_task_uuid`). A second Runware text model
is one more entry. Kept free of pydantic: the webhook imports it on its cold path; the builder is imported
only by the submitter, when it first builds a request.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

TEXT_INFERENCE = "textInference"


@dataclass(frozen=True)
class ModelEntry:
    task_type: str
    model: str
    result_fields: tuple[str, ...]
    # "module:function" of `(task_uuid, spec, webhook_url, slot) -> request item` for result `slot` of
    # the task (None: cannot be submitted).
    request_builder: str | None = None
    # Result fields that must be strings when present (others are kept as sent).
    string_fields: tuple[str, ...] = ("taskType", "text", "finishReason", "status", "reasoningContent")

    def build_request(self, task_uuid: str, spec: Any, webhook_url: str, slot: int = 0) -> Any:
        if self.request_builder is None:
            raise LookupError(f"no request builder for {self.task_type} {self.model}")
        return _load(self.request_builder)(task_uuid, spec, webhook_url, slot)

    def result_line(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """What the results file keeps of one stored result."""
        return {name: stored[name] for name in self.result_fields if name in stored}


@cache
def _load(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    builder: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return builder


MINIMAX_M2_7 = ModelEntry(
    task_type=TEXT_INFERENCE,
    model="minimax:m2.7@0",
    result_fields=("text", "payloadRef", "payloadBytes", "finishReason", "usage", "cost", "seed"),
    request_builder="runrelay.model_requests:minimax_m2_7",
)

_REGISTRY: dict[tuple[str, str], ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    _REGISTRY[(entry.task_type, entry.model)] = entry
    return entry


def model_entry(task_type: str, model: str) -> ModelEntry:
    try:
        return _REGISTRY[(task_type, model)]
    except KeyError:
        raise LookupError(f"no model entry for {task_type} {model}") from None


register(MINIMAX_M2_7)
DEFAULT_MODEL = MINIMAX_M2_7
