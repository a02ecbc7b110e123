"""The benchmarks' statistics helpers (no timing is asserted anywhere)."""

from __future__ import annotations

import pytest

from bench.stats import Check, Report, median, percentile


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_median_of_even_count() -> None:
    assert median([1.0, 3.0, 2.0, 4.0]) == 2.5


def test_check_direction_and_verdicts() -> None:
    assert Check("slow", 1.6, 1.5).verdict == "MISS"
    assert Check("ok", 1.5, 1.5).verdict == "PASS"
    assert Check("speedup", 25, 20, "min").verdict == "PASS"
    assert Check("speedup", 5, 20, "min").verdict == "MISS"
    assert Check("rate", 5, 0, "min", informational=True).verdict == "info"


def test_report_round_trips_through_json_dict() -> None:
    report = Report("b", [Check("c", 1.2, 1.5, subject=12.0, baseline=10.0)], {"n": 1})
    again = Report.from_dict(report.to_dict())
    assert again.checks[0].line() == report.checks[0].line()
    assert again.notes == {"n": 1}
