"""What one million tasks cost on AWS, from the counts and rates `make bench` measured.

    .venv/bin/python -m bench.cost                          # the capacity plan's figures (bench/README.md)
    .venv/bin/python -m bench.cost --results-per-task 2 --item-kb 3   # another workload

`make bench` prints the same table, and the capacity plan, from the figures of its own run.

Three kinds of input, kept apart:
- `Measured` (bench.capacity_plan): per-task counts and per-environment rates from the benchmarks;
- `Workload`: what the tasks are like (results each, file size, item size), and the template's sizing;
- `Prices`: AWS's published on-demand prices (us-east-1, arm64).

Lambda bills an invocation's wall time at its MemorySize. A webhook's is its CPU at the memory's share of a
vCPU, or its CPU plus DynamoDB's round trip if that is longer (docs/capacity.md, Lambda); the submitter's
and the results consumer's are what one environment took a task or a batch here.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from bench.capacity_plan import Measured, add_options, from_options

MILLION = 1_000_000


@dataclass(frozen=True)
class Prices:
    """AWS's published on-demand prices, us-east-1, arm64 (USD)."""

    dynamodb_write_unit: float = 0.625 / MILLION
    dynamodb_read_unit: float = 0.125 / MILLION
    dynamodb_gb_month: float = 0.25
    lambda_request: float = 0.20 / MILLION
    lambda_gb_second: float = 0.0000133334
    http_api_request: float = 1.00 / MILLION
    eventbridge_event: float = 1.00 / MILLION
    sqs_request: float = 0.40 / MILLION
    s3_put: float = 0.005 / 1_000
    s3_get: float = 0.0004 / 1_000


@dataclass(frozen=True)
class Workload:
    """What the million tasks are like, and how the template sizes the functions."""

    results_per_task: int = 1
    tasks_per_file: float = 10_000.0  # lines of one JSONL object
    item_kb: float = 1.0  # a completed task's item: a small result inline
    retention_days: float = 30.0  # template: TaskRetentionDays
    webhook_loss: float = 0.02  # share of webhooks Runware never delivers (the reconciler polls them)
    records_per_batch: float = 100.0  # template: the stream event source's BatchSize
    dynamodb_round_trip_seconds: float = 0.005  # in-region; not measured here
    submit_memory_mb: float = 1024.0  # template: MemorySize of each
    results_memory_mb: float = 512.0
    reconcile_memory_mb: float = 512.0
    # A file's messages: S3's notification (a file cut into ranges, or continued, queues more). Each is
    # an invocation of the submitter and three SQS requests: sent, received, deleted.
    messages_per_file: float = 1.0


@dataclass(frozen=True)
class Cost:
    item: str
    quantity: float  # per million tasks
    unit: str
    unit_price: float  # USD

    @property
    def usd(self) -> float:
        return self.quantity * self.unit_price

    def render(self) -> str:
        return f"  {self.item:42} {self.quantity:>14,.1f} {self.unit:10} ${self.usd:8.3f}"


def gb_seconds(seconds: float, memory_mb: float) -> float:
    return seconds * memory_mb / 1024


def webhook_duration_seconds(measured: Measured, workload: Workload) -> float:
    """One webhook's billed duration: whole milliseconds, rounded up."""
    waiting = measured.webhook_cpu_seconds + workload.dynamodb_round_trip_seconds
    return math.ceil(max(measured.webhook_seconds, waiting) * 1000 - 1e-9) / 1000


def costs(measured: Measured, workload: Workload, prices: Prices) -> list[Cost]:
    tasks = float(MILLION)
    webhooks = tasks * workload.results_per_task
    files = tasks / workload.tasks_per_file
    batches = tasks / workload.records_per_batch
    healed = webhooks * workload.webhook_loss
    webhook_seconds = webhooks * webhook_duration_seconds(measured, workload)
    messages = files * workload.messages_per_file
    invocations = webhooks + messages + batches  # the submitter's: a message each; the results': a batch
    lambda_gbs = prices.lambda_gb_second
    return [
        Cost("DynamoDB writes (table and indexes)", tasks * measured.write_units_per_task, "WRU",
             prices.dynamodb_write_unit),
        Cost("DynamoDB reads", tasks * measured.read_units_per_task, "RRU", prices.dynamodb_read_unit),
        Cost("DynamoDB storage", tasks * workload.item_kb / MILLION * workload.retention_days / 30,
             "GB-months", prices.dynamodb_gb_month),
        Cost("Lambda requests", invocations, "requests", prices.lambda_request),
        Cost("Lambda webhook", gb_seconds(webhook_seconds, measured.webhook_memory_mb), "GB-s", lambda_gbs),
        Cost("Lambda submit", gb_seconds(tasks / measured.submit_tasks_per_second, workload.submit_memory_mb),
             "GB-s", lambda_gbs),
        Cost("Lambda results", gb_seconds(batches * measured.results_seconds_per_batch,
                                          workload.results_memory_mb), "GB-s", lambda_gbs),
        Cost("Lambda reconcile (lost webhooks healed)", gb_seconds(
            healed / measured.reconcile_tasks_per_second, workload.reconcile_memory_mb), "GB-s", lambda_gbs),
        Cost("HTTP API (webhooks)", webhooks, "requests", prices.http_api_request),
        Cost("EventBridge (TaskCompleted, JobCompleted)", tasks + files, "events", prices.eventbridge_event),
        Cost("SQS", 3 * messages, "requests", prices.sqs_request),
        Cost("S3 (input read, results file)", 2 * files, "requests", (prices.s3_get + prices.s3_put) / 2),
    ]  # fmt: skip


def render(measured: Measured, workload: Workload, prices: Prices = Prices()) -> list[str]:
    found = costs(measured, workload, prices)
    total = sum(cost.usd for cost in found)
    dynamodb = sum(cost.usd for cost in found if cost.item.startswith("DynamoDB"))
    duration = webhook_duration_seconds(measured, workload) * 1000
    return [
        f"{MILLION:,} tasks of a file of {workload.tasks_per_file:,.0f} lines, {workload.results_per_task} "
        f"result(s) each, a webhook billed {duration:.0f} ms at {measured.webhook_memory_mb:.0f} MB",
        *(cost.render() for cost in found),
        f"  {'total':42} {'':>14} {'':10} ${total:8.3f}  (DynamoDB {dynamodb / total:.0%})",
        "  not per task: CloudWatch alarms, dashboard and custom metrics; the reconciler's 288 runs a day",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_options(parser, Workload, Measured)
    args = parser.parse_args()
    print("\n".join(render(from_options(args, Measured), from_options(args, Workload))))


if __name__ == "__main__":
    main()
