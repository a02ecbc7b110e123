"""Spend caps: a budget per source (a file or an SQS message) and one per UTC day for the whole stack.

What a budget holds is `committed` dollars: the recorded cost of every task made final under it
(Runware's `cost`, always requested), plus an estimate for every task sent and not final yet. Before a
chunk is sent the submitter reserves the chunk's estimate with one conditional write that succeeds only
while `committed` stays within the budget, so many submitters at once can never pass it together. When a
task becomes final, the results consumer replaces its estimate by its real cost, in the same transaction
that counts the task in its job: exactly once, however often the webhook or the stream record came.

A chunk whose reservation is refused is not sent: its lines, and every later line of that source in the
same invocation, end CANCELLED with the error code `budgetExceeded`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

BUDGET_EXCEEDED_CODE = "budgetExceeded"
DAY = "day"
SOURCE = "source"


@dataclass(frozen=True)
class Budget:
    scope: str  # DAY or SOURCE
    name: str  # the UTC date (YYYY-MM-DD) or the source id
    limit_usd: float

    def exceeded_error(self, reserving_usd: float) -> dict[str, Any]:
        what = f"the daily budget of {self.name}" if self.scope == DAY else f"the budget of {self.name}"
        return {
            "code": BUDGET_EXCEEDED_CODE,
            "message": f"not sent: {what} ({self.limit_usd} USD) has no room for {reserving_usd:.6f} more",
            "scope": self.scope,
            "budgetUSD": self.limit_usd,
        }


def daily_budget(limit_usd: float, now: float) -> Budget:
    return Budget(DAY, datetime.fromtimestamp(now, UTC).date().isoformat(), limit_usd)


@dataclass(frozen=True)
class Reservation:
    """What a task sent under budgets reserved, kept on its row until it is settled."""

    reserved_usd: float
    day: str | None = None  # the daily budget it counts against, if any
    source: bool = False  # whether its source had a budget

    def as_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"reservedUSD": self.reserved_usd, "source": self.source}
        if self.day is not None:
            document["day"] = self.day
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any] | None) -> Reservation | None:
        if not document:
            return None
        day = document.get("day")
        return cls(
            float(document.get("reservedUSD", 0)), str(day) if day else None, bool(document.get("source"))
        )

    def budgets_of(self, source_id: str) -> list[tuple[str, str]]:
        """The (scope, name) of each budget this reservation counts against."""
        scopes = [(DAY, self.day)] if self.day is not None else []
        return scopes + ([(SOURCE, source_id)] if self.source else [])


@dataclass(frozen=True)
class Settlement:
    """A final task's change to the budgets it was sent under: its real cost in, its estimate out (the
    estimate only once: a retried attempt was sent without a new reservation)."""

    source_id: str
    reservation: Reservation
    cost_usd: float
    attempt: int = 0

    @property
    def change_usd(self) -> float:
        return self.cost_usd - (self.reservation.reserved_usd if self.attempt == 0 else 0.0)
