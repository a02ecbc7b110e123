"""Jobs: one per S3 input file, counting its final tasks so that "all final" is known without a Scan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
    retry_round: int = 0  # 0 until a retry (`domain.retries`); each retry round adds one
    held: bool = False  # a retry round is reopening tasks: not complete whatever the counts say

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.finals >= self.expected and not self.held


class TotalMismatch(RuntimeError):
    """The file's task count differs from the one recorded before: the same bytes gave other tasks."""


def has_job(source_id: str) -> bool:
    """Only S3 input files have jobs (and results files); SQS messages do not."""
    return source_id.startswith("s3://")


@dataclass(frozen=True)
class JobBecameComplete:
    """A change of the tasks table in which one job's last task was counted."""

    sequence_number: str
    job: JobProgress
