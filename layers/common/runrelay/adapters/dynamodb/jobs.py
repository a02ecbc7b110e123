"""The job repository on DynamoDB. JOB records: one per S3 input file, counting its tasks so that
"all final" is known without a Scan.

Item: pk=`JOB#<sourceId>`, sk=`JOB` in the tasks table. Two writers, neither ever overwriting the other:
- the submitter sets `expected` (the file's task count) once it has written every task row of the
  file; only the invocation that reaches the end of the file knows the count (continuations!);
- the results consumer adds to `finals` the tasks of a stream batch that became final, in one
  transaction with the file's tallies involved (`tallies.py`: 100 lines of a source each), each tally
  adding its lines' marks on the condition that none is there yet, so a task is counted once however
  often its stream record comes (the same mark says its TaskCompleted event went out). One job write per
  file per stream batch, where a mark item per task once cost a transactional put and a job update
  each, and one job write per tally later did.

`finals` only grows and `expected` is set once, so exactly one write moves the item from "incomplete"
to "complete" (`finals >= expected`): its stream record is what triggers the results file and the
JobCompleted event. `resultsWrittenAt` / `announcedAt` record that those side effects are done.

A cancelled source (a file or an SQS message) has an item pk=`CANCEL#<sourceId>`, sk=`CANCEL`, written
once (the first request wins) and read by the submitter before each chunk.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from ...aws_clients import client
from ...domain.cancellations import Cancellation
from ...domain.jobs import TALLY_LINES, FinalLine, JobProgress, TotalMismatch, has_job
from .budgets import settlement_actions
from .codec import from_dynamo, to_dynamo
from .schema import cancellation_key, job_key, job_progress
from .tallies import TallyState, close_if_complete, read_tallies, record_action
from .writes import is_condition_failure, patiently, transact, write_one

_TALLY_RETRIES = 20
# Tallies of one source in one transaction: with their job and a few budgets, well within DynamoDB's 100
# actions. One job write per batch of a file instead of one per tally: the JOB item is a single partition
# (docs/capacity.md).
_TALLIES_PER_WRITE = 32


class DynamoJobRepository:
    def __init__(self, table_name: str, *, retention_days: int = 30, dynamodb: Any = None) -> None:
        self.table_name = table_name
        self.retention_seconds = retention_days * 86_400
        self.dynamodb = dynamodb if dynamodb is not None else client("dynamodb")

    def record_total(self, source_id: str, total: int, *, bucket: str, key: str, etag: str) -> None:
        """Set the file's task count, after every one of its task rows exists. Idempotent."""
        now = time.time()
        try:
            patiently(
                lambda: self.dynamodb.update_item(
                    TableName=self.table_name,
                    Key=job_key(source_id),
                    UpdateExpression="SET expected = :n, inputBucket = :b, inputKey = :k, inputEtag = :e, "
                    "expiresAt = if_not_exists(expiresAt, :exp), updatedAt = :now",
                    ConditionExpression="attribute_not_exists(expected) OR expected = :n",
                    ExpressionAttributeValues={
                        ":n": {"N": str(total)},
                        ":b": {"S": bucket},
                        ":k": {"S": key},
                        ":e": {"S": etag},
                        ":exp": {"N": str(int(now + self.retention_seconds))},
                        ":now": {"N": str(round(now, 3))},
                    },
                )
            )
        except ClientError as error:
            if is_condition_failure(error):
                raise TotalMismatch(f"{source_id}: {total} tasks now, another count before") from None
            raise

    def unrecorded(self, lines: Sequence[FinalLine]) -> list[FinalLine]:
        """The lines (in order) that `record_finals` has not recorded yet: one strongly consistent read
        per tally involved, so a redelivered stream record sends no event again."""
        tallies = read_tallies(
            self.dynamodb, self.table_name, {(line.source_id, line.tally) for line in lines}
        )
        return [
            line
            for line in lines
            if (line.source_id, line.tally) not in tallies
            or line.mark not in tallies[(line.source_id, line.tally)].marks
        ]

    def record_finals(self, lines: Sequence[FinalLine]) -> list[FinalLine]:
        """Record each line once: its mark added to its tally, counted in its file's job, its budgets
        settled. The tallies of one source are written together, up to `_TALLIES_PER_WRITE` in one
        transaction with one job update (a single write when there is only the tally to change); a tally
        whose lines are all closed then leaves the OpenTasks index. Returns the lines this call
        recorded; the others were recorded before."""
        by_source: dict[str, dict[int, dict[int, FinalLine]]] = {}
        for line in lines:
            by_source.setdefault(line.source_id, {}).setdefault(line.tally, {}).setdefault(line.mark, line)
        recorded: list[FinalLine] = []
        for source_id, tallies in by_source.items():
            for group in _write_groups(tallies):
                recorded += self._record_tallies(source_id, group)
            for tally in tallies:
                close_if_complete(self.dynamodb, self.table_name, source_id, tally)
        return recorded

    def _record_tallies(self, source_id: str, tallies: dict[int, list[FinalLine]]) -> list[FinalLine]:
        for _ in range(_TALLY_RETRIES):
            tallies = {tally: lines for tally, lines in tallies.items() if lines}
            if not tallies:
                return []
            actions = self._tally_actions(source_id, tallies)
            if len(actions) == 1:
                written, _ = write_one(self.dynamodb, actions[0])
            else:
                written = not transact(self.dynamodb, actions)
            if written:
                return [line for lines in tallies.values() for line in lines]
            # Some were recorded meanwhile (a redelivery, or another batch): record only the others.
            states = read_tallies(self.dynamodb, self.table_name, [(source_id, tally) for tally in tallies])
            tallies = {
                tally: [line for line in lines if line.mark not in _marks(states.get((source_id, tally)))]
                for tally, lines in tallies.items()
            }
        raise RuntimeError(f"could not record the finals of {source_id}: too much contention")

    def _tally_actions(self, source_id: str, tallies: dict[int, list[FinalLine]]) -> list[dict[str, Any]]:
        now = time.time()
        expires = int(now + self.retention_seconds)
        actions = [
            record_action(self.table_name, source_id, tally, lines, expires)
            for tally, lines in tallies.items()
        ]
        lines = [line for tally_lines in tallies.values() for line in tally_lines]
        if has_job(source_id):
            actions.append(
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": job_key(source_id),
                        "UpdateExpression": "ADD finals :count "
                        "SET expiresAt = if_not_exists(expiresAt, :exp), updatedAt = :now",
                        "ExpressionAttributeValues": {
                            ":count": {"N": str(len(lines))},
                            ":exp": {"N": str(expires)},
                            ":now": {"N": str(round(now, 3))},
                        },
                    }
                }
            )
        # Tasks sent under budgets replace their estimates by their costs, counted with the same marks.
        settlements = [line.settlement for line in lines if line.settlement is not None]
        actions += settlement_actions(self.table_name, settlements)
        return actions

    def get(self, source_id: str) -> JobProgress | None:
        answer = self.dynamodb.get_item(
            TableName=self.table_name, Key=job_key(source_id), ConsistentRead=True
        )
        item = answer.get("Item")
        return job_progress(from_dynamo(item)) if item else None

    def mark_results_written(self, source_id: str, location: str, counts: Mapping[str, int]) -> None:
        self._set_once(
            source_id,
            "resultsWrittenAt",
            {"resultsLocation": {"S": location}, "resultsCounts": to_dynamo(dict(counts))},
        )

    def mark_announced(self, source_id: str) -> None:
        self._set_once(source_id, "announcedAt", {})

    def _set_once(self, source_id: str, stamp: str, extra: Mapping[str, Any]) -> None:
        names = {"#stamp": stamp, **{f"#x{i}": name for i, name in enumerate(extra)}}
        values: dict[str, Any] = {":now": {"N": str(round(time.time(), 3))}}
        values.update({f":x{i}": value for i, value in enumerate(extra.values())})
        assignments = ["#stamp = :now", *(f"#x{i} = :x{i}" for i in range(len(extra)))]
        try:
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key=job_key(source_id),
                UpdateExpression="SET " + ", ".join(assignments),
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#stamp)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise

    def release_round(self, source_id: str, retry_round: int) -> None:
        """End the hold of a retry round once its tasks are reopened and sent: from here the job completes
        (results file, JobCompleted) when its retried tasks are final again. Idempotent."""
        try:
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key=job_key(source_id),
                UpdateExpression="REMOVE retryHeld SET updatedAt = :now",
                ConditionExpression="retryHeld = :held AND retryRound = :round",
                ExpressionAttributeValues={
                    ":held": {"BOOL": True},
                    ":round": {"N": str(retry_round)},
                    ":now": {"N": str(round(time.time(), 3))},
                },
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise

    def cancel_source(self, source_id: str, requested_by: str, requested_at: float) -> Cancellation:
        """Record the source's cancellation; a second request leaves the first in place. The one kept."""
        try:
            self.dynamodb.put_item(
                TableName=self.table_name,
                Item={
                    **cancellation_key(source_id),
                    "sourceId": {"S": source_id},
                    "requestedBy": {"S": requested_by},
                    "requestedAt": {"N": str(round(requested_at, 3))},
                    "expiresAt": {"N": str(int(requested_at + self.retention_seconds))},
                },
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            return _cancellation(source_id, error.response["Item"])
        return Cancellation(source_id, requested_by, round(requested_at, 3))

    def cancellation(self, source_id: str, *, consistent: bool = False) -> Cancellation | None:
        """The source's cancellation, if any. Eventually consistent by default: the submitter reads it
        before every chunk, and a chunk more or less sent during a cancel is within what cancel promises.
        Read patiently (`writes.patiently`): a record must not fail on this read alone while botocore's
        retry quota is spent."""
        item = patiently(
            lambda: self.dynamodb.get_item(
                TableName=self.table_name, Key=cancellation_key(source_id), ConsistentRead=consistent
            )
        ).get("Item")
        return None if item is None else _cancellation(source_id, item)


def _cancellation(source_id: str, item: Mapping[str, Any]) -> Cancellation:
    plain = from_dynamo(item)
    return Cancellation(source_id, str(plain["requestedBy"]), float(plain["requestedAt"]))


def _marks(state: TallyState | None) -> set[int]:
    return state.marks if state is not None else set()


def _write_groups(tallies: Mapping[int, Mapping[int, FinalLine]]) -> list[dict[int, list[FinalLine]]]:
    """The writes that record these tallies' lines: up to `_TALLIES_PER_WRITE` tallies each, and a tally
    at most once per write (DynamoDB's transactions change an item once). A tally has more than
    `TALLY_LINES` marks only when one line has several attempts; the rest go in later writes."""
    rounds: list[dict[int, list[FinalLine]]] = []
    for tally, by_mark in tallies.items():
        marks = list(by_mark.values())
        for number, start in enumerate(range(0, len(marks), TALLY_LINES)):
            if number == len(rounds):
                rounds.append({})
            rounds[number][tally] = marks[start : start + TALLY_LINES]
    groups = []
    for chunk in rounds:
        names = list(chunk)
        for start in range(0, len(names), _TALLIES_PER_WRITE):
            groups.append({tally: chunk[tally] for tally in names[start : start + _TALLIES_PER_WRITE]})
    return groups
