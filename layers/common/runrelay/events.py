"""EventBridge events for downstream pipelines: `TaskCompleted` (any final status) and `JobCompleted`.

Source `runrelay`. Details carry ids and locations, never prompt or completion text (events are
limited to 256 KB and may be routed to places the text must not go). `eventKey` is unique per task /
job: a consumer that must never act twice (a crash between PutEvents and our bookkeeping can repeat
an event) deduplicates on it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .job_store import JobProgress
from .results_file import summed_cost

EVENT_SOURCE = "runrelay"
TASK_COMPLETED = "TaskCompleted"
JOB_COMPLETED = "JobCompleted"
_PUT_EVENTS_LIMIT = 10
_PUT_ATTEMPTS = 4


@dataclass(frozen=True)
class Event:
    detail_type: str
    detail: dict[str, Any]


class EventsNotDelivered(RuntimeError):
    """EventBridge refused some entries even after retries."""


def task_completed(item: Mapping[str, Any]) -> Event:
    """From a final task item (plain values)."""
    error = item.get("error") or None
    detail = {
        "eventKey": f"{TASK_COMPLETED}#{item['taskUUID']}",
        "taskUUID": item["taskUUID"],
        "status": item["status"],
        "sourceId": item.get("sourceId"),
        "line": item.get("sourceSeq"),
        "callerId": item.get("callerId"),
        "numberResults": item.get("numberResults"),
        "resultCount": item.get("resultCount"),
        "cost": summed_cost((item.get("results") or {}).values()),
        "error": {"code": error.get("code"), "message": error.get("message")} if error else None,
        "completedAt": item.get("completedAt"),
    }
    return Event(TASK_COMPLETED, detail)


def job_completed(job: JobProgress) -> Event:
    """From a job whose results file is written (`results_location` and `results_counts` set)."""
    bucket, _, key = (job.results_location or "").removeprefix("s3://").partition("/")
    detail = {
        "eventKey": f"{JOB_COMPLETED}#{job.source_id}",
        "sourceId": job.source_id,
        "bucket": job.bucket,
        "key": job.key,
        "etag": job.etag,
        "counts": {"total": job.expected, **(job.results_counts or {})},
        "results": {"uri": job.results_location, "bucket": bucket, "key": key},
        "completedAt": round(time.time(), 3),
    }
    return Event(JOB_COMPLETED, detail)


class EventPublisher:
    def __init__(self, bus_name: str, *, events_client: Any) -> None:
        self.bus_name = bus_name
        self.events = events_client

    def publish(self, events: Sequence[Event]) -> None:
        """PutEvents in batches of 10; entries EventBridge refuses are retried, then raise."""
        for start in range(0, len(events), _PUT_EVENTS_LIMIT):
            self._put([self._entry(e) for e in events[start : start + _PUT_EVENTS_LIMIT]])

    def _entry(self, event: Event) -> dict[str, Any]:
        return {
            "Source": EVENT_SOURCE,
            "DetailType": event.detail_type,
            "Detail": json.dumps(event.detail, ensure_ascii=False),
            "EventBusName": self.bus_name,
        }

    def _put(self, entries: list[dict[str, Any]]) -> None:
        for attempt in range(_PUT_ATTEMPTS):
            answer = self.events.put_events(Entries=entries)
            if not answer.get("FailedEntryCount"):
                return
            # Entries answer in request order; only those with an ErrorCode were not accepted.
            entries = [
                entry
                for entry, outcome in zip(entries, answer["Entries"], strict=True)
                if outcome.get("ErrorCode")
            ]
            time.sleep(0.1 * 2**attempt)
        raise EventsNotDelivered(f"{len(entries)} events refused by EventBridge bus {self.bus_name}")
