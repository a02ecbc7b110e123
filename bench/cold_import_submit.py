"""Benchmark 3: cold import of the submit handler module vs `import boto3` (see bench.cold_import)."""

from __future__ import annotations

import argparse

from bench import harness
from bench.cold_import import measure
from bench.stats import Report


def run(args: argparse.Namespace) -> Report:
    return measure("submit", 1.5, 8 if args.quick else 40)


if __name__ == "__main__":
    harness.main(run)
