"""Statistics and verdicts shared by the benchmarks (pure functions, unit-tested)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Direction = Literal["max", "min"]  # "max": the ratio must not exceed the target; "min": must reach it


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("no values")
    return float(statistics.median(values))


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 5,000 samples is the 4,950th smallest)."""
    if not values:
        raise ValueError("no values")
    if not 0 < pct <= 100:
        raise ValueError("pct must be in (0, 100]")
    ordered = sorted(values)
    rank = math.ceil(pct / 100 * len(ordered))
    return float(ordered[max(rank, 1) - 1])


@dataclass
class Check:
    """One figure against its target: `ratio` is subject/baseline (or an absolute value, baseline None)."""

    name: str
    ratio: float
    target: float
    direction: Direction = "max"
    unit: str = "x"
    subject: float | None = None
    baseline: float | None = None
    detail: str = ""
    informational: bool = False  # shown, not judged

    @property
    def passed(self) -> bool:
        if self.direction == "max":
            return self.ratio <= self.target
        return self.ratio >= self.target

    @property
    def verdict(self) -> str:
        if self.informational:
            return "info"
        return "PASS" if self.passed else "MISS"

    def line(self) -> str:
        sign = "<=" if self.direction == "max" else ">="
        figures = ""
        if self.subject is not None and self.baseline is not None:
            figures = f"  (subject {self.subject:.4g}, baseline {self.baseline:.4g})"
        elif self.subject is not None:
            figures = f"  (measured {self.subject:.4g})"
        return (
            f"{self.verdict:4}  {self.name:<48} {self.ratio:8.3f}{self.unit}  target {sign} {self.target:g}"
            f"{self.unit}{figures}{'  ' + self.detail if self.detail else ''}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


@dataclass
class Report:
    benchmark: str
    checks: list[Check] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    # What the capacity plan and the cost model take from this run, by their field names
    # (bench.capacity_plan.Measured, bench.cost.Workload).
    figures: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "checks": [c.to_dict() for c in self.checks],
            "notes": self.notes,
            "figures": self.figures,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Report:
        checks = [Check(**{k: v for k, v in c.items() if k != "verdict"}) for c in raw["checks"]]
        return cls(raw["benchmark"], checks, raw.get("notes", {}), raw.get("figures", {}))
