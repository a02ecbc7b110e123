"""The table's stream records, read as domain changes: a task that became final, a job that completed.

Each is a transition that happens in exactly one stream record, so duplicate webhooks and
reconcile/webhook races (which never make a second transition) produce nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...domain.jobs import JobBecameComplete
from ...domain.tasks import FINAL_STATUSES, TaskBecameFinal
from .codec import from_dynamo
from .schema import is_job_item, is_task_item, job_progress, task_record

TableChange = TaskBecameFinal | JobBecameComplete


def table_changes(records: Iterable[Mapping[str, Any]]) -> list[TableChange]:
    """The changes that matter among DynamoDB stream records (Lambda's event shape), in order."""
    changes: list[TableChange] = []
    for record in records:
        change = table_change(record)
        if change is not None:
            changes.append(change)
    return changes


def table_change(record: Mapping[str, Any]) -> TableChange | None:
    change = record.get("dynamodb") or {}
    keys = change.get("Keys") or {}
    new, old = change.get("NewImage"), change.get("OldImage")
    if not new:
        return None
    new, old = repaired_image(new), repaired_image(old) if old else None
    sequence_number = str(change.get("SequenceNumber", ""))
    if is_job_item(keys):
        job = job_progress(from_dynamo(new))
        if not job.complete or (old and job_progress(from_dynamo(old)).complete):
            return None  # not complete yet, or a later write (our own markers) to a complete job
        return JobBecameComplete(sequence_number, job)
    if not is_task_item(keys) or _status(new) not in FINAL_STATUSES:
        return None
    if old and _status(old) in FINAL_STATUSES:
        return None
    return TaskBecameFinal(sequence_number, task_record(from_dynamo(new)))


def repaired_image(image: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB Local writes an empty map as `{}` in stream images, which is no AttributeValue;
    DynamoDB (and so Lambda) writes `{"M": {}}`. Our items hold no empty lists, only empty maps."""

    def repaired(value: Any) -> Any:
        if value == {}:
            return {"M": {}}
        if isinstance(value, Mapping) and "M" in value:
            return {"M": {k: repaired(v) for k, v in value["M"].items()}}
        if isinstance(value, Mapping) and "L" in value:
            return {"L": [repaired(v) for v in value["L"]]}
        return value

    return {name: repaired(value) for name, value in image.items()}


def _status(image: Mapping[str, Any]) -> str | None:
    value = image.get("status", {})
    return value.get("S") if isinstance(value, Mapping) else None
