"""Benchmark 3b: cold import of the reconcile and results handler modules vs `import boto3` (see
bench.cold_import); the submit handler's is benchmark 3."""

from __future__ import annotations

import argparse

from bench import harness
from bench.cold_import import measure
from bench.stats import Report


def run(args: argparse.Namespace) -> Report:
    names = ("reconcile", "results")
    reports = {name: measure(name, 1.5, 8 if args.quick else 40) for name in names}
    return Report(
        "cold import: functions/reconcile/app.py and functions/results/app.py vs import boto3",
        [check for report in reports.values() for check in report.checks],
        notes={
            f"{name}: {key}": value for name, report in reports.items() for key, value in report.notes.items()
        },
    )


if __name__ == "__main__":
    harness.main(run)
