"""One final task at a time through `JobRepository.record_finals` / `unrecorded`, for tests.

A task's line in its source is what its tally keys on; tests that name tasks by taskUUID alone get a
line derived from it (stable, and distinct between tasks with overwhelming likelihood), unless they
pass the real one.
"""

from __future__ import annotations

from runrelay.domain.budgets import Settlement
from runrelay.domain.jobs import FinalLine
from runrelay.ports import JobRepository


def line_of(task_uuid: str) -> int:
    return int(task_uuid.replace("-", "")[:6], 16)


def final_line(
    task_uuid: str,
    source_id: str,
    attempt: int = 0,
    settlement: Settlement | None = None,
    *,
    seq: int | None = None,
) -> FinalLine:
    return FinalLine(task_uuid, source_id, line_of(task_uuid) if seq is None else seq, attempt, settlement)


def record_final(
    jobs: JobRepository,
    task_uuid: str,
    source_id: str,
    attempt: int = 0,
    settlement: Settlement | None = None,
    *,
    seq: int | None = None,
) -> bool:
    """Whether this call recorded it (False: recorded before)."""
    return bool(jobs.record_finals([final_line(task_uuid, source_id, attempt, settlement, seq=seq)]))


def final_recorded(
    jobs: JobRepository, task_uuid: str, source_id: str, attempt: int = 0, *, seq: int | None = None
) -> bool:
    return not jobs.unrecorded([final_line(task_uuid, source_id, attempt, seq=seq)])
