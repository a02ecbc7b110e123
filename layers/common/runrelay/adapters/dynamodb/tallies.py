"""Tallies: one item per `domain.jobs.TALLY_LINES` lines of a source, shared by the task and job
repositories. They replace a per-task index entry and a per-task mark item with one small item per
hundred lines (bench/README.md, write_units).

Item: pk=`TALLY#<sourceId>#<n>`, sk=`TALLY`, for lines n*100 .. n*100+99:
- `lines` (number set): the lines that have a task row; the submitter adds them before it writes the
  rows, so an open row is never missing from its tally;
- `closed`: the lines whose current attempt is final and recorded; the results consumer adds them with
  their marks, a retry takes its lines out again;
- `marks`: every final attempt recorded (`FinalLine.mark`: line and attempt), so a redelivered stream
  record, or a late one of an earlier attempt, is recognised and counted nothing;
- `openShard`/`openSince` while a line is not closed: the sparse OpenTasks index, by shard and age,
  which the reconciler reads to find tasks whose webhook may have been lost;
- `sourceId`/`sourceSeq` (`-1 - n`): its entry in BySource, so a source's tallies can be listed, and from
  their `lines` its tasks (a task item is in BySource only if its taskUUID does not follow from its line).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from ...domain.jobs import TALLY_LINES, FinalLine
from .reads import batch_get
from .schema import LEAVE_OPEN_TASKS, TALLY_PREFIX, tally_entry_seq, tally_key
from .writes import is_condition_failure


def line_range(tally: int) -> tuple[int, int]:
    """The first and last line a tally covers."""
    return tally * TALLY_LINES, (tally + 1) * TALLY_LINES - 1


def source_and_tally(pk: str) -> tuple[str, int]:
    """The source and tally number of a tally's key (a source id may itself hold '#')."""
    source_id, number = pk.removeprefix(TALLY_PREFIX).rsplit("#", 1)
    return source_id, int(number)


def shard_of(source_id: str, tally: int, shards: int) -> str:
    digest = hashlib.blake2b(f"{source_id}#{tally}".encode(), digest_size=4).digest()
    return f"OPEN#{int.from_bytes(digest, 'big') % shards}"


def _numbers(values: Iterable[int]) -> dict[str, list[str]]:
    return {"NS": sorted({str(value) for value in values})}


# Both the submitter and a retry open a tally: in the OpenTasks index from the first open line on, its age
# kept from then (a tally already open stays where it is in the index).
_KEEP_OPEN = "openShard = if_not_exists(openShard, :shard), openSince = if_not_exists(openSince, :now)"


def _open_values(shard: str, now: float) -> dict[str, Any]:
    return {":shard": {"S": shard}, ":now": {"N": str(int(now))}}


def open_lines_action(
    table_name: str, source_id: str, tally: int, seqs: Iterable[int], *, shard: str, now: float, expires: int
) -> dict[str, Any]:
    """The submitter's write before it writes rows: their lines are in the tally, it is open, and it is
    listed in BySource (the same key each time: a write that does not change it writes no entry)."""
    return {
        "Update": {
            "TableName": table_name,
            "Key": tally_key(source_id, tally),
            # Its rows expire as late as the last one written: a tally is how they are found, so it
            # outlives them (`expires` is theirs).
            "UpdateExpression": f"ADD #lines :lines SET {_KEEP_OPEN}, "
            "expiresAt = :exp, sourceId = :source, sourceSeq = :entry",
            "ExpressionAttributeNames": {"#lines": "lines"},
            "ExpressionAttributeValues": {
                ":lines": _numbers(seqs),
                ":exp": {"N": str(expires)},
                ":source": {"S": source_id},
                ":entry": {"N": str(tally_entry_seq(tally))},
                **_open_values(shard, now),
            },
        }
    }


def reopen_lines_action(
    table_name: str, source_id: str, tally: int, seqs: Iterable[int], *, shard: str, now: float
) -> dict[str, Any]:
    """A retry's side of a tally: its lines open again."""
    return {
        "Update": {
            "TableName": table_name,
            "Key": tally_key(source_id, tally),
            "UpdateExpression": f"DELETE closed :lines SET {_KEEP_OPEN}",
            "ExpressionAttributeValues": {":lines": _numbers(seqs), **_open_values(shard, now)},
        }
    }


def record_action(
    table_name: str, source_id: str, tally: int, lines: Sequence[FinalLine], expires: int
) -> dict[str, Any]:
    """The results consumer's write: the lines' marks added, on the condition that none is there yet
    (so the same write may count them in their job), and the lines closed."""
    marks = {f":m{i}": {"N": str(line.mark)} for i, line in enumerate(lines)}
    return {
        "Update": {
            "TableName": table_name,
            "Key": tally_key(source_id, tally),
            "UpdateExpression": "ADD marks :marks, closed :closed "
            "SET expiresAt = if_not_exists(expiresAt, :exp)",
            # `contains` on a missing set is false: a new tally passes too. One NOT around the ORs keeps
            # a hundred marks at 200 operators, within DynamoDB's 300 per expression.
            "ConditionExpression": "NOT (" + " OR ".join(f"contains(marks, {name})" for name in marks) + ")",
            "ExpressionAttributeValues": {
                ":marks": _numbers(line.mark for line in lines),
                ":closed": _numbers(line.seq for line in lines),
                ":exp": {"N": str(expires)},
                **marks,
            },
        }
    }


class TallyState:
    """A tally as read: its lines, the closed ones, the marks."""

    def __init__(self, item: Mapping[str, Any] | None) -> None:
        item = item or {}
        self.lines = _set(item, "lines")
        self.closed = _set(item, "closed")
        self.marks = _set(item, "marks")
        self.open = "openShard" in item

    @property
    def unclosed(self) -> set[int]:
        return self.lines - self.closed


def _set(item: Mapping[str, Any], name: str) -> set[int]:
    return {int(value) for value in item.get(name, {}).get("NS", [])}


def read_tallies(
    dynamodb: Any, table_name: str, tallies: Iterable[tuple[str, int]], *, consistent: bool = True
) -> dict[tuple[str, int], TallyState]:
    """The tallies named that exist."""
    keys = [tally_key(source_id, tally) for source_id, tally in sorted(set(tallies))]
    return {
        source_and_tally(item["pk"]["S"]): TallyState(item)
        for item in batch_get(dynamodb, table_name, keys, consistent=consistent)
    }


def close_if_complete(dynamodb: Any, table_name: str, source_id: str, tally: int) -> bool:
    """Take a tally out of the OpenTasks index once every line it has is closed. Conditioned on the sets
    as read, so a line added or reopened meanwhile keeps it open. Whether it closed it."""
    state = read_tallies(dynamodb, table_name, [(source_id, tally)]).get((source_id, tally))
    if state is None or not state.open or state.unclosed:
        return False
    try:
        dynamodb.update_item(
            TableName=table_name,
            Key=tally_key(source_id, tally),
            UpdateExpression=LEAVE_OPEN_TASKS,
            ConditionExpression="size(#lines) = :lines AND size(closed) = :closed",
            ExpressionAttributeNames={"#lines": "lines"},
            ExpressionAttributeValues={
                ":lines": {"N": str(len(state.lines))},
                ":closed": {"N": str(len(state.closed))},
            },
        )
    except ClientError as error:
        if is_condition_failure(error):
            return False
        raise
    return True
