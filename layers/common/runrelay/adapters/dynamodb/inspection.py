"""Reads for operators' tools (the CLI, the demo, chaos): cheap status polls and whole-table checks.

The functions never call these: their roles grant no Scan. The CLI's polls read only `status`, so
polling every half second costs a small read per open task, not the task's results.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...domain.jobs import FinalLine
from ...domain.tasks import OPEN_STATUSES, TaskRecord
from .codec import from_dynamo
from .reads import batch_get
from .schema import (
    OPEN_TASKS_INDEX,
    SOURCE_LINE,
    SOURCE_SEQ,
    TASK_PREFIX,
    TASK_SK,
    line_of,
    task_key,
    task_record,
)
from .tallies import read_tallies, source_and_tally

_LINE_OF_TASK = f"taskUUID, sourceId, {SOURCE_LINE}, {SOURCE_SEQ}, attempt"
_OPEN = {status.value for status in OPEN_STATUSES}


class TableInspector:
    def __init__(self, table_name: str, *, dynamodb: Any) -> None:
        self.table_name = table_name
        self.dynamodb = dynamodb

    def statuses(self, task_uuids: list[str]) -> dict[str, str]:
        """The status of each task named that exists (consistent reads of that attribute alone)."""
        found: dict[str, str] = {}
        for item in self._read(task_uuids, "taskUUID, #s"):
            found[item["taskUUID"]["S"]] = item["status"]["S"]
        return found

    def final_recorded(self, task_uuids: list[str]) -> set[str]:
        """The tasks among these whose current attempt is recorded final in its tally (TaskCompleted
        sent, counted in its job)."""
        lines = [
            FinalLine(
                str(plain["taskUUID"]),
                str(plain["sourceId"]),
                line_of(plain),
                int(plain.get("attempt", 0)),
            )
            for plain in map(from_dynamo, self._read(task_uuids, _LINE_OF_TASK))
        ]
        tallies = read_tallies(
            self.dynamodb, self.table_name, {(line.source_id, line.tally) for line in lines}
        )
        return {
            line.task_uuid
            for line in lines
            if (line.source_id, line.tally) in tallies
            and line.mark in tallies[(line.source_id, line.tally)].marks
        }

    def all_tasks(self) -> Iterator[TaskRecord]:
        """Every task of the table (a Scan: for test tools on small tables, never for the functions)."""
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.table_name,
            ConsistentRead=True,
            FilterExpression="sk = :sk",
            ExpressionAttributeValues={":sk": {"S": TASK_SK}},
        )
        for page in pages:
            for item in page.get("Items", []):
                yield task_record(from_dynamo(item))

    def count_tasks(self, status: str | None = None) -> int:
        """Task rows (of one status), counted by DynamoDB without sending the items (a Scan)."""
        condition, values = "sk = :sk", {":sk": {"S": TASK_SK}}
        if status is not None:
            condition += " AND #status = :status"
            values[":status"] = {"S": status}
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.table_name,
            Select="COUNT",
            FilterExpression=condition,
            ExpressionAttributeValues=values,
            **({"ExpressionAttributeNames": {"#status": "status"}} if status else {}),
        )
        return sum(int(page["Count"]) for page in pages)

    def count_open(self) -> int:
        """Tasks still open: the lines not closed in the open tallies (the sparse OpenTasks index)."""
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.table_name, IndexName=OPEN_TASKS_INDEX, ProjectionExpression="pk"
        )
        keys = [str(item["pk"]["S"]) for page in pages for item in page.get("Items", [])]
        # Rows written before tallies are entries themselves; a usual completion leaves them there until
        # the reconciler next lists them, so their status says whether they are open.
        legacy = [key.removeprefix(TASK_PREFIX) for key in keys if key.startswith(TASK_PREFIX)]
        legacy_open = sum(row["status"]["S"] in _OPEN for row in self._read(legacy, "pk, #s"))
        named = [source_and_tally(key) for key in keys if not key.startswith(TASK_PREFIX)]
        tallies = read_tallies(self.dynamodb, self.table_name, named)
        return legacy_open + sum(len(state.unclosed) for state in tallies.values())

    def _read(self, task_uuids: list[str], projection: str) -> Iterator[dict[str, Any]]:
        """Task items, consistently, only the attributes named (`#s` is `status`)."""
        names = {"#s": "status"} if "#s" in projection else None
        keys = [task_key(uuid) for uuid in task_uuids]
        return batch_get(self.dynamodb, self.table_name, keys, projection=projection, names=names)
