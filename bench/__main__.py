"""`python -m bench` (= `make bench`): every benchmark in its own interpreter, then one summary.

Each benchmark prints its own lines as it finishes; the summary repeats every check with its verdict.
Exit status 1 when any check is a MISS. `--quick` runs each with few repetitions (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from bench import harness
from bench.capacity_plan import Measured, Plan, with_figures
from bench.capacity_plan import render as render_plan
from bench.cost import Workload
from bench.cost import render as render_cost
from bench.stats import Report

BENCHMARKS: list[tuple[str, list[str]]] = [
    ("bench.cold_import", []),
    ("bench.cold_start", []),
    ("bench.cold_import_submit", []),
    ("bench.cold_import_others", []),
    ("bench.warm_webhook", []),
    # Small ranges, so that an object quick to generate is cut into several, as a large file is by default.
    ("bench.submit_throughput", ["--large-lines", "50000", "--range-bytes", "1048576"]),
    ("bench.submit_memory", []),
    ("bench.capacity", []),
    ("bench.write_units", []),
    ("bench.reconcile_rate", []),
    ("bench.results_rate", []),
    ("bench.webhook_environment", []),
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", help="module name(s) to run, e.g. bench.capacity")
    args = parser.parse_args()
    reports: list[Report] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        for module, extra in BENCHMARKS:
            if args.only and module not in args.only:
                continue
            out = Path(scratch) / f"{module}.json"
            command = [sys.executable, "-m", module, "--json", str(out), *extra]
            if args.quick:
                command.append("--quick")
            done = subprocess.run(command, cwd=harness.ROOT, check=False)
            if done.returncode or not out.exists():
                print(f"!! {module} failed with exit status {done.returncode}")
                return 2
            reports.append(Report.from_dict(json.loads(out.read_text())))
    print(f"\n==== summary ({time.monotonic() - started:.0f} s, {time.strftime('%Y-%m-%d %H:%M')})")
    missed = False
    for report in reports:
        for check in report.checks:
            print("  " + check.line())
            missed = missed or check.verdict == "MISS"
    print("\n".join(scaled_on_paper({k: v for report in reports for k, v in report.figures.items()})))
    return 1 if missed else 0


def scaled_on_paper(figures: dict[str, float]) -> list[str]:
    """The capacity plan and the cost of a million tasks, from this run's figures where it measured them
    (the others: the defaults of `bench.capacity_plan.Measured` and `bench.cost.Workload`)."""
    measured, workload = with_figures(Measured(), figures), with_figures(Workload(), figures)
    known = {spec.name for group in (Measured, Workload) for spec in fields(group)}
    taken = sorted(name for name in figures if name in known)
    source = f"this run's {', '.join(taken)}" if taken else "no figure of this run"
    return [
        f"\n==== capacity plan (docs/capacity.md), with {source}",
        *render_plan(Plan(), measured),
        f"\n==== cost of a million tasks on AWS (bench/README.md), with {source}",
        *render_cost(measured, workload),
    ]


if __name__ == "__main__":
    sys.exit(main())
