"""The job repository on DynamoDB. JOB records: one per S3 input file, counting its tasks so that
"all final" is known without a Scan.

Item: pk=`JOB#<sourceId>`, sk=`JOB` in the tasks table. Two writers, neither ever overwriting the other:
- the submitter sets `expected` (the file's task count) once it has written every task row of the
  file; only the invocation that reaches the end of the file knows the count (continuations!);
- the results consumer adds 1 to `finals` for each task that became final, in one transaction with a
  mark item `FINAL#<taskUUID>` that must not exist yet, so a task is counted once however often its
  stream record comes (the same mark, for every task, says its TaskCompleted event went out).

`finals` only grows and `expected` is set once, so exactly one write moves the item from "incomplete"
to "complete" (`finals >= expected`): its stream record is what triggers the results file and the
JobCompleted event. `resultsWrittenAt` / `announcedAt` record that those side effects are done.

A cancelled source (a file or an SQS message) has an item pk=`CANCEL#<sourceId>`, sk=`CANCEL`, written
once (the first request wins) and read by the submitter before each chunk.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from ...aws_clients import client
from ...domain.budgets import Settlement
from ...domain.cancellations import Cancellation
from ...domain.jobs import JobProgress, TotalMismatch, has_job
from .budgets import settlement_actions
from .codec import from_dynamo, to_dynamo
from .schema import cancellation_key, final_mark_key, job_key, job_progress
from .writes import is_condition_failure, transact, write_one


class DynamoJobRepository:
    def __init__(self, table_name: str, *, retention_days: int = 30, dynamodb: Any = None) -> None:
        self.table_name = table_name
        self.retention_seconds = retention_days * 86_400
        self.dynamodb = dynamodb if dynamodb is not None else client("dynamodb")

    def record_total(self, source_id: str, total: int, *, bucket: str, key: str, etag: str) -> None:
        """Set the file's task count, after every one of its task rows exists. Idempotent."""
        now = time.time()
        try:
            self.dynamodb.update_item(
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
        except ClientError as error:
            if is_condition_failure(error):
                raise TotalMismatch(f"{source_id}: {total} tasks now, another count before") from None
            raise

    def final_recorded(self, task_uuid: str, attempt: int = 0) -> bool:
        """True once `record_final` ran for this attempt of the task (a redelivered stream record must
        skip it)."""
        answer = self.dynamodb.get_item(
            TableName=self.table_name, Key=final_mark_key(task_uuid, attempt), ConsistentRead=True
        )
        return "Item" in answer

    def record_final(
        self, task_uuid: str, source_id: str, attempt: int = 0, settlement: Settlement | None = None
    ) -> bool:
        """Mark a final task handled and, for an S3 input, add it to its job's `finals` (and settle its
        budgets): all in one transaction, conditioned on the mark being new. False if it was recorded
        before.

        The mark is its own small item (not a flag on the task item): the write then costs the same
        whatever the size of the task's results, and makes no second stream record for the task.
        """
        now = time.time()
        expires = {"N": str(int(now + self.retention_seconds))}
        mark = {
            "Put": {
                "TableName": self.table_name,
                "Item": {
                    **final_mark_key(task_uuid, attempt),
                    "sourceRef": {"S": source_id},
                    "expiresAt": expires,
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        # A task sent under budgets replaces its estimate by its cost there, counted with the same mark.
        settled = settlement_actions(self.table_name, settlement) if settlement else []
        if not has_job(source_id):
            return self._transact([mark, *settled])
        count = {
            "Update": {
                "TableName": self.table_name,
                "Key": job_key(source_id),
                "UpdateExpression": "ADD finals :one SET expiresAt = if_not_exists(expiresAt, :exp), "
                "updatedAt = :now",
                "ExpressionAttributeValues": {
                    ":one": {"N": "1"},
                    ":exp": expires,
                    ":now": {"N": str(round(now, 3))},
                },
            }
        }
        return self._transact([mark, count, *settled])

    def _transact(self, actions: list[dict[str, Any]]) -> bool:
        if len(actions) == 1:  # a plain conditional put: half the price of a transaction
            written, _ = write_one(self.dynamodb, actions[0])
            return written
        return not transact(self.dynamodb, actions)

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
        before every chunk, and a chunk more or less sent during a cancel is within what cancel promises."""
        item = self.dynamodb.get_item(
            TableName=self.table_name, Key=cancellation_key(source_id), ConsistentRead=consistent
        ).get("Item")
        return None if item is None else _cancellation(source_id, item)


def _cancellation(source_id: str, item: Mapping[str, Any]) -> Cancellation:
    plain = from_dynamo(item)
    return Cancellation(source_id, str(plain["requestedBy"]), float(plain["requestedAt"]))
