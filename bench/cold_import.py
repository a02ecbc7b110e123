"""Benchmark 1: cold import of the webhook handler module vs `import boto3`, fresh interpreters.

Each sample is one new interpreter with the function's code and the layer first on sys.path and the
environment the template sets; the clock runs around the import statement only (interpreter start-up
is the same for both and excluded). Subject and baseline alternate, one untimed warm-up each.
"""

from __future__ import annotations

import argparse

from bench import harness
from bench.stats import Report

_CHILD = """
import json, sys, time
sys.path[:0] = {path!r}
start = time.perf_counter()
import {module}
elapsed = time.perf_counter() - start
print({prefix!r} + json.dumps(elapsed))
"""


def import_seconds(name: str, module: str) -> float:
    code = _CHILD.format(path=harness.lambda_sys_path(name), module=module, prefix=harness.RESULT_PREFIX)
    return float(harness.run_child(code, harness.child_env(harness.static_lambda_env(name))))


def measure(name: str, target: float, runs: int) -> Report:
    import_seconds(name, "boto3")  # warm the shared bytecode cache, untimed
    import_seconds(name, "app")
    subject, baseline = harness.interleaved(
        runs, lambda: import_seconds(name, "app"), lambda: import_seconds(name, "boto3")
    )
    return harness.timing_ratio_report(
        f"cold import: functions/{name}/app.py vs import boto3 ({runs} fresh interpreters each)",
        f"{name} handler import / boto3 import (median)",
        subject,
        baseline,
        target,
    )


def run(args: argparse.Namespace) -> Report:
    return measure("webhook", 1.2, 8 if args.quick else 40)


if __name__ == "__main__":
    harness.main(run)
