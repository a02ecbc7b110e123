"""Cheap, repeatable status reads for `status` and `wait`: a source's taskUUIDs, then `status` alone.

`DynamoTaskRepository.tasks_of_source` reads whole items (results included); polling that every half
second would cost a full read per task per poll. Here a poll lists the source's tasks (its BySource
entries and its tallies' lines) and reads only the status of tasks not yet final (a final status never
changes).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runrelay.adapters.dynamodb.inspection import TableInspector
from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.domain.tasks import FINAL_STATUSES
from runrelay_cli.ids import Ref, TaskRef


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
        self.tasks = DynamoTaskRepository(table_name, dynamodb=dynamodb)
        self.inspector = TableInspector(table_name, dynamodb=dynamodb)

    def task_uuids(self, ref: Ref) -> list[str]:
        if isinstance(ref, TaskRef):
            return [ref.task_uuid]
        return self.tasks.task_uuids_of_source(ref.source_id)

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
        return self.inspector.statuses(task_uuids)


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
