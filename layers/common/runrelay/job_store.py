"""JOB records: one per S3 input file, counting its tasks so that "all final" is known without a Scan.

Item: pk=`JOB#<sourceId>`, sk=`JOB` in the tasks table. Two writers, neither ever overwriting the other:
- the submitter sets `expected` (the file's task count) once it has written every task row of the
  file; only the invocation that reaches the end of the file knows the count (continuations!);
- the results consumer adds 1 to `finals` for each task that became final, in one transaction with a
  `jobCounted` flag on the task item, so a task is counted once however often its stream record comes.

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
from .task_store import FINAL_STATUSES, from_dynamo, task_key, to_dynamo

JOB_PREFIX = "JOB#"
JOB_SK = "JOB"
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

    def count_final(self, task_uuid: str, source_id: str) -> bool:
        """Add a final task to its job's `finals`, once. False if it was counted before."""
        now = time.time()
        final_values = {f":final{i}": {"S": status.value} for i, status in enumerate(sorted(FINAL_STATUSES))}
        transaction = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": task_key(task_uuid),
                    "UpdateExpression": "SET jobCounted = :true",
                    "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(jobCounted) "
                    f"AND #s IN ({', '.join(final_values)})",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":true": {"BOOL": True}, **final_values},
                }
            },
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": job_key(source_id),
                    "UpdateExpression": "ADD finals :one "
                    "SET expiresAt = if_not_exists(expiresAt, :exp), updatedAt = :now",
                    "ExpressionAttributeValues": {
                        ":one": {"N": "1"},
                        ":exp": {"N": str(int(now + self.retention_seconds))},
                        ":now": {"N": str(round(now, 3))},
                    },
                }
            },
        ]
        for attempt in range(_TRANSACTION_ATTEMPTS):
            try:
                self.dynamodb.transact_write_items(TransactItems=transaction)
            except ClientError as error:
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                if _code(error) != "TransactionCanceledException":
                    raise
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return False
                if attempt + 1 == _TRANSACTION_ATTEMPTS:
                    raise
                time.sleep(0.02 * (attempt + 1))  # a concurrent write to the task: try again
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
