"""The tasks table's layout: keys, prefixes, indexes, and items turned into domain records.

One table holds five kinds of item:
- a task: pk=`TASK#<taskUUID>`, sk=`TASK`, its results inside it (see `tasks.py`);
- a job, one per S3 input file: pk=`JOB#<sourceId>`, sk=`JOB` (see `jobs.py`);
- a tally, one per 100 lines of a source: pk=`TALLY#<sourceId>#<n>`, sk=`TALLY`, the marks of the final
  attempts recorded (their TaskCompleted event sent, counted in the job, budgets settled; see `jobs.py`);
- a cancellation, one per cancelled source: pk=`CANCEL#<sourceId>`, sk=`CANCEL` (see `jobs.py`);
- the shared throttle after Runware's 429/503: pk=`THROTTLE#runware`, sk=`THROTTLE` (see `throttle.py`);
- a budget's spend: pk=`SPEND#day#<YYYY-MM-DD>` or `SPEND#source#<sourceId>`, sk=`SPEND` (see `budgets.py`).
Indexes: `OpenTasks` (sparse: open tallies, by shard and age), `BySource` (sparse, keyed by `sourceId` and
`sourceSeq`: a source's tallies, under `sourceSeq` `-1 - n`, and the few tasks whose taskUUID does not follow
from their line, under their line; see `tasks.py`), `ByCaller` (tasks by the caller's `id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...domain.tasks import TaskRecord, TaskStatus

if TYPE_CHECKING:  # jobs are read where they are used: not on the webhook's cold start
    from ...domain.jobs import JobProgress

TASK_PREFIX = "TASK#"
TASK_SK = "TASK"
JOB_PREFIX = "JOB#"
JOB_SK = "JOB"
TALLY_PREFIX = "TALLY#"
TALLY_SK = "TALLY"
CANCEL_PREFIX = "CANCEL#"
CANCEL_SK = "CANCEL"
SPEND_PREFIX = "SPEND#"
SPEND_SK = "SPEND"
THROTTLE_PREFIX = "THROTTLE#"
THROTTLE_SK = "THROTTLE"
OPEN_TASKS_INDEX = "OpenTasks"
BY_SOURCE_INDEX = "BySource"
BY_CALLER_INDEX = "ByCaller"
# A task row's line: under SOURCE_SEQ (a BySource key) only when its taskUUID cannot be derived from it.
SOURCE_SEQ = "sourceSeq"
SOURCE_LINE = "sourceLine"
# Takes an item (a tally, or a task row written before tallies) out of the sparse OpenTasks index.
LEAVE_OPEN_TASKS = "REMOVE openShard, openSince"
LAYOUT = "pk = TASK#<taskUUID>, sk = TASK; results in its 'results' map"


def task_key(task_uuid: str) -> dict[str, Any]:
    return {"pk": {"S": f"{TASK_PREFIX}{task_uuid}"}, "sk": {"S": TASK_SK}}


def job_key(source_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"{JOB_PREFIX}{source_id}"}, "sk": {"S": JOB_SK}}


def cancellation_key(source_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"{CANCEL_PREFIX}{source_id}"}, "sk": {"S": CANCEL_SK}}


def spend_key(scope: str, name: str) -> dict[str, Any]:
    return {"pk": {"S": f"{SPEND_PREFIX}{scope}#{name}"}, "sk": {"S": SPEND_SK}}


def throttle_key(service: str) -> dict[str, Any]:
    return {"pk": {"S": f"{THROTTLE_PREFIX}{service}"}, "sk": {"S": THROTTLE_SK}}


def tally_key(source_id: str, tally: int) -> dict[str, Any]:
    """The tally of lines `tally * TALLY_LINES` to `(tally + 1) * TALLY_LINES - 1` of a source."""
    return {"pk": {"S": f"{TALLY_PREFIX}{source_id}#{tally}"}, "sk": {"S": TALLY_SK}}


def tally_entry_seq(tally: int) -> int:
    """The `sourceSeq` a tally is listed under in BySource: below every line, so never in a line range."""
    return -1 - tally


def tally_of_entry(seq: int) -> int:
    return -1 - seq


def line_of(item: Mapping[str, Any]) -> int:
    """A task's line from its plain item, under whichever of the two attributes it was written."""
    return int(item.get(SOURCE_LINE, item.get(SOURCE_SEQ, 0)))


def task_uuid_of(item: Mapping[str, Any]) -> str:
    """The taskUUID of a typed task item or index entry (which carry the keys)."""
    return str(item["pk"]["S"]).removeprefix(TASK_PREFIX)


def is_task_item(keys: Mapping[str, Any]) -> bool:
    return keys.get("sk", {}).get("S") == TASK_SK


def is_job_item(keys: Mapping[str, Any]) -> bool:
    return str(keys.get("pk", {}).get("S", "")).startswith(JOB_PREFIX)


def task_record(item: Mapping[str, Any]) -> TaskRecord:
    """A task from its plain item (`codec.from_dynamo`), results in slot order."""
    results = [entry for _, entry in sorted((item.get("results") or {}).items(), key=_result_order)]
    return TaskRecord(
        task_uuid=str(item.get("taskUUID") or str(item["pk"]).removeprefix(TASK_PREFIX)),
        status=TaskStatus(item["status"]),
        source_id=str(item.get("sourceId", "")),
        source_seq=line_of(item),
        idempotency_key=str(item.get("idempotencyKey", "")),
        number_results=int(item.get("numberResults", 1)),
        result_count=int(item.get("resultCount", 0)),
        results=results,
        caller_id=item.get("callerId"),
        metadata=item.get("metadata") or None,
        error=item.get("error") or None,
        created_at=_number(item.get("createdAt")),
        submitted_at=_number(item.get("submittedAt")),
        completed_at=_number(item.get("completedAt")),
        updated_at=_number(item.get("updatedAt")),
        attempt=int(item.get("attempt", 0)),
        attempts=list(item.get("attempts") or []),
        retried_at=_number(item.get("retriedAt")),
        budget=item.get("budget") or None,
        spec=item.get("spec") or None,
    )


def _result_order(slot_and_entry: tuple[str, Mapping[str, Any]]) -> tuple[bool, int, Any]:
    """By slot; results keyed by content (rows from before slots) after them, oldest first."""
    slot, entry = slot_and_entry
    if slot.isascii() and slot.isdigit():
        return False, int(slot), 0
    return True, 0, entry.get("receivedAt", 0)


def job_progress(item: Mapping[str, Any]) -> JobProgress:
    """A job from its plain item (`codec.from_dynamo`)."""
    from ...domain.jobs import JobProgress

    expected = item.get("expected")
    return JobProgress(
        source_id=str(item["pk"]).removeprefix(JOB_PREFIX),
        expected=int(expected) if expected is not None else None,
        finals=int(item.get("finals", 0)),
        bucket=item.get("inputBucket"),
        key=item.get("inputKey"),
        etag=item.get("inputEtag"),
        results_location=item.get("resultsLocation"),
        results_counts=item.get("resultsCounts"),
        announced="announcedAt" in item,
        retry_round=int(item.get("retryRound", 0)),
        held=bool(item.get("retryHeld", False)),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
