"""Reads for operators' tools (the CLI, the demo, chaos): cheap status polls and whole-table checks.

The functions never call these: their roles grant no Scan. The CLI's polls read only `status`, so
polling every half second costs a small read per open task, not the task's results.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ...domain.jobs import FinalLine
from ...domain.tasks import TaskRecord
from .codec import from_dynamo
from .schema import OPEN_TASKS_INDEX, TASK_PREFIX, TASK_SK, tally_key, task_key, task_record
from .tallies import read_tallies, source_and_tally

_BATCH_GET_LIMIT = 100


class TableInspector:
    def __init__(self, table_name: str, *, dynamodb: Any) -> None:
        self.table_name = table_name
        self.dynamodb = dynamodb

    def statuses(self, task_uuids: list[str]) -> dict[str, str]:
        """The status of each task named that exists (consistent reads of that attribute alone)."""
        found: dict[str, str] = {}
        for batch in self._batches([task_key(uuid) for uuid in task_uuids], "taskUUID, #s"):
            for item in batch:
                found[item["taskUUID"]["S"]] = item["status"]["S"]
        return found

    def final_recorded(self, task_uuids: list[str]) -> set[str]:
        """The tasks among these whose current attempt is recorded final in its tally (TaskCompleted
        sent, counted in its job)."""
        lines: list[FinalLine] = []
        for batch in self._batches(
            [task_key(uuid) for uuid in task_uuids], "taskUUID, sourceId, sourceSeq, attempt"
        ):
            for item in batch:
                plain = from_dynamo(item)
                lines.append(
                    FinalLine(
                        str(plain["taskUUID"]),
                        str(plain["sourceId"]),
                        int(plain["sourceSeq"]),
                        int(plain.get("attempt", 0)),
                    )
                )
        tallies = {(line.source_id, line.tally) for line in lines}
        marks: dict[str, set[int]] = {}
        for batch in self._batches([tally_key(source, tally) for source, tally in tallies], None):
            for item in batch:
                marks[str(item["pk"]["S"])] = {int(mark) for mark in item.get("marks", {}).get("NS", [])}
        return {
            line.task_uuid
            for line in lines
            if line.mark in marks.get(tally_key(line.source_id, line.tally)["pk"]["S"], ())
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
        legacy = sum(key.startswith(TASK_PREFIX) for key in keys)  # rows written before tallies
        named = [source_and_tally(key) for key in keys if not key.startswith(TASK_PREFIX)]
        tallies = read_tallies(self.dynamodb, self.table_name, named)
        return legacy + sum(len(state.unclosed) for state in tallies.values())

    def _batches(self, keys: list[dict[str, Any]], projection: str | None) -> Iterable[list[dict[str, Any]]]:
        for start in range(0, len(keys), _BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self.table_name: {"Keys": keys[start : start + _BATCH_GET_LIMIT], "ConsistentRead": True}
            }
            if projection:
                request[self.table_name]["ProjectionExpression"] = projection
                if "#s" in projection:
                    request[self.table_name]["ExpressionAttributeNames"] = {"#s": "status"}
            while request:
                answer = self.dynamodb.batch_get_item(RequestItems=request)
                yield answer.get("Responses", {}).get(self.table_name, [])
                request = answer.get("UnprocessedKeys") or {}
