"""JOB records: one per S3 input file, counting its tasks so that "all final" is known without a Scan.

Item: pk=`JOB#<sourceId>`, sk=`JOB` in the tasks table. Two writers, neither ever overwriting the other:
- the submitter sets `expected` (the file's task count) once it has written every task row of the
  file; only the invocation that reaches the end of the file knows the count (continuations!);
- the results consumer adds 1 to `finals` for each task that became final, in one transaction with a
  mark item `FINAL#<taskUUID>` that must not exist yet, so a task is counted once however often its
  stream record comes (the same mark, for every task, says its TaskCompleted event went out).

`finals` only grows and `expected` is set once, so exactly one write moves the item from "incomplete"
to "complete" (`finals >= expected`): its stream record is what triggers the results file and the
JobCompleted event. `resultsWrittenAt` / `announcedAt` record that those side effects are done.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .aws_clients import client
from .task_store import from_dynamo, to_dynamo

JOB_PREFIX = "JOB#"
JOB_SK = "JOB"
FINAL_PREFIX = "FINAL#"
FINAL_SK = "FINAL"
_TRANSACTION_ATTEMPTS = 10


@dataclass(frozen=True)
class JobProgress:
    source_id: str
    expected: int | None
    finals: int
    bucket: str | None = None
    key: str | None = None
    etag: str | None = None
    results_location: str | None = None
    results_counts: Mapping[str, int] | None = None
    announced: bool = False

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.finals >= self.expected

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> JobProgress:
        """From a plain item (`from_dynamo`) or a stream image, both keyed as stored."""
        expected = item.get("expected")
        return cls(
            source_id=str(item["pk"]).removeprefix(JOB_PREFIX),
            expected=int(expected) if expected is not None else None,
            finals=int(item.get("finals", 0)),
            bucket=item.get("inputBucket"),
            key=item.get("inputKey"),
            etag=item.get("inputEtag"),
            results_location=item.get("resultsLocation"),
            results_counts=item.get("resultsCounts"),
            announced="announcedAt" in item,
        )


class TotalMismatch(RuntimeError):
    """The file's task count differs from the one recorded before: the same bytes gave other tasks."""


def job_key(source_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"{JOB_PREFIX}{source_id}"}, "sk": {"S": JOB_SK}}


def final_mark_key(task_uuid: str) -> dict[str, Any]:
    return {"pk": {"S": f"{FINAL_PREFIX}{task_uuid}"}, "sk": {"S": FINAL_SK}}


def is_job_item(keys: Mapping[str, Any]) -> bool:
    """True for the DynamoDB-typed keys of a JOB item (as in a stream record)."""
    return str(keys.get("pk", {}).get("S", "")).startswith(JOB_PREFIX)


def has_job(source_id: str) -> bool:
    """Only S3 input files have JOB records (and results files); SQS messages do not."""
    return source_id.startswith("s3://")


class JobStore:
    def __init__(self, table_name: str, *, retention_days: int = 30, dynamodb: Any = None) -> None:
        self.table_name = table_name
        self.retention_seconds = retention_days * 86_400
        self._dynamodb = dynamodb

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = client("dynamodb")
        return self._dynamodb

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
            if _code(error) == "ConditionalCheckFailedException":
                raise TotalMismatch(f"{source_id}: {total} tasks now, another count before") from None
            raise

    def final_recorded(self, task_uuid: str) -> bool:
        """True once `record_final` ran for this task (a redelivered stream record must skip it)."""
        answer = self.dynamodb.get_item(
            TableName=self.table_name, Key=final_mark_key(task_uuid), ConsistentRead=True
        )
        return "Item" in answer

    def record_final(self, task_uuid: str, source_id: str) -> bool:
        """Mark a final task handled and, for an S3 input, add it to its job's `finals`: both in one
        transaction, conditioned on the mark being new. False if it was recorded before.

        The mark is its own small item (not a flag on the task item): the write then costs the same
        whatever the size of the task's results, and makes no second stream record for the task.
        """
        now = time.time()
        expires = {"N": str(int(now + self.retention_seconds))}
        mark = {
            "Put": {
                "TableName": self.table_name,
                "Item": {**final_mark_key(task_uuid), "sourceRef": {"S": source_id}, "expiresAt": expires},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        if not has_job(source_id):
            return self._transact([mark])
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
        return self._transact([mark, count])

    def _transact(self, items: list[dict[str, Any]]) -> bool:
        if len(items) == 1:  # a plain conditional put: half the price of a transaction
            put = items[0]["Put"]
            try:
                self.dynamodb.put_item(**put)
            except ClientError as error:
                if _code(error) == "ConditionalCheckFailedException":
                    return False
                raise
            return True
        for attempt in range(_TRANSACTION_ATTEMPTS):
            try:
                self.dynamodb.transact_write_items(TransactItems=items)
            except ClientError as error:
                if _code(error) != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return False
                if attempt + 1 == _TRANSACTION_ATTEMPTS:
                    raise
                time.sleep(0.02 * (attempt + 1))  # a concurrent write to the JOB item: try again
                continue
            return True
        raise AssertionError("unreachable")

    def get(self, source_id: str) -> JobProgress | None:
        answer = self.dynamodb.get_item(
            TableName=self.table_name, Key=job_key(source_id), ConsistentRead=True
        )
        item = answer.get("Item")
        return JobProgress.from_item(from_dynamo(item)) if item else None

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
            if _code(error) != "ConditionalCheckFailedException":
                raise


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
