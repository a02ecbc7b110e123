"""A result too large for its task's row: its body goes to the payload store, the row keeps a pointer.

One rule for every task repository (the DynamoDB adapter and the tests' in-memory fake), so a large result
is stored and read back the same way whichever one holds it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .domain.tasks import TaskRecord
    from .ports import PayloadStore

# A result larger than this (as JSON) goes to the payload store. A row holds up to four inline results
# (MAX_NUMBER_RESULTS) beside its own attributes, in one DynamoDB item of at most 400 KB.
INLINE_RESULT_LIMIT = 48 * 1024
MAX_ITEM_BYTES = 400 * 1024
# A row's own attributes but its spec (keys, status, metadata, earlier attempts, names of the results).
ROW_MARGIN_BYTES = 32 * 1024


def spec_room(number_results: int) -> int:
    """Bytes an SQS task's spec (kept whole in its row, to retry it) may take, so that its row still fits
    one item once all its results are in, each up to INLINE_RESULT_LIMIT."""
    return MAX_ITEM_BYTES - number_results * INLINE_RESULT_LIMIT - ROW_MARGIN_BYTES


# What a pointer entry keeps of the result, for listings that do not read the payload.
_SUMMARY_FIELDS = ("finishReason", "cost", "usage", "seed", "status")


def encoded_result(body: dict[str, Any]) -> bytes:
    # "replace": a lone surrogate becomes "?", as the DynamoDB codec does for an inline copy.
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "replace")


def pointer_entry(
    payloads: PayloadStore, body: dict[str, Any], encoded: bytes, task_uuid: str, rid: str, attempt: int
) -> dict[str, Any]:
    """Write `encoded` (the result `body`) to the payload store; the entry that points at it.

    Written before the row points at it, so a pointer never dangles; writing it again is idempotent.
    """
    folder = f"completions/{task_uuid}/" + (f"a{attempt}/" if attempt else "")
    ref = payloads.put(f"{folder}{rid}.json", encoded)
    summary = {name: body[name] for name in _SUMMARY_FIELDS if name in body}
    return {**summary, "payloadRef": ref, "payloadBytes": len(encoded)}


def resolve_payloads(record: TaskRecord, payloads: PayloadStore) -> TaskRecord:
    """`record` with each pointer entry replaced by the result it points at (the pointer kept)."""
    for position, entry in enumerate(record.results):
        ref = entry.get("payloadRef")
        if ref:
            record.results[position] = {**json.loads(payloads.get(ref)), "payloadRef": ref}
    return record
