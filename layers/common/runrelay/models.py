"""The (taskType, model) seam: what runrelay must know of one Runware model's results.

One entry per model: which result fields make a result's identity (a redelivered result is the same
result; two different ones differ) and which fields of a stored result the results file keeps. Adding a
second Runware text model is one more entry here (and, for requests, its settings in `contract.py`).
Kept free of pydantic: the webhook imports it on its cold path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TEXT_INFERENCE = "textInference"


@dataclass(frozen=True)
class ModelEntry:
    task_type: str
    model: str
    identity_fields: tuple[str, ...]
    result_fields: tuple[str, ...]

    def result_id(self, document: Mapping[str, Any]) -> str:
        """Identity of a result: its content. A redelivery is byte-identical; distinct results differ."""
        identity = [document.get(name) for name in self.identity_fields]
        # surrogatepass: a lone surrogate (legal as a JSON escape) must not make hashing fail.
        encoded = json.dumps(identity, ensure_ascii=False).encode("utf-8", "surrogatepass")
        return hashlib.sha256(encoded).hexdigest()[:20]

    def result_line(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """What the results file keeps of one stored result."""
        return {name: stored[name] for name in self.result_fields if name in stored}


MINIMAX_M2_7 = ModelEntry(
    task_type=TEXT_INFERENCE,
    model="minimax:m2.7@0",
    identity_fields=("text", "seed", "reasoningContent", "finishReason"),
    result_fields=("text", "payloadRef", "payloadBytes", "finishReason", "usage", "cost", "seed"),
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
