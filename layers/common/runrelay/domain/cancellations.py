"""Cancelling a source (a file or an SQS message): its lines not yet sent to Runware are never sent.

A cancellation is recorded once per source and never lifted. The submitter reads it before each chunk it
sends: from then on the source's lines are written CANCELLED instead of PENDING (still one row per line,
so the job closes and its results file lists every line), and rows left PENDING by an earlier attempt
are not sent again. A PENDING row may be at Runware (nothing is written after the POST): it stays open,
and the reconciler cancels it once Runware answers that it never had it. Tasks Runware already has cannot
be cancelled (Runware has no cancel): their results are stored when they arrive, and they are billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CANCELLED_CODE = "cancelled"


@dataclass(frozen=True)
class Cancellation:
    source_id: str
    requested_by: str
    requested_at: float  # epoch seconds

    def error(self) -> dict[str, Any]:
        """What a cancelled task's `error` says: who cancelled its source, and when."""
        when = datetime.fromtimestamp(self.requested_at, UTC).isoformat(timespec="seconds")
        return {
            "code": CANCELLED_CODE,
            "message": f"{self.source_id} was cancelled by {self.requested_by} at {when}",
            "requestedBy": self.requested_by,
            "cancelledAt": when,
        }
