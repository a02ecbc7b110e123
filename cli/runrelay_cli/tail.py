"""`runrelay tail`: the latest completions, read from the tasks table's DynamoDB stream.

No Scan and nothing extra on the write path: the table already streams NEW_AND_OLD_IMAGES (24 h kept).
A completion is a record whose new image is final and whose old image was not (or an INSERT of a final
task, e.g. REJECTED input). `latest` reads shards newest first and stops once it has enough;
`follow` then continues from exactly where `latest` stopped and picks up new shards as they open.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from runrelay.adapters.dynamodb.stream import table_change
from runrelay.domain.tasks import TaskBecameFinal
from runrelay_cli.errors import CliError

_EMPTY_PAGES_AT_END = 3  # an open shard may answer empty pages before its newest records
_SHARD_REFRESH_SECONDS = 10.0


def completion_of(record: dict[str, Any]) -> TaskBecameFinal | None:
    change = table_change(record)
    return change if isinstance(change, TaskBecameFinal) else None


@dataclass
class _Cursor:
    shard_id: str
    iterator: str | None
    empty_pages: int = 0


@dataclass
class CompletionStream:
    dynamodb: Any
    streams: Any
    table_name: str
    sleep: Callable[[float], None] = time.sleep
    _cursors: dict[str, _Cursor] = field(default_factory=dict)
    _seen_shards: set[str] = field(default_factory=set)
    _arn: str = ""

    def stream_arn(self) -> str:
        if not self._arn:
            table = self.dynamodb.describe_table(TableName=self.table_name)["Table"]
            arn = table.get("LatestStreamArn")
            if not arn or not table.get("StreamSpecification", {}).get("StreamEnabled", True):
                raise CliError(f"table {self.table_name} has no stream enabled: `tail` reads its stream")
            self._arn = arn
        return self._arn

    def _shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        request: dict[str, Any] = {"StreamArn": self.stream_arn()}
        while True:
            answer = self.streams.describe_stream(**request)["StreamDescription"]
            shards.extend(answer.get("Shards", []))
            last = answer.get("LastEvaluatedShardId")
            if not last:
                break
            request["ExclusiveStartShardId"] = last
        return sorted(shards, key=lambda s: int(s["SequenceNumberRange"]["StartingSequenceNumber"]))

    def _iterator(self, shard_id: str) -> str | None:
        answer = self.streams.get_shard_iterator(
            StreamArn=self.stream_arn(), ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )
        return answer.get("ShardIterator")

    def _read(self, cursor: _Cursor, *, to_end: bool) -> list[TaskBecameFinal]:
        """Records of one shard from its cursor: to the end of the data (to_end) or one page."""
        found: list[TaskBecameFinal] = []
        while cursor.iterator:
            answer = self.streams.get_records(ShardIterator=cursor.iterator, Limit=1000)
            cursor.iterator = answer.get("NextShardIterator")
            records = answer.get("Records", [])
            cursor.empty_pages = 0 if records else cursor.empty_pages + 1
            found.extend(c for c in map(completion_of, records) if c is not None)
            if not to_end or (not records and cursor.empty_pages >= _EMPTY_PAGES_AT_END):
                break
        return found

    def latest(self, count: int) -> list[TaskBecameFinal]:
        """The last `count` completions, oldest first; leaves cursors at the end of every open shard."""
        found: list[TaskBecameFinal] = []
        for shard in reversed(self._shards()):
            shard_id = shard["ShardId"]
            self._seen_shards.add(shard_id)
            is_open = "EndingSequenceNumber" not in shard["SequenceNumberRange"]
            if len(found) >= count and not is_open:
                continue  # older history is not needed; open shards still need a cursor for follow
            cursor = _Cursor(shard_id, self._iterator(shard_id))
            found.extend(self._read(cursor, to_end=True))
            if cursor.iterator:
                self._cursors[shard_id] = cursor
        found.sort(key=lambda c: int(c.sequence_number))
        return found[-count:] if count > 0 else []

    def follow(self, poll_seconds: float = 1.0) -> Iterator[TaskBecameFinal]:
        """Completions as they happen, after those `latest` returned (call `latest` first)."""
        refreshed = time.monotonic()
        while True:
            if time.monotonic() - refreshed >= _SHARD_REFRESH_SECONDS:
                refreshed = time.monotonic()
                for shard in self._shards():
                    if shard["ShardId"] not in self._seen_shards:
                        self._seen_shards.add(shard["ShardId"])
                        self._cursors[shard["ShardId"]] = _Cursor(
                            shard["ShardId"], self._iterator(shard["ShardId"])
                        )
            batch: list[TaskBecameFinal] = []
            for shard_id, cursor in list(self._cursors.items()):
                batch.extend(self._read(cursor, to_end=False))
                if cursor.iterator is None:
                    del self._cursors[shard_id]  # a closed shard, read to its end
            yield from sorted(batch, key=lambda c: int(c.sequence_number))
            if not batch:
                self.sleep(poll_seconds)
