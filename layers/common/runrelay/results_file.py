"""The results file of one S3 input: `results/<input key>`, one JSON line per task in input order.

Like OpenAI Batch's output file: the caller's id, our taskUUID, the status, the results (text, or an
S3 pointer when the text was offloaded), usage and cost summed over the results, and the error. A
retried line shows its latest attempt (`attempt`, 0 for the first) and what the earlier ones ended with.
Offloaded texts are not inlined: the file stays small enough to stream and the pointer is readable.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from typing import Any

from .domain.tasks import TaskRecord, summed_cost, summed_usage
from .models import DEFAULT_MODEL, ModelEntry
from .ports import ObjectWriter, TaskRepository

RESULTS_PREFIX = "results/"
_SPOOL_BYTES = 8 * 1024 * 1024  # bigger files spill to /tmp and go up as a multipart upload


class TasksNotVisibleYet(RuntimeError):
    """The source's task list (an eventually consistent index) lacks some tasks yet, or a task read
    (eventually consistent too) is not final yet: try again shortly."""


@dataclass(frozen=True)
class WrittenResults:
    bucket: str
    key: str
    lines: int
    counts: dict[str, int]

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def results_key(input_key: str) -> str:
    """The input's own key under `results/`: one input key names one results key, so two inputs never
    share a results file, and the template's InputPrefix may not start with `results/`, so a results file
    is never taken for an input. The body is JSON Lines whatever the input's extension."""
    return f"{RESULTS_PREFIX}{input_key}"


def result_line(task: TaskRecord, model: ModelEntry = DEFAULT_MODEL) -> dict[str, Any]:
    """One output line of a task."""
    results = [model.result_line(entry) for entry in task.results]
    line: dict[str, Any] = {
        "line": task.source_seq,
        "callerId": task.caller_id,
        "taskUUID": task.task_uuid,
        "status": task.status.value,
        "text": results[0].get("text") if len(results) == 1 else None,
        "results": results,
        "usage": summed_usage(task.results),
        "cost": summed_cost(task.results),
        "error": task.error,
        "attempt": task.attempt,
    }
    if task.attempts:
        line["earlierAttempts"] = task.attempts
    if task.metadata:
        line["metadata"] = task.metadata
    return line


class ResultsWriter:
    def __init__(
        self, tasks: TaskRepository, objects: ObjectWriter, model: ModelEntry = DEFAULT_MODEL
    ) -> None:
        self.tasks = tasks
        self.objects = objects
        self.model = model

    def write(self, source_id: str, expected: int, bucket: str, input_key: str) -> WrittenResults:
        """Write the file for a source whose `expected` tasks are all final (raises if not all listed)."""
        uuids = self.tasks.task_uuids_of_source(source_id)
        if len(uuids) < expected:
            raise TasksNotVisibleYet(f"{source_id}: {len(uuids)} of {expected} tasks listed")
        counts: dict[str, int] = {}
        lines = 0
        key = results_key(input_key)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            # Every task is final once the job is complete; an eventually consistent read (half the
            # read units) that still shows one open is a moment behind, and the file is written again.
            for task in self.tasks.tasks_in_order(uuids, consistent=False):
                if not task.is_final:
                    raise TasksNotVisibleYet(f"{source_id}: {task.task_uuid} is not final yet as read")
                line = result_line(task, self.model)
                counts[line["status"]] = counts.get(line["status"], 0) + 1
                spool.write(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
                lines += 1
            if lines < expected:
                # A task listed by its line whose row cannot be read yet (a row listed in BySource whose
                # entry is a moment behind is read under the line's taskUUID instead, and not found).
                raise TasksNotVisibleYet(f"{source_id}: {lines} of {expected} tasks could be read")
            spool.seek(0)
            self.objects.upload(bucket, key, spool, "application/x-ndjson")
        return WrittenResults(bucket=bucket, key=key, lines=lines, counts=counts)
