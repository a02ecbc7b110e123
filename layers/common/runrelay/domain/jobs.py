"""Jobs: one per S3 input file, counting its final tasks so that "all final" is known without a Scan.

Each final attempt of a task is recorded once (`FinalLine`): counted in its file's job, its budgets
settled, its TaskCompleted event sent. What was recorded is kept per tally, one per `TALLY_LINES`
consecutive lines of a source: a set of marks (line and attempt), so that recording a whole stream
batch's finals of one tally is one write, and a line recorded before is known from the mark already in
the set, however often its stream record comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..task_ids import MAX_ATTEMPTS

if TYPE_CHECKING:  # the webhook imports this module; budgets are the results consumer's
    from .budgets import Settlement

# Lines of a source per tally: a tally's marks must fit in one write's condition (DynamoDB's 4 KB and
# 300 operators per expression) and keep the item near 1 KB.
TALLY_LINES = 100
_ATTEMPT_SLOTS = 16  # marks per line: one per attempt
assert MAX_ATTEMPTS <= _ATTEMPT_SLOTS


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


def tally_of(seq: int) -> int:
    """Which tally of its source a line is kept in."""
    return seq // TALLY_LINES


@dataclass(frozen=True)
class FinalLine:
    """An attempt of a task that became final, to be recorded once (`JobRepository.record_finals`)."""

    task_uuid: str
    source_id: str
    seq: int  # the task's line (position) in its source
    attempt: int = 0
    settlement: Settlement | None = field(default=None, compare=False)

    @property
    def tally(self) -> int:
        """Which tally of its source records it."""
        return tally_of(self.seq)

    @property
    def mark(self) -> int:
        """What its tally keeps once it is recorded: the line and the attempt in one number."""
        return self.seq * _ATTEMPT_SLOTS + self.attempt


@dataclass(frozen=True)
class JobBecameComplete:
    """A change of the tasks table in which one job's last task was counted."""

    sequence_number: str
    job: JobProgress
