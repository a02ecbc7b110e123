"""The results file of one S3 input: `results/<input key>`, one JSON line per task in input order.

Like OpenAI Batch's output file: the caller's id, our taskUUID, the status, the results (text, or an
S3 pointer when the text was offloaded), usage and cost summed over the results, and the error.
Offloaded texts are not inlined: the file stays small enough to stream and the pointer is readable.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .task_store import BY_SOURCE_INDEX, from_dynamo, task_key

RESULTS_PREFIX = "results/"
_BATCH_GET_LIMIT = 100
_SPOOL_BYTES = 8 * 1024 * 1024  # bigger files spill to /tmp and go up as a multipart upload
_RESULT_FIELDS = ("text", "payloadRef", "payloadBytes", "finishReason", "usage", "cost", "seed")


class TasksNotVisibleYet(RuntimeError):
    """The BySource index (eventually consistent) does not list every task yet: try again shortly."""


@dataclass(frozen=True)
class WrittenResults:
    bucket: str
    key: str
    lines: int
    counts: dict[str, int]

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def results_key(input_key: str) -> str:
    """The input's own key under `results/`: one input key names one results key, so two inputs never
    share a results file, and the template's InputPrefix may not start with `results/`, so a results file
    is never taken for an input. The body is JSON Lines whatever the input's extension."""
    return f"{RESULTS_PREFIX}{input_key}"


def result_line(item: Mapping[str, Any]) -> dict[str, Any]:
    """One output line from a task item (plain values, as `from_dynamo` gives them)."""
    entries = sorted(
        (item.get("results") or {}).values(),
        key=lambda entry: (entry.get("receivedAt", 0), entry.get("seed") or 0),
    )
    results = [{k: entry[k] for k in _RESULT_FIELDS if k in entry} for entry in entries]
    line: dict[str, Any] = {
        "line": item.get("sourceSeq"),
        "callerId": item.get("callerId"),
        "taskUUID": item.get("taskUUID"),
        "status": item.get("status"),
        "text": results[0].get("text") if len(results) == 1 else None,
        "results": results,
        "usage": summed_usage(entries),
        "cost": summed_cost(entries),
        "error": item.get("error"),
    }
    if item.get("metadata"):
        line["metadata"] = item["metadata"]
    return line


def summed_usage(entries: Iterable[Mapping[str, Any]]) -> dict[str, int] | None:
    totals: dict[str, int] = {}
    for entry in entries:
        for name, value in (entry.get("usage") or {}).items():
            if isinstance(value, int):
                totals[name] = totals.get(name, 0) + value
    return totals or None


def summed_cost(entries: Iterable[Mapping[str, Any]]) -> float | None:
    """The results' costs added up (None when none carries one)."""
    costs = [entry["cost"] for entry in entries if isinstance(entry.get("cost"), int | float)]
    return round(sum(costs), 10) if costs else None


class ResultsWriter:
    def __init__(self, table_name: str, *, dynamodb: Any, s3: Any) -> None:
        self.table_name = table_name
        self.dynamodb = dynamodb
        self.s3 = s3

    def write(self, source_id: str, expected: int, bucket: str, input_key: str) -> WrittenResults:
        """Write the file for a source whose `expected` tasks are all final (raises if not all listed)."""
        keys = self._task_keys_in_order(source_id)
        if len(keys) < expected:
            raise TasksNotVisibleYet(f"{source_id}: index lists {len(keys)} of {expected} tasks")
        counts: dict[str, int] = {}
        lines = 0
        key = results_key(input_key)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            for item in self._items(keys):
                line = result_line(item)
                counts[line["status"]] = counts.get(line["status"], 0) + 1
                spool.write(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
                lines += 1
            spool.seek(0)
            self.s3.upload_fileobj(spool, bucket, key, ExtraArgs={"ContentType": "application/x-ndjson"})
        return WrittenResults(bucket=bucket, key=key, lines=lines, counts=counts)

    def _task_keys_in_order(self, source_id: str) -> list[dict[str, Any]]:
        pages = self.dynamodb.get_paginator("query").paginate(
            TableName=self.table_name,
            IndexName=BY_SOURCE_INDEX,
            KeyConditionExpression="sourceId = :source",
            ExpressionAttributeValues={":source": {"S": source_id}},
        )
        return [task_key(item["pk"]["S"].removeprefix("TASK#")) for page in pages for item in page["Items"]]

    def _items(self, keys: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Full task items in the order of `keys`, read consistently in batches of 100."""
        for start in range(0, len(keys), _BATCH_GET_LIMIT):
            batch = keys[start : start + _BATCH_GET_LIMIT]
            found: dict[str, dict[str, Any]] = {}
            pending: list[dict[str, Any]] = batch
            while pending:
                answer = self.dynamodb.batch_get_item(
                    RequestItems={self.table_name: {"Keys": pending, "ConsistentRead": True}}
                )
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    found[item["pk"]["S"]] = item
                pending = answer.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
            for key in batch:
                item = found.get(key["pk"]["S"])
                if item is not None:  # expired under TTL since the index was read
                    yield from_dynamo(item)
