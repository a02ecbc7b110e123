"""Server-Sent Events for `deliveryMethod: "stream"`, with every variant docs/runware-behaviour.md lists.

Events: `delta.reasoningContent` chunks, then `delta.text` chunks, a chunk carrying `finishReason`,
then (if asked for) a separate line with `usage`/`cost`, and `data: [DONE]`. `: keep-alive` comment
lines appear between chunks. With shape "wrapped" a line is `{"data": {...}}`; "mixed" alternates.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from local.runware_emulator.engine import TaskRecord
from local.runware_emulator.generation import stream_chunks

SseShape = Literal["bare", "wrapped", "mixed"]
SSE_SHAPES: tuple[SseShape, ...] = ("bare", "wrapped", "mixed")
KEEP_ALIVE = ": keep-alive\n\n"
DONE = "data: [DONE]\n\n"
KEEP_ALIVE_EVERY = 4  # chunks between comment lines


def _line(payload: dict[str, Any], shape: SseShape, position: int) -> str:
    wrap = shape == "wrapped" or (shape == "mixed" and position % 2 == 1)
    return f"data: {json.dumps({'data': payload} if wrap else payload)}\n\n"


def stream_events(record: TaskRecord, shape: SseShape = "bare") -> list[str]:
    """Every SSE event (each ending in a blank line) for a successful single-result stream task."""
    completion = record.completions[0]
    result = record.results[0]
    head = {"taskType": "textInference", "taskUUID": record.task_uuid}
    payloads: list[dict[str, Any]] = [
        {**head, "delta": {field: piece}}
        for field, piece in stream_chunks(completion.text, completion.reasoning)
    ]
    seed = {"seed": result["seed"]} if "seed" in result else {}
    payloads.append({**head, "delta": {}, "finishReason": result["finishReason"], **seed})
    tail: dict[str, Any] = {key: result[key] for key in ("usage", "cost") if key in result}
    if tail:
        payloads.append({**head, **tail})

    events = [KEEP_ALIVE]
    for position, payload in enumerate(payloads):
        events.append(_line(payload, shape, position))
        if position % KEEP_ALIVE_EVERY == KEEP_ALIVE_EVERY - 1:
            events.append(KEEP_ALIVE)
    events.append(DONE)
    return events
