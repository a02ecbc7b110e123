"""The task repository on DynamoDB: one item per task, its results inside it, every transition a
conditional write.

Results live in the `results` map under their slot (which of the task's `numberResults` each is: every
slot is its own Runware task, `task_ids.result_task_uuid`), so a repeated webhook can never store a
result twice and two results with the same text are still two; `resultCount` doubles as an
optimistic-lock version: two results of one task arriving at once cannot overwrite each other.

Which tasks are open is kept per hundred lines, in their tally (`tallies.py`: the submitter adds the
lines before their rows, the results consumer closes them), and only open tallies are in the sparse
`OpenTasks` index the reconciler reads. A task item is in no index at all when its taskUUID follows from
its source and line (`task_ids.line_key`: every task but those keyed by the caller's `id`): its tally
lists its line, and the tally is in BySource. The few others are in BySource under their line.

`soleResultDue` marks the common state a webhook expects (open, one result wanted, none stored yet), so
the usual completion is conditioned on one attribute; any stored result or final status removes it. Its
value is the task's current attempt (`attempt`, absent for the first): a retried task (`reopen` in
`jobs.py`) is the same item on a new attempt, and a late result of an earlier attempt must not land in
it. Texts too large for DynamoDB's 400 KB item limit go to the payload store with a pointer in the item.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ...aws_clients import client
from ...domain.errors import bounded_error
from ...domain.tasks import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    NewTask,
    StorableResult,
    StoreOutcome,
    TaskRecord,
    TaskStatus,
)
from ...result_payloads import INLINE_RESULT_LIMIT, encoded_result, pointer_entry
from ...result_payloads import resolve_payloads as resolve_payloads_of
from ...task_ids import line_task_uuid
from .codec import from_dynamo, to_dynamo
from .reads import BATCH_GET_LIMIT, batch_get, query_pages
from .schema import (
    BY_CALLER_INDEX,
    BY_SOURCE_INDEX,
    LEAVE_OPEN_TASKS,
    OPEN_TASKS_INDEX,
    SOURCE_LINE,
    SOURCE_SEQ,
    TASK_PREFIX,
    is_task_item,
    job_key,
    tally_of_entry,
    task_key,
    task_record,
    task_uuid_of,
)
from .writes import (
    INSERT_BATCH_LIMIT,
    TRANSACTION_LIMIT,
    insert_batch,
    is_condition_failure,
    patiently,
    transact,
    write_one,
)

# Retries and tallies are imported where they are used: the webhook, which only stores results, then
# does not load them on its cold start (bench/README.md, cold_import).
if TYPE_CHECKING:
    from ...domain.retries import Reopened
    from ...ports import PayloadStore

_OPTIMISTIC_RETRIES = 20
# Rows of a chunk written at once: each is one round trip, and a chunk's 100 rows should take a few.
_PARALLEL_WRITES = 16
_WRITTEN = object()  # marks an action whose condition held
# Present only while a task is open, wants one result and has none. Checking it alone is a cheaper
# condition for the usual completion than the equivalent three (bench/README.md, warm_webhook).
SOLE_RESULT_DUE = "soleResultDue"
# What a task loses when it becomes final (openShard/openSince: rows written before tallies had them).
_CLOSE = f"{LEAVE_OPEN_TASKS}, {SOLE_RESULT_DUE}"
# The usual completion removes only what current rows carry: each path in an update expression is work
# for DynamoDB on the webhook's one write (bench/README.md, warm_webhook). A row written before tallies
# that completes this way leaves OpenTasks when the reconciler next lists it (`_open_legacy_rows`).
_CLOSE_CURRENT_ROW = f"REMOVE {SOLE_RESULT_DUE}"


def on_attempt(attempt: int, values: dict[str, Any]) -> str:
    """The condition that a task item is on `attempt` (the first one has no `attempt` attribute)."""
    if attempt == 0:
        return "attribute_not_exists(attempt)"
    values[":onAttempt"] = {"N": str(attempt)}
    return "attempt = :onAttempt"


class DynamoTaskRepository:
    def __init__(
        self,
        table_name: str,
        *,
        payloads: PayloadStore | None = None,
        open_shards: int = 4,
        retention_days: int = 30,
        dynamodb: Any = None,
    ) -> None:
        self.table_name = table_name
        self.payloads = payloads  # None: large texts stay inline (up to the item limit)
        self.open_shards = open_shards
        self.retention_seconds = retention_days * 86_400
        self.dynamodb = dynamodb if dynamodb is not None else client("dynamodb")
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

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
            # Listed in BySource only if its line cannot lead back to it (`task_uuids_of_source`).
            (SOURCE_LINE if _found_by_line(task) else SOURCE_SEQ): {"N": str(task.source_seq)},
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
        if task.budget:
            item["budget"] = to_dynamo(dict(task.budget))
        if task.spec:
            item["spec"] = to_dynamo(dict(task.spec))
        if status in OPEN_STATUSES and task.number_results == 1:
            item[SOLE_RESULT_DUE] = {"N": "0"}
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
        self,
        rows: Sequence[tuple[NewTask, Mapping[str, Any] | None]],
        *,
        cancelled: Mapping[str, Any] | None = None,
    ) -> list[TaskStatus | None]:
        """`create_pending` (error None) or `create_rejected` for a whole chunk; with `cancelled` (the
        cancellation's error), rows that would be PENDING are CANCELLED instead.

        Their lines go into their tallies first (one write per tally, whether the rows are new or
        not: a crash between the two is healed by the redelivery). Same conditions as the single writes;
        per row: None if written, else the status already there.
        """
        now = time.time()
        self._open_lines([(task.source_id, task.source_seq) for task, _ in rows], now)
        items = []
        for task, error in rows:
            if error is None and cancelled is None:
                item = self._new_item(task, TaskStatus.PENDING, now)
            elif error is not None:
                item = self._new_item(task, TaskStatus.REJECTED, now)
                item["error"] = to_dynamo(bounded_error(error))
            else:
                item = self._new_item(task, TaskStatus.CANCELLED, now)
                item["error"] = to_dynamo(bounded_error(cancelled or {}))
                item["completedAt"] = {"N": str(round(now, 3))}
            items.append(item)
        existing = self._insert_rows(items)
        statuses: list[TaskStatus | None] = [None] * len(rows)
        if existing:
            found = self._statuses([rows[index][0].task_uuid for index in existing])
            for index in existing:
                # Gone again already (expired by TTL between the two calls): as good as PENDING, resent.
                statuses[index] = found.get(rows[index][0].task_uuid, TaskStatus.PENDING)
        return statuses

    def _insert_rows(self, items: list[dict[str, Any]]) -> list[int]:
        """Create the rows that do not exist, 25 to a call and the calls side by side: the indexes of
        those that did. Each row stands alone (nothing needs two rows to change together), so a
        transaction would buy nothing and costs twice the write units."""
        batches = [
            items[start : start + INSERT_BATCH_LIMIT] for start in range(0, len(items), INSERT_BATCH_LIMIT)
        ]

        def insert(batch: list[dict[str, Any]]) -> list[int]:
            return insert_batch(self.dynamodb, self.table_name, batch)

        answers = list(self._writers().map(insert, batches)) if len(batches) > 1 else map(insert, batches)
        return [
            number * INSERT_BATCH_LIMIT + index for number, indexes in enumerate(answers) for index in indexes
        ]

    def _statuses(self, task_uuids: Sequence[str]) -> dict[str, TaskStatus]:
        """The rows' statuses (read patiently, as every `batch_get`: every redelivery of a record reads
        them)."""
        keys = [task_key(task_uuid) for task_uuid in task_uuids]
        items = batch_get(
            self.dynamodb, self.table_name, keys, projection="pk, #status", names={"#status": "status"}
        )
        return {task_uuid_of(item): TaskStatus(item["status"]["S"]) for item in items}

    def _open_lines(self, lines: Sequence[tuple[str, int]], now: float) -> None:
        from ...domain.jobs import tally_of
        from .tallies import open_lines_action, shard_of

        expires = int(now + self.retention_seconds)
        by_tally: dict[tuple[str, int], list[int]] = {}
        for source_id, seq in lines:
            by_tally.setdefault((source_id, tally_of(seq)), []).append(seq)
        for (source_id, tally), seqs in by_tally.items():
            shard = shard_of(source_id, tally, self.open_shards)
            action = open_lines_action(
                self.table_name, source_id, tally, seqs, shard=shard, now=now, expires=expires
            )
            patiently(functools.partial(self.dynamodb.update_item, **action["Update"]))

    def _write_conditionally(self, actions: list[dict[str, Any]]) -> list[Any]:
        """Apply conditional Put/Update actions, each on its own, `_PARALLEL_WRITES` at a time.

        Returns per action `_WRITTEN`, or the old item (possibly None) when its condition failed. Each
        row stands alone (nothing needs two rows to change together), so a transaction would buy
        nothing and costs twice the write units of the same writes made one by one.
        """
        if len(actions) <= 1:
            return [self._write_one(action) for action in actions]
        return list(self._writers().map(self._write_one, actions))

    def _write_one(self, action: dict[str, Any]) -> Any:
        written, old = patiently(lambda: write_one(self.dynamodb, action))
        return _WRITTEN if written else old

    def _writers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_PARALLEL_WRITES, thread_name_prefix="rows")
            return self._pool

    # -- transitions ----------------------------------------------------------------------------

    def mark_rejected(self, task_uuid: str, error: Mapping[str, Any]) -> bool:
        """PENDING → REJECTED (a permanent error at submit)."""
        return self._finalise(task_uuid, TaskStatus.REJECTED, error, from_statuses=(TaskStatus.PENDING,))

    def mark_cancelled(self, task_uuid: str, error: Mapping[str, Any], *, attempt: int = 0) -> bool:
        """PENDING → CANCELLED (Runware never had it, and its source was cancelled), if the task is still
        on `attempt`."""
        return self._finalise(
            task_uuid, TaskStatus.CANCELLED, error, from_statuses=(TaskStatus.PENDING,), attempt=attempt
        )

    def mark_failed(self, task_uuid: str, error: Mapping[str, Any], *, attempt: int = 0) -> bool:
        """Open → FAILED (Runware reported an error, or the task outlived its maximum age),
        if the task is still on `attempt`."""
        return self._finalise(
            task_uuid,
            TaskStatus.FAILED,
            error,
            from_statuses=(TaskStatus.PENDING, TaskStatus.SUBMITTED),
            attempt=attempt,
        )

    def _finalise(
        self,
        task_uuid: str,
        status: TaskStatus,
        error: Mapping[str, Any],
        from_statuses: tuple[TaskStatus, ...],
        attempt: int | None = None,
    ) -> bool:
        now = time.time()
        allowed = {f":from{i}": {"S": s.value} for i, s in enumerate(from_statuses)}
        condition = f"#s IN ({', '.join(allowed)})"
        values = {
            ":to": {"S": status.value},
            ":e": to_dynamo(bounded_error(error)),
            ":now": {"N": str(round(now, 3))},
            **allowed,
        }
        if attempt is not None:
            condition += f" AND {on_attempt(attempt, values)}"
        return self._transition(
            task_uuid,
            f"SET #s = :to, #err = :e, completedAt = :now, updatedAt = :now {_CLOSE}",
            condition,
            values,
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
            if is_condition_failure(error):
                return False
            raise
        return True

    # -- retries --------------------------------------------------------------------------------

    def reopen_for_retry(
        self, source_id: str, retry_round: int, tasks: Sequence[TaskRecord]
    ) -> list[Reopened]:
        """FAILED → PENDING on the next attempt, for round `retry_round` of the file's job.

        Each transaction reopens up to 98 tasks of one tally and, in the same write, opens their lines in
        the tally again, takes them out of the job's `finals` and holds the job (`retryHeld`: not
        complete, so no results file is written while the round is being set up). A task changed since
        it was read (another retry took it) is left out; a job that cannot take this round raises
        `RetryRefused`. An SQS message has no job: its tallies are opened, then its tasks reopened
        (`retry_round` unused).
        """
        from ...domain.jobs import has_job
        from ...domain.retries import Reopened

        now = time.time()
        if not has_job(source_id):
            for tally, group in _by_tally(tasks).items():
                reopen = self._reopen_lines(source_id, tally, group, now)["Update"]
                patiently(functools.partial(self.dynamodb.update_item, **reopen))
            outcome = self._write_conditionally([self._reopen_action(task, now) for task in tasks])
            return [
                Reopened(task.task_uuid, task.source_seq, task.attempt + 1)
                for task, old in zip(tasks, outcome, strict=True)
                if old is _WRITTEN
            ]
        reopened: list[Reopened] = []
        for tally, group in _by_tally(tasks).items():
            reopened += self._reopen_in_job(source_id, retry_round, tally, group, now)
        return reopened

    def _reopen_in_job(
        self, source_id: str, retry_round: int, tally: int, tasks: list[TaskRecord], now: float
    ) -> list[Reopened]:
        from ...domain.retries import Reopened, RetryRefused

        reopened: list[Reopened] = []
        for start in range(0, len(tasks), TRANSACTION_LIMIT - 2):
            chunk = tasks[start : start + TRANSACTION_LIMIT - 2]
            while chunk:
                actions = [self._reopen_action(task, now) for task in chunk]
                actions.append(self._hold_action(source_id, retry_round, len(chunk), now))
                actions.append(self._reopen_lines(source_id, tally, chunk, now))
                failed = transact(self.dynamodb, actions)
                if len(chunk) in failed:
                    raise RetryRefused(
                        f"{source_id}: its job is not complete, or another retry round started"
                    )
                if not failed:
                    reopened += [Reopened(t.task_uuid, t.source_seq, t.attempt + 1) for t in chunk]
                    break
                chunk = [task for position, task in enumerate(chunk) if position not in failed]
        return reopened

    def _reopen_lines(
        self, source_id: str, tally: int, tasks: Sequence[TaskRecord], now: float
    ) -> dict[str, Any]:
        from .tallies import reopen_lines_action, shard_of

        shard = shard_of(source_id, tally, self.open_shards)
        seqs = [task.source_seq for task in tasks]
        return reopen_lines_action(self.table_name, source_id, tally, seqs, shard=shard, now=now)

    def _reopen_action(self, task: TaskRecord, now: float) -> dict[str, Any]:
        from ...domain.retries import attempt_record

        values: dict[str, Any] = {
            ":pending": {"S": TaskStatus.PENDING.value},
            ":failed": {"S": TaskStatus.FAILED.value},
            ":next": {"N": str(task.attempt + 1)},
            ":record": {"L": [to_dynamo(attempt_record(task, now))]},
            ":none": {"L": []},
            ":empty": {"M": {}},
            ":zero": {"N": "0"},
            ":now": {"N": str(round(now, 3))},
        }
        update = (
            "SET #s = :pending, attempt = :next, attempts = list_append(if_not_exists(attempts, :none), "
            ":record), results = :empty, resultCount = :zero, retriedAt = :now, updatedAt = :now"
        )
        if task.number_results == 1:
            update += f", {SOLE_RESULT_DUE} = :next"
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": task_key(task.task_uuid),
                "UpdateExpression": update + " REMOVE #err, completedAt, submittedAt",
                "ConditionExpression": f"#s = :failed AND {on_attempt(task.attempt, values)}",
                "ExpressionAttributeNames": {"#s": "status", "#err": "error"},
                "ExpressionAttributeValues": values,
            }
        }

    def _hold_action(self, source_id: str, retry_round: int, reopened: int, now: float) -> dict[str, Any]:
        """The job's side of a reopening: fewer finals, held, results and announcement to be redone. A new
        round may start only on an announced job (its previous round is wholly done); a held one only
        takes more tasks for the round it is in."""
        values: dict[str, Any] = {
            ":minus": {"N": str(-reopened)},
            ":round": {"N": str(retry_round)},
            ":held": {"BOOL": True},
            ":now": {"N": str(round(now, 3))},
        }
        if retry_round == 1:
            after = "attribute_not_exists(retryRound)"
        else:
            after = "retryRound = :previous"
            values[":previous"] = {"N": str(retry_round - 1)}
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": job_key(source_id),
                "UpdateExpression": "ADD finals :minus SET retryRound = :round, retryHeld = :held, "
                "updatedAt = :now REMOVE resultsWrittenAt, announcedAt, resultsLocation, resultsCounts",
                "ConditionExpression": "(retryHeld = :held AND retryRound = :round) OR "
                f"(attribute_not_exists(retryHeld) AND attribute_exists(announcedAt) AND {after})",
                "ExpressionAttributeValues": values,
            }
        }

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
        rid = str(result.slot)
        attempt = result.attempt
        # Built once: a large result is offloaded to S3 once, whatever the number of writes.
        entry = self._typed_entry(task_uuid, rid, result)
        written, current = self._write_result(task_uuid, rid, entry, attempt, prior=None, completes=True)
        if written:
            return StoreOutcome.COMPLETED
        for _ in range(_OPTIMISTIC_RETRIES):
            if current is None:
                current = self._read_item(task_uuid)
            if current is None:
                if attempt:
                    return StoreOutcome.IGNORED  # a retried attempt always has its row
                self._create_orphan(task_uuid)
                continue
            if int(current.get("attempt", 0)) != attempt:
                return StoreOutcome.IGNORED  # an earlier attempt's late answer (or a later one's early one)
            status = TaskStatus(current["status"])
            if rid in current.get("results", {}):
                self._repair_completion(task_uuid, current)
                return StoreOutcome.DUPLICATE
            prior = int(current.get("resultCount", 0))
            completes = prior + 1 >= int(current.get("numberResults", 1)) and status not in FINAL_STATUSES
            written, current = self._write_result(task_uuid, rid, entry, attempt, prior, completes)
            if written:
                return StoreOutcome.COMPLETED if completes else StoreOutcome.STORED
        raise RuntimeError(f"could not store a result for {task_uuid}: too much contention")

    def _write_result(
        self,
        task_uuid: str,
        rid: str,
        entry: dict[str, Any],
        attempt: int,
        prior: int | None,
        completes: bool,
    ) -> tuple[bool, dict[str, Any] | None]:
        """Add the result of `attempt` under the lock `resultCount = prior`, or under `soleResultDue`
        (prior None).

        (True, None) when written; else (False, the item as it is, or None if absent/not returned).
        """
        now = {"N": str(round(time.time(), 3))}
        values: dict[str, Any] = {":r": entry, ":next": {"N": str((prior or 0) + 1)}, ":now": now}
        names = {"#rid": rid}
        update = "SET results.#rid = :r, resultCount = :next, updatedAt = :now"
        if prior is None:
            # Implies what the lock below checks: no result stored yet (any stored result removes the
            # marker, and only a retry sets it again, for its new attempt), the task open, on this
            # attempt and wanting exactly this one. It also fails on a missing item.
            condition = f"{SOLE_RESULT_DUE} = :attempt"
            values[":attempt"] = {"N": str(attempt)}
        else:
            # `resultCount = :prior` alone is the lock: every write into `results` bumps the count
            # under this same condition, so an unchanged count means an unchanged map, in which `rid`
            # was seen absent. It also fails on a missing item.
            # A retry resets the count, so the attempt is part of the lock.
            condition = f"resultCount = :prior AND {on_attempt(attempt, values)}"
            values[":prior"] = {"N": str(prior)}
        if completes:
            close = _CLOSE_CURRENT_ROW if prior is None else _CLOSE
            update += f", #s = :completed, completedAt = :now {close}"
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
            if is_condition_failure(error):
                old = error.response.get("Item")
                return False, from_dynamo(old) if old else None
            raise
        return True, None

    def _typed_entry(self, task_uuid: str, rid: str, result: StorableResult) -> dict[str, Any]:
        """The result as stored in the item's `results` map (its text offloaded when too large)."""
        return to_dynamo(self._result_entry(task_uuid, rid, result, time.time()))

    def _result_entry(self, task_uuid: str, rid: str, result: StorableResult, now: float) -> dict[str, Any]:
        body = result.as_document()
        body["receivedAt"] = round(now, 3)
        encoded = encoded_result(body)
        if len(encoded) <= INLINE_RESULT_LIMIT or self.payloads is None:
            return body
        return pointer_entry(self.payloads, body, encoded, task_uuid, rid, result.attempt)

    def _create_orphan(self, task_uuid: str) -> None:
        """A result for a task we have no row for (e.g. the row expired): keep it rather than lose it."""
        # Its own source: each orphan is recorded in a tally of its own (`domain.jobs.FinalLine`).
        source = f"orphan:{task_uuid}"
        orphan = NewTask(task_uuid, idempotency_key=source, source_id=source, source_seq=0)
        write_one(self.dynamodb, self._put_action(self._new_item(orphan, TaskStatus.PENDING, time.time())))

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

    def get_task(self, task_uuid: str, *, resolve_payloads: bool = True) -> TaskRecord | None:
        item = self._read_item(task_uuid)
        if item is None:
            return None
        return self._record(item, resolve_payloads)

    def _record(self, item: dict[str, Any], resolve_payloads: bool) -> TaskRecord:
        record = task_record(item)
        if resolve_payloads and self.payloads is not None:
            return resolve_payloads_of(record, self.payloads)
        return record

    def open_tasks_since_before(self, cutoff_epoch: int, limit: int = 1000) -> Iterator[str]:
        """taskUUIDs that may still be open, of tallies open since before `cutoff_epoch`: the lines of
        each not closed yet (a task final a moment ago may be among them; the caller reads them).
        Through the sparse OpenTasks index, never a Scan."""
        yielded = 0
        for shard in range(self.open_shards):
            pages = query_pages(
                self.dynamodb,
                TableName=self.table_name,
                IndexName=OPEN_TASKS_INDEX,
                KeyConditionExpression="openShard = :shard AND openSince < :cutoff",
                ExpressionAttributeValues={
                    ":shard": {"S": f"OPEN#{shard}"},
                    ":cutoff": {"N": str(cutoff_epoch)},
                },
            )
            for page in pages:
                keys = [str(item["pk"]["S"]) for item in page.get("Items", [])]
                for task_uuid in self._unclosed_tasks(keys):
                    yield task_uuid
                    yielded += 1
                    if yielded >= limit:
                        return

    def _unclosed_tasks(self, keys: list[str]) -> Iterator[str]:
        from .tallies import line_range, read_tallies, source_and_tally

        legacy = [key for key in keys if key.startswith(TASK_PREFIX)]  # rows written before tallies
        if legacy:
            yield from self._open_legacy_rows([key.removeprefix(TASK_PREFIX) for key in legacy])
        named = [source_and_tally(key) for key in keys if key not in legacy]
        for (source_id, tally), state in read_tallies(self.dynamodb, self.table_name, named).items():
            unclosed = state.unclosed
            if not unclosed:
                continue
            # A line's task is the one its line leads to, unless BySource lists another under it. A line
            # whose row was never written (a crash after its tally) leads to no row: nothing is read.
            listed = self._listed_tasks(source_id, *line_range(tally))
            for seq in sorted(unclosed):
                yield from listed.get(seq) or [line_task_uuid(source_id, seq)]

    def _open_legacy_rows(self, task_uuids: list[str]) -> Iterator[str]:
        """Of task rows listed in OpenTasks themselves (written before tallies), those still open; a final
        one, completed by the usual write (which leaves their index attributes), is taken out of the index."""
        finals = {f":final{i}": {"S": status.value} for i, status in enumerate(sorted(FINAL_STATUSES))}
        for task_uuid, status in self._statuses(task_uuids).items():
            if status not in FINAL_STATUSES:
                yield task_uuid
                continue
            self._transition(task_uuid, LEAVE_OPEN_TASKS, f"#s IN ({', '.join(finals)})", dict(finals))

    def task_uuids_of_source(self, source_id: str) -> list[str]:
        """taskUUIDs of every task made from one input (an S3 object or an SQS message), in input order.

        BySource lists the source's tallies and the few tasks whose taskUUID does not follow from their
        line; every other line in a tally's `lines` leads to its task (`line_task_uuid`). Both reads are
        eventually consistent: a task written a moment ago may be missing, and a line whose row is not
        written yet (or never was, after a crash) names a task that is not there to be read.
        """
        from .tallies import read_tallies

        listed: list[tuple[int, str]] = []
        tallies: list[tuple[str, int]] = []
        for item in self._index_entries(BY_SOURCE_INDEX, "sourceId", source_id):
            seq = int(item[SOURCE_SEQ]["N"])
            if is_task_item(item):
                listed.append((seq, task_uuid_of(item)))
            else:
                tallies.append((source_id, tally_of_entry(seq)))
        indexed = {seq for seq, _ in listed}
        for state in read_tallies(self.dynamodb, self.table_name, tallies, consistent=False).values():
            listed += [(seq, line_task_uuid(source_id, seq)) for seq in state.lines - indexed]
        return [task_uuid for _, task_uuid in sorted(listed)]

    def _listed_tasks(self, source_id: str, first: int, last: int) -> dict[int, list[str]]:
        """The tasks BySource lists under lines `first` to `last` of a source, by line."""
        lines = {":first": {"N": str(first)}, ":last": {"N": str(last)}}
        listed: dict[int, list[str]] = {}
        entries = self._index_entries(
            BY_SOURCE_INDEX, "sourceId", source_id, "AND sourceSeq BETWEEN :first AND :last", lines
        )
        for item in entries:
            if is_task_item(item):
                listed.setdefault(int(item[SOURCE_SEQ]["N"]), []).append(task_uuid_of(item))
        return listed

    def _index_entries(
        self,
        index: str,
        attribute: str,
        value: str,
        condition: str = "",
        values: Mapping[str, Any] | None = None,
    ) -> Iterator[Mapping[str, Any]]:
        """Every entry of `index` whose key `attribute` is `value` (and that meets `condition`, on the
        sort key, with its `values`), page after page."""
        pages = query_pages(
            self.dynamodb,
            TableName=self.table_name,
            IndexName=index,
            KeyConditionExpression=f"{attribute} = :v {condition}".strip(),
            ExpressionAttributeValues={":v": {"S": value}, **(values or {})},
        )
        for page in pages:
            yield from page.get("Items", [])

    def task_uuids_of_caller(self, caller_id: str) -> list[str]:
        """taskUUIDs of the tasks whose spec carried this caller `id`, oldest first (ByCaller index)."""
        return [task_uuid_of(item) for item in self._index_entries(BY_CALLER_INDEX, "callerId", caller_id)]

    def source_has_tasks(self, source_id: str) -> bool:
        """Whether anything of the source is in BySource: a tally (its lines are opened before their rows
        are written) or a task."""
        answer = self.dynamodb.query(
            TableName=self.table_name,
            IndexName=BY_SOURCE_INDEX,
            KeyConditionExpression="sourceId = :v",
            ExpressionAttributeValues={":v": {"S": source_id}},
            Limit=1,
        )
        return bool(answer.get("Items"))

    def tasks_of_source(self, source_id: str) -> list[TaskRecord]:
        """Every task made from one input, in input order, payloads resolved."""
        views = [self.get_task(uuid) for uuid in self.task_uuids_of_source(source_id)]
        return [view for view in views if view is not None]

    def tasks_in_order(self, task_uuids: Sequence[str], *, consistent: bool = True) -> Iterator[TaskRecord]:
        """Tasks in the order given, read in batches of 100 (strongly consistent unless told otherwise:
        an eventually consistent read costs half), payloads not resolved; a task gone since (expired
        under TTL) is skipped."""
        for start in range(0, len(task_uuids), BATCH_GET_LIMIT):  # a chunk at a time: memory stays flat
            batch = [task_key(uuid) for uuid in task_uuids[start : start + BATCH_GET_LIMIT]]
            found = {
                item["pk"]["S"]: item
                for item in batch_get(self.dynamodb, self.table_name, batch, consistent=consistent)
            }
            for key in batch:
                item = found.get(key["pk"]["S"])
                if item is not None:
                    yield task_record(from_dynamo(item))


def _found_by_line(task: NewTask) -> bool:
    """Whether a task's taskUUID is the one its source and line give (`task_ids.line_key`): true of every
    task but those keyed by the caller's `id` and the refusal of a JSONL object without lines."""
    return task.task_uuid == line_task_uuid(task.source_id, task.source_seq)


def _by_tally(tasks: Sequence[TaskRecord]) -> dict[int, list[TaskRecord]]:
    from ...domain.jobs import tally_of

    groups: dict[int, list[TaskRecord]] = {}
    for task in tasks:
        groups.setdefault(tally_of(task.source_seq), []).append(task)
    return groups
