"""The tasks table: one item per task, its results inside it, every transition a conditional write.

Item: pk=`TASK#<taskUUID>`, sk=`TASK`. Results live in the `results` map under a content-derived id,
so a repeated webhook can never store a result twice, and `resultCount` doubles as an optimistic-lock
version: two results of one task arriving at once cannot overwrite each other. Open tasks carry
`openShard`/`openSince` (the sparse `OpenTasks` index the reconciler reads); final tasks drop them.
`soleResultDue` marks the common state a webhook expects (open, one result wanted, none stored yet), so
the usual completion is conditioned on one attribute; any stored result or final status removes it.
Texts too large for DynamoDB's 400 KB item limit go to S3 with a pointer in the item.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from .aws_clients import client

TASK_SK = "TASK"
OPEN_TASKS_INDEX = "OpenTasks"
BY_SOURCE_INDEX = "BySource"
# Results larger than this (as JSON) are stored in S3; four of them still fit well under 400 KB.
INLINE_RESULT_LIMIT = 48 * 1024
_OPTIMISTIC_RETRIES = 20
# TransactWriteItems takes at most 100 actions; one transaction is one round trip instead of 100.
TRANSACTION_LIMIT = 100
_TRANSACTION_RETRIES = 6
# DynamoDB nests documents at most 32 levels; a stored value sits a few levels down (results.<id>.…).
MAX_STORED_DEPTH = 24

_WRITTEN = object()  # marks an action whose condition held
# Leaves openSince (the OpenTasks sort key) as the PENDING write set it: moving it would rewrite the
# index entry (two more index writes per task) to shift a 15-minute overdue clock by milliseconds.
_MARK_SUBMITTED = "SET #s = :to, submittedAt = :now, updatedAt = :now"

_INFINITY = float("inf")
_INT_LIMIT = 10**38  # integers below it in magnitude fit DynamoDB's 38 digits as they are
_deserializer = TypeDeserializer()


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"


FINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.REJECTED})
OPEN_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.SUBMITTED})
# Present only while a task is open, wants one result and has none. Checking it alone is the cheapest
# condition for the usual completion: the equivalent `resultCount = 0 AND status IN (...) AND
# numberResults = 1` made the UpdateItem ~6% slower on DynamoDB Local (bench/README.md).
SOLE_RESULT_DUE = "soleResultDue"
_CLOSE = f"REMOVE openShard, openSince, {SOLE_RESULT_DUE}"  # what a task loses when it becomes final


class StoreOutcome(StrEnum):
    STORED = "stored"  # a new result, task still waiting for more
    COMPLETED = "completed"  # a new result that completed the task
    DUPLICATE = "duplicate"  # this result was stored before
    FAILED = "failed"  # the task is now FAILED
    IGNORED = "ignored"  # the task was already final; nothing changed


@dataclass(frozen=True)
class NewTask:
    task_uuid: str
    idempotency_key: str
    source_id: str
    source_seq: int
    number_results: int = 1
    caller_id: str | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass
class TaskView:
    """A task as read back, results resolved (S3 pointers followed)."""

    task_uuid: str
    status: str
    item: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def error(self) -> dict[str, Any] | None:
        return self.item.get("error")


def task_key(task_uuid: str) -> dict[str, Any]:
    return {"pk": {"S": f"TASK#{task_uuid}"}, "sk": {"S": TASK_SK}}


class StorableResult(Protocol):
    """What storing needs of a result: `contract.InferenceResult` (polled) or `WebhookResult` (pushed)."""

    @property
    def taskUUID(self) -> str: ...
    @property
    def text(self) -> str | None: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def reasoningContent(self) -> str | None: ...
    @property
    def finishReason(self) -> str | None: ...
    def as_document(self) -> dict[str, Any]: ...


def result_id(result: StorableResult) -> str:
    """Identity of a result: its content. A redelivery is byte-identical; distinct results differ."""
    identity = [result.text, result.seed, result.reasoningContent, result.finishReason]
    # surrogatepass: a lone surrogate (legal as a JSON escape) must not make hashing fail.
    encoded = json.dumps(identity, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return hashlib.sha256(encoded).hexdigest()[:20]


def to_dynamo(value: Any) -> dict[str, Any]:
    """DynamoDB's wire form of JSON-like data, in one pass (floats are written exactly as JSON writes
    them). What DynamoDB cannot hold is kept as text instead of failing the write: numbers beyond its
    range or 38 digits, NaN/Infinity, lone surrogates and nesting deeper than it allows. Such values only
    come from unknown fields or hostile bodies, and an unstorable one must not turn into a 5xx."""
    return _attribute(value, 0)


def _attribute(value: Any, depth: int) -> dict[str, Any]:
    # Exact-type fast paths for what results are made of (ASCII text, small integers): the generic
    # checks below cost ~10% of a warm webhook (bench/warm_webhook). Same output, fewer steps.
    kind = type(value)
    if kind is str and value.isascii():
        return {"S": value}
    if kind is int and -_INT_LIMIT < value < _INT_LIMIT:
        return {"N": str(value)}
    if kind is float:
        text = repr(value)  # what json.dumps writes; without an exponent (1e-4 ≤ |x| < 1e16) it is
        if "e" not in text and "n" not in text:  # also what Decimal prints, and nan/inf contain an n
            return {"N": text}
    if kind is dict and depth < MAX_STORED_DEPTH:
        return {"M": {_key(key): _attribute(item, depth + 1) for key, item in value.items()}}
    if isinstance(value, str):
        return {"S": value.encode("utf-8", "replace").decode("utf-8")}
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return _number(Decimal(value), str(value))
    if isinstance(value, float):
        if value != value or value in (_INFINITY, -_INFINITY):
            return {"S": json.dumps(value)}
        number = Decimal(repr(value))  # repr is what json.dumps writes
        return _number(number, str(number))
    if not isinstance(value, dict | list | tuple):
        raise TypeError(f"{type(value).__name__} is not JSON-like")
    if depth >= MAX_STORED_DEPTH:
        return {"S": json.dumps(value, ensure_ascii=True)}
    if isinstance(value, dict):
        return {"M": {_key(key): _attribute(item, depth + 1) for key, item in value.items()}}
    return {"L": [_attribute(item, depth + 1) for item in value]}


def _key(key: Any) -> str:
    if type(key) is str and key and key.isascii():
        return key
    text = key if isinstance(key, str) else json.dumps(key)  # as JSON names a non-string key
    return text.encode("utf-8", "replace").decode("utf-8") or "(empty)"


def _number(number: Decimal, text: str) -> dict[str, Any]:
    return {"N": text} if _fits_dynamo_number(number) else {"S": text}


def _fits_dynamo_number(number: Decimal) -> bool:
    if not number.is_finite():
        return False
    if number.is_zero():
        return True
    # Digits as written (boto3 refuses to round away even trailing zeros).
    return len(number.as_tuple().digits) <= 38 and -130 <= number.adjusted() <= 125


def from_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


class TaskStore:
    def __init__(
        self,
        table_name: str,
        *,
        payload_bucket: str | None = None,
        open_shards: int = 4,
        retention_days: int = 30,
        dynamodb: Any = None,
        s3: Any = None,
    ) -> None:
        self.table_name = table_name
        self.payload_bucket = payload_bucket
        self.open_shards = open_shards
        self.retention_seconds = retention_days * 86_400
        self._dynamodb = dynamodb
        self._s3 = s3

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = client("dynamodb")
        return self._dynamodb

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = client("s3")
        return self._s3

    # -- creation -------------------------------------------------------------------------------

    def create_pending(self, task: NewTask) -> TaskStatus | None:
        """Write the PENDING row before anything is sent. Returns None if new, else the existing status."""
        return self.create_many([(task, None)])[0]

    def create_rejected(self, task: NewTask, error: Mapping[str, Any]) -> TaskStatus | None:
        """Record input we refused (bad line, bad message) so the caller sees why, once."""
        return self.create_many([(task, error)])[0]

    def _new_item(self, task: NewTask, status: TaskStatus, now: float) -> dict[str, Any]:
        item: dict[str, Any] = {
            **task_key(task.task_uuid),
            "taskUUID": {"S": task.task_uuid},
            "status": {"S": status.value},
            "idempotencyKey": {"S": task.idempotency_key},
            "sourceId": {"S": task.source_id},
            "sourceSeq": {"N": str(task.source_seq)},
            "numberResults": {"N": str(task.number_results)},
            "resultCount": {"N": "0"},
            "results": {"M": {}},
            "createdAt": {"N": str(round(now, 3))},
            "updatedAt": {"N": str(round(now, 3))},
            "expiresAt": {"N": str(int(now + self.retention_seconds))},
        }
        if task.caller_id is not None:
            item["callerId"] = {"S": task.caller_id}
        if task.metadata:
            item["metadata"] = to_dynamo(dict(task.metadata))
        if status in OPEN_STATUSES:
            item["openShard"] = {"S": self._shard_of(task.task_uuid)}
            item["openSince"] = {"N": str(int(now))}
            if task.number_results == 1:
                item[SOLE_RESULT_DUE] = {"BOOL": True}
        return item

    def _put_action(self, item: dict[str, Any]) -> dict[str, Any]:
        """A Put that only creates: an existing row is never overwritten (its old item is returned)."""
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def create_many(
        self, rows: Sequence[tuple[NewTask, Mapping[str, Any] | None]]
    ) -> list[TaskStatus | None]:
        """`create_pending` (error None) or `create_rejected` for a whole chunk, 100 rows per round trip.

        Same conditions as the single writes; per row: None if written, else the status already there.
        """
        now = time.time()
        actions = []
        for task, error in rows:
            if error is None:
                item = self._new_item(task, TaskStatus.PENDING, now)
            else:
                item = self._new_item(task, TaskStatus.REJECTED, now)
                item["error"] = to_dynamo(dict(error))
            actions.append(self._put_action(item))
        refused = self._write_conditionally(actions)
        statuses: list[TaskStatus | None] = []
        for (task, _), old in zip(rows, refused, strict=True):
            if old is _WRITTEN:
                statuses.append(None)
            elif isinstance(old, dict) and "status" in old:
                statuses.append(TaskStatus(old["status"]["S"]))
            else:  # DynamoDB Local may not return the old item
                view = self.get_task(task.task_uuid, resolve_payloads=False)
                statuses.append(TaskStatus(view.status) if view else TaskStatus.PENDING)
        return statuses

    def mark_submitted_many(self, task_uuids: Sequence[str]) -> list[bool]:
        """PENDING → SUBMITTED for a whole chunk, 100 per round trip; per task: whether it moved.

        A task a webhook already completed is left alone (the condition fails).
        """
        now = time.time()
        actions = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": task_key(uuid),
                    "UpdateExpression": _MARK_SUBMITTED,
                    "ConditionExpression": "#s = :pending",  # also false for a missing item
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {
                        ":to": {"S": TaskStatus.SUBMITTED.value},
                        ":pending": {"S": TaskStatus.PENDING.value},
                        ":now": {"N": str(round(now, 3))},
                    },
                }
            }
            for uuid in task_uuids
        ]
        return [old is _WRITTEN for old in self._write_conditionally(actions)]

    def _write_conditionally(self, actions: list[dict[str, Any]]) -> list[Any]:
        """Apply conditional Put/Update actions, each exactly once, in transactions of up to 100.

        Returns per action `_WRITTEN`, or the old item (possibly None) when its condition failed. A
        cancelled transaction writes nothing, so it is retried without the actions whose condition
        failed; conflicts with concurrent writers back off and retry. A lone action skips the
        transaction (which costs twice the write units).
        """
        outcome: list[Any] = [_WRITTEN] * len(actions)
        for start in range(0, len(actions), TRANSACTION_LIMIT):
            pending = list(range(start, min(start + TRANSACTION_LIMIT, len(actions))))
            attempts = 0
            while pending:
                if len(pending) == 1:
                    outcome[pending[0]] = self._write_one(actions[pending[0]])
                    break
                try:
                    self.dynamodb.transact_write_items(TransactItems=[actions[i] for i in pending])
                    break
                except ClientError as error:
                    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                        raise
                    reasons = error.response.get("CancellationReasons") or []
                    failed = {
                        index: reason.get("Item")
                        for index, reason in zip(pending, reasons, strict=False)
                        if reason.get("Code") == "ConditionalCheckFailed"
                    }
                    if failed:
                        for index, old in failed.items():
                            outcome[index] = old
                        pending = [i for i in pending if i not in failed]
                        continue
                    attempts += 1  # TransactionConflict / throttling: someone else wrote meanwhile
                    if attempts > _TRANSACTION_RETRIES:
                        raise
                    time.sleep(random.uniform(0, 0.05 * 2**attempts))
        return outcome

    def _write_one(self, action: dict[str, Any]) -> Any:
        (kind, params), *_ = action.items()
        write = self.dynamodb.put_item if kind == "Put" else self.dynamodb.update_item
        try:
            write(**params)
        except ClientError as error:
            if not _is_condition_failure(error):
                raise
            return error.response.get("Item")
        return _WRITTEN

    # -- transitions ----------------------------------------------------------------------------

    def mark_submitted(self, task_uuid: str) -> bool:
        """PENDING → SUBMITTED; a webhook that already completed the task is left alone."""
        return self.mark_submitted_many([task_uuid])[0]

    def mark_rejected(self, task_uuid: str, error: Mapping[str, Any]) -> bool:
        """PENDING → REJECTED (a permanent error at submit)."""
        return self._finalise(task_uuid, TaskStatus.REJECTED, error, from_statuses=(TaskStatus.PENDING,))

    def mark_failed(self, task_uuid: str, error: Mapping[str, Any]) -> bool:
        """PENDING/SUBMITTED → FAILED (Runware reported an error, or the task outlived its maximum age)."""
        return self._finalise(
            task_uuid, TaskStatus.FAILED, error, from_statuses=(TaskStatus.PENDING, TaskStatus.SUBMITTED)
        )

    def _finalise(
        self,
        task_uuid: str,
        status: TaskStatus,
        error: Mapping[str, Any],
        from_statuses: tuple[TaskStatus, ...],
    ) -> bool:
        now = time.time()
        allowed = {f":from{i}": {"S": s.value} for i, s in enumerate(from_statuses)}
        return self._transition(
            task_uuid,
            f"SET #s = :to, #err = :e, completedAt = :now, updatedAt = :now {_CLOSE}",
            f"#s IN ({', '.join(allowed)})",
            {
                ":to": {"S": status.value},
                ":e": to_dynamo(dict(error)),
                ":now": {"N": str(round(now, 3))},
                **allowed,
            },
            extra_names={"#err": "error"},
        )

    def _transition(
        self,
        task_uuid: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        extra_names: dict[str, str] | None = None,
    ) -> bool:
        names = {"#s": "status", **(extra_names or {})}
        used = {k: v for k, v in names.items() if k in update or k in condition}
        try:
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key=task_key(task_uuid),
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(pk) AND ({condition})",
                ExpressionAttributeNames=used,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    # -- results --------------------------------------------------------------------------------

    def store_result(self, result: StorableResult) -> StoreOutcome:
        """Store one result exactly once and complete the task when all `numberResults` are in.

        Optimistic concurrency on `resultCount`: write conditioned on the count last seen (every write
        into `results` bumps it, so an unchanged count means the map in which this result was seen
        absent); a lost race looks again, a present result is a duplicate. The first write guesses the
        common case, conditioned on `soleResultDue` (open, one result wanted, none yet), so a typical
        webhook costs one UpdateItem and no read: a wrong guess is refused and hands back the item
        (ALL_OLD), which is exactly what the read would have returned.
        """
        task_uuid = result.taskUUID
        rid = result_id(result)
        # Built once: a large result is offloaded to S3 once, whatever the number of attempts.
        entry = to_dynamo(self._result_entry(task_uuid, rid, result, time.time()))
        written, current = self._write_result(task_uuid, rid, entry, prior=None, completes=True)
        if written:
            return StoreOutcome.COMPLETED
        for _ in range(_OPTIMISTIC_RETRIES):
            if current is None:
                current = self._read_item(task_uuid)
            if current is None:
                self._create_orphan(task_uuid)
                continue
            status = TaskStatus(current["status"])
            if rid in current.get("results", {}):
                self._repair_completion(task_uuid, current)
                return StoreOutcome.DUPLICATE
            prior = int(current.get("resultCount", 0))
            completes = prior + 1 >= int(current.get("numberResults", 1)) and status not in FINAL_STATUSES
            written, current = self._write_result(task_uuid, rid, entry, prior, completes)
            if written:
                return StoreOutcome.COMPLETED if completes else StoreOutcome.STORED
        raise RuntimeError(f"could not store a result for {task_uuid}: too much contention")

    def _write_result(
        self, task_uuid: str, rid: str, entry: dict[str, Any], prior: int | None, completes: bool
    ) -> tuple[bool, dict[str, Any] | None]:
        """Add the result under the lock `resultCount = prior`, or under `soleResultDue` (prior None).

        (True, None) when written; else (False, the item as it is, or None if absent/not returned).
        """
        now = {"N": str(round(time.time(), 3))}
        values: dict[str, Any] = {":r": entry, ":next": {"N": str((prior or 0) + 1)}, ":now": now}
        names = {"#rid": rid}
        update = "SET results.#rid = :r, resultCount = :next, updatedAt = :now"
        if prior is None:
            # Implies what the lock below checks: no result stored yet (any stored result removes the
            # marker, and it is never set again), the task open and wanting exactly this one. It also
            # fails on a missing item.
            condition = f"attribute_exists({SOLE_RESULT_DUE})"
        else:
            # `resultCount = :prior` alone is the lock: every write into `results` bumps the count
            # under this same condition, so an unchanged count means an unchanged map, in which `rid`
            # was seen absent. It also fails on a missing item.
            condition = "resultCount = :prior"
            values[":prior"] = {"N": str(prior)}
        if completes:
            update += f", #s = :completed, completedAt = :now {_CLOSE}"
            values[":completed"] = {"S": TaskStatus.COMPLETED.value}
            names["#s"] = "status"
            if prior is not None:
                # A task that turned FAILED since it was looked at must not become COMPLETED.
                condition += " AND #s IN (:pending, :submitted)"
                values[":pending"] = {"S": TaskStatus.PENDING.value}
                values[":submitted"] = {"S": TaskStatus.SUBMITTED.value}
        try:
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key=task_key(task_uuid),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                old = error.response.get("Item")
                return False, from_dynamo(old) if old else None
            raise
        return True, None

    def _result_entry(self, task_uuid: str, rid: str, result: StorableResult, now: float) -> dict[str, Any]:
        body = result.as_document()
        body["receivedAt"] = round(now, 3)
        # "replace": a lone surrogate becomes "?", as `to_dynamo` does for the inline copy.
        encoded = json.dumps(body, ensure_ascii=False).encode("utf-8", "replace")
        if len(encoded) <= INLINE_RESULT_LIMIT or not self.payload_bucket:
            return body
        key = f"completions/{task_uuid}/{rid}.json"
        # Written before the item points at it, so a pointer never dangles; rewriting is idempotent.
        self.s3.put_object(Bucket=self.payload_bucket, Key=key, Body=encoded, ContentType="application/json")
        summary: dict[str, Any] = {
            k: body[k] for k in ("finishReason", "cost", "usage", "seed", "status") if k in body
        }
        return {**summary, "payloadRef": f"s3://{self.payload_bucket}/{key}", "payloadBytes": len(encoded)}

    def _create_orphan(self, task_uuid: str) -> None:
        """A result for a task we have no row for (e.g. the row expired): keep it rather than lose it."""
        orphan = NewTask(task_uuid, idempotency_key=f"orphan:{task_uuid}", source_id="orphan", source_seq=0)
        self._write_one(self._put_action(self._new_item(orphan, TaskStatus.SUBMITTED, time.time())))

    def _repair_completion(self, task_uuid: str, current: Mapping[str, Any]) -> None:
        """Heal a task whose results are all stored but whose status write never happened."""
        if current["status"] in FINAL_STATUSES:
            return
        if int(current.get("resultCount", 0)) < int(current.get("numberResults", 1)):
            return
        now = {"N": str(round(time.time(), 3))}
        self._transition(
            task_uuid,
            f"SET #s = :completed, completedAt = :now, updatedAt = :now {_CLOSE}",
            "#s IN (:pending, :submitted)",
            {
                ":completed": {"S": TaskStatus.COMPLETED.value},
                ":pending": {"S": TaskStatus.PENDING.value},
                ":submitted": {"S": TaskStatus.SUBMITTED.value},
                ":now": now,
            },
        )

    # -- reads ----------------------------------------------------------------------------------

    def _read_item(self, task_uuid: str) -> dict[str, Any] | None:
        answer = self.dynamodb.get_item(
            TableName=self.table_name, Key=task_key(task_uuid), ConsistentRead=True
        )
        item = answer.get("Item")
        return from_dynamo(item) if item else None

    def get_task(self, task_uuid: str, *, resolve_payloads: bool = True) -> TaskView | None:
        item = self._read_item(task_uuid)
        if item is None:
            return None
        results = [
            self._resolve(entry) if resolve_payloads else entry for entry in item.get("results", {}).values()
        ]
        results.sort(key=lambda entry: (entry.get("receivedAt", 0), entry.get("seed") or 0))
        return TaskView(task_uuid=task_uuid, status=item["status"], item=item, results=results)

    def _resolve(self, entry: dict[str, Any]) -> dict[str, Any]:
        ref = entry.get("payloadRef")
        if not ref:
            return entry
        bucket, _, key = ref.removeprefix("s3://").partition("/")
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return {**json.loads(body), "payloadRef": ref}

    def open_tasks_since_before(self, cutoff_epoch: int, limit: int = 1000) -> Iterator[str]:
        """taskUUIDs still open since before `cutoff_epoch`, through the sparse OpenTasks index (no Scan)."""
        yielded = 0
        for shard in range(self.open_shards):
            pages = self.dynamodb.get_paginator("query").paginate(
                TableName=self.table_name,
                IndexName=OPEN_TASKS_INDEX,
                KeyConditionExpression="openShard = :shard AND openSince < :cutoff",
                ExpressionAttributeValues={
                    ":shard": {"S": f"OPEN#{shard}"},
                    ":cutoff": {"N": str(cutoff_epoch)},
                },
            )
            for page in pages:
                for item in page.get("Items", []):
                    yield item["pk"]["S"].removeprefix("TASK#")
                    yielded += 1
                    if yielded >= limit:
                        return

    def tasks_of_source(self, source_id: str) -> list[TaskView]:
        """Every task made from one input (an S3 object or an SQS message), in input order."""
        uuids: list[str] = []
        pages = self.dynamodb.get_paginator("query").paginate(
            TableName=self.table_name,
            IndexName=BY_SOURCE_INDEX,
            KeyConditionExpression="sourceId = :source",
            ExpressionAttributeValues={":source": {"S": source_id}},
        )
        for page in pages:
            uuids.extend(item["pk"]["S"].removeprefix("TASK#") for item in page.get("Items", []))
        views = [self.get_task(uuid) for uuid in uuids]
        return [view for view in views if view is not None]

    def _shard_of(self, task_uuid: str) -> str:
        return f"OPEN#{int(task_uuid.replace('-', '')[:8], 16) % self.open_shards}"


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
