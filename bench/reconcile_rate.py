"""Benchmark 10: how fast one reconciler run heals lost webhooks, polls in flight against one at a time.

Each round submits a fresh JSONL object through the submit logic (benchmark 5's child) to the Runware
emulator, which drops every webhook: the object's tasks stay PENDING, as after a lost delivery. Then a
child with the reconcile function's Lambda environment runs `ReconcileService.run` on them with the
template's settings except the polls in flight: four (the default) or one (the baseline, what the
reconciler did before). Runware is reached across `bench.wan.WanLink` (20 ms round trip), DynamoDB
Local directly. Every task must come back COMPLETED.

No results consumer runs here, so after each run the bench takes the healed tallies out of the
OpenTasks index as that consumer would: each run sees its own round's tasks only. On this machine
DynamoDB Local, sharing two cores with the rest, bounds the concurrent runs (bench/README.md): the ratio
is a floor, and the target only asks that polls in flight pay at all (a serial reconciler measures
about 1x). The healed tasks per second feed the capacity plan (docs/capacity.md).
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import harness
from bench.stats import Check, Report, median
from bench.submit_throughput import emulator, runware_link, submit_object

_RECONCILE = """
import json, sys, time
sys.path[:0] = {path!r}
import app  # the reconcile handler, as Lambda imports it
from dataclasses import replace
from runrelay import wiring
from runrelay.deadline import Deadline
from runrelay.reconcile_logic import ReconcileService

configured = wiring.reconcile_service()
config = replace(configured.config, overdue_after_seconds=0, polls_in_flight={in_flight})
service = ReconcileService(configured.store, configured.runware, config, configured.cancellation_of)
start = time.perf_counter()
report = service.run(Deadline.after(280), now=time.time() + 1)
elapsed = time.perf_counter() - start
if report.completed != {tasks}:
    raise SystemExit(f"healed {{report.completed}} of {tasks} tasks ({{report}})")
print({prefix!r} + json.dumps({{"seconds": elapsed, "tasks": report.completed, "polls": report.polls}}))
"""


def close_open_tallies(dynamodb: Any, table: str) -> None:
    """What the results consumer does once a tally's lines are final and recorded: out of OpenTasks."""
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table, IndexName="OpenTasks", ProjectionExpression="pk, sk"
    )
    for page in pages:
        for key in page.get("Items", []):
            dynamodb.update_item(TableName=table, Key=key, UpdateExpression="REMOVE openShard, openSince")


def run(args: argparse.Namespace) -> Report:
    tasks = 500 if args.quick else 2000
    rounds = 1 if args.quick else 3
    rates: dict[int, list[float]] = {1: [], 4: []}
    with harness.local_aws("brec") as aws, emulator() as base, runware_link(base, args.rtt) as wan:

        def lose_webhooks_of(tag: str) -> None:
            """A fresh object's tasks submitted, every webhook dropped by the emulator."""
            submit_object(aws, wan, tasks, tag)

        def heal(in_flight: int) -> float:
            code = _RECONCILE.format(
                path=[*harness.lambda_sys_path("reconcile"), str(harness.ROOT)],
                in_flight=in_flight,
                tasks=tasks,
                prefix=harness.RESULT_PREFIX,
            )
            env = aws.function_env("reconcile", {"RUNWARE_API_URL": f"{wan}/v1"})
            out: dict[str, Any] = harness.run_child(code, harness.child_env(env), timeout=900)
            close_open_tallies(aws.clients.dynamodb, aws.stack.table_name)
            return float(out["tasks"] / out["seconds"])

        lose_webhooks_of("warm")  # untimed: DynamoDB Local's JIT warms its write paths
        heal(4)
        for round_no in range(rounds):
            order = (1, 4) if round_no % 2 == 0 else (4, 1)
            for in_flight in order:
                lose_webhooks_of(f"lost{round_no}-{in_flight}")
                rates[in_flight].append(heal(in_flight))
    link = f"{args.rtt * 1000:.0f} ms round trip to Runware" if args.rtt else "loopback"
    return Report(
        f"reconciler: {tasks} lost webhooks healed by one run, four polls in flight vs one ({link})",
        [
            Check(
                "reconcile heal rate, 4 polls in flight / 1",
                median(rates[4]) / median(rates[1]),
                1.3,
                "min",
                subject=median(rates[4]),
                baseline=median(rates[1]),
                detail="tasks/s",
            )
        ],
        notes={f"tasks/s with {n} in flight, per round": [round(r, 1) for r in rates[n]] for n in rates},
        figures={"reconcile_tasks_per_second": median(rates[4])},
    )


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rtt", type=float, default=0.02, help="round-trip seconds of the link to the emulator (0: loopback)"
    )


if __name__ == "__main__":
    harness.main(run, _arguments)
