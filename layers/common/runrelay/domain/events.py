"""EventBridge events for downstream pipelines: `TaskCompleted` (any final status) and `JobCompleted`.

Source `runrelay`. Details carry ids and locations, never prompt or completion text (events are
limited to 256 KB and may be routed to places the text must not go). `eventKey` is unique per task /
job: a consumer that must never act twice (a crash between PutEvents and our bookkeeping can repeat
an event) deduplicates on it. A retried task's attempt, and a job's retry round, are events of their own
(`attempt` / `round` in the detail, and in the key when not 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .errors import bounded_error
from .jobs import JobProgress
from .tasks import TaskRecord, summed_cost

EVENT_SOURCE = "runrelay"
TASK_COMPLETED = "TaskCompleted"
JOB_COMPLETED = "JobCompleted"


@dataclass(frozen=True)
class Event:
    detail_type: str
    detail: dict[str, Any]


def task_completed(task: TaskRecord) -> Event:
    """From a final task."""
    error = task.error
    detail = {
        "eventKey": f"{TASK_COMPLETED}#{task.task_uuid}{_numbered('attempt', task.attempt)}",
        "taskUUID": task.task_uuid,
        "status": task.status.value,
        "sourceId": task.source_id,
        "line": task.source_seq,
        "callerId": task.caller_id,
        "numberResults": task.number_results,
        "resultCount": task.result_count,
        "cost": summed_cost(task.results),
        # Bounded again for rows stored before errors were (`errors.bounded_error`).
        "error": bounded_error({"code": error.get("code"), "message": error.get("message")})
        if error
        else None,
        "completedAt": task.completed_at,
        "attempt": task.attempt,
    }
    return Event(TASK_COMPLETED, detail)


def job_completed(job: JobProgress) -> Event:
    """From a job whose results file is written (`results_location` and `results_counts` set)."""
    bucket, _, key = (job.results_location or "").removeprefix("s3://").partition("/")
    detail = {
        "eventKey": f"{JOB_COMPLETED}#{job.source_id}{_numbered('round', job.retry_round)}",
        "sourceId": job.source_id,
        "bucket": job.bucket,
        "key": job.key,
        "etag": job.etag,
        "counts": {"total": job.expected, **(job.results_counts or {})},
        "results": {"uri": job.results_location, "bucket": bucket, "key": key},
        "completedAt": round(time.time(), 3),
        "round": job.retry_round,
    }
    return Event(JOB_COMPLETED, detail)


def _numbered(name: str, number: int) -> str:
    """The key suffix of a retried attempt or round (none for the first, so first keys never change)."""
    return f"#{name}{number}" if number else ""
