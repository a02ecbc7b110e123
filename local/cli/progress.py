"""Cheap, repeatable status reads for `status` and `wait`: index keys plus BatchGetItem of `status` only.

`TaskStore.tasks_of_source` reads whole items (results included); polling that every half second would
cost a full read per task per poll. Here a poll reads the BySource keys once per poll and only the
status of tasks not yet final (a final status never changes).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.cli.ids import Ref, TaskRef
from runrelay.task_store import BY_SOURCE_INDEX, FINAL_STATUSES, task_key

_BATCH_GET_LIMIT = 100


@dataclass
class Tally:
    """Statuses of the tasks of some refs. `expected` counts the tasks known to come; it is `exact`
    when every ref's size is known (S3 objects are counted, a task is one; SQS messages are not)."""

    statuses: dict[str, str] = field(default_factory=dict)
    expected: int = 0
    exact: bool = False

    @property
    def total(self) -> int:
        return max(self.expected, len(self.statuses))

    @property
    def final(self) -> int:
        return sum(status in FINAL_STATUSES for status in self.statuses.values())

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(self.statuses.values()))

    @property
    def failed(self) -> int:
        return self.counts.get("FAILED", 0)

    def settled(self) -> bool:
        return bool(self.statuses) and self.final >= self.total


class StatusReader:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self.dynamodb = dynamodb
        self.table_name = table_name

    def task_uuids(self, ref: Ref) -> list[str]:
        if isinstance(ref, TaskRef):
            return [ref.task_uuid]
        uuids: list[str] = []
        pages = self.dynamodb.get_paginator("query").paginate(
            TableName=self.table_name,
            IndexName=BY_SOURCE_INDEX,
            KeyConditionExpression="sourceId = :source",
            ExpressionAttributeValues={":source": {"S": ref.source_id}},
        )
        for page in pages:
            uuids.extend(item["pk"]["S"].removeprefix("TASK#") for item in page.get("Items", []))
        return uuids

    def refresh(self, refs: list[Ref], tally: Tally) -> Tally:
        """Add new tasks of the refs and re-read statuses that can still change."""
        for ref in refs:
            for uuid in self.task_uuids(ref):
                tally.statuses.setdefault(uuid, "")
        open_uuids = [uuid for uuid, status in tally.statuses.items() if status not in FINAL_STATUSES]
        tally.statuses.update(self.statuses(open_uuids))
        # A TaskRef whose task does not exist yet stays out of the tally (it counts in `expected`).
        for uuid in [u for u, s in tally.statuses.items() if not s]:
            del tally.statuses[uuid]
        return tally

    def statuses(self, task_uuids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(task_uuids), _BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": [task_key(uuid) for uuid in task_uuids[start : start + _BATCH_GET_LIMIT]],
                    "ProjectionExpression": "taskUUID, #s",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ConsistentRead": True,
                }
            }
            while request:
                answer = self.dynamodb.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    found[item["taskUUID"]["S"]] = item["status"]["S"]
                request = answer.get("UnprocessedKeys") or {}
        return found


def wait_settled(
    reader: StatusReader,
    refs: list[Ref],
    tally: Tally,
    *,
    timeout: float,
    on_poll: Callable[[Tally], None],
    poll_seconds: float = 0.5,
) -> bool:
    """Poll until every task is final. Without a known total, the count must hold for two polls
    (an SQS message's rows are written together, so a partial view cannot stay stable)."""
    deadline = time.monotonic() + timeout
    stable_polls = 0
    last_count = -1
    while True:
        reader.refresh(refs, tally)
        on_poll(tally)
        count = len(tally.statuses)
        stable_polls = stable_polls + 1 if count == last_count else 0
        last_count = count
        if tally.settled() and (tally.exact or stable_polls >= 1):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_seconds)
