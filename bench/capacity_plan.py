"""The capacity plan's arithmetic: what 100 million tasks a day asks of each part of the stack, against
the limit that applies, and what fails first (docs/capacity.md explains each line).

    .venv/bin/python -m bench.capacity_plan                       # 100M/day, bursts 10x, defaults below
    .venv/bin/python -m bench.capacity_plan --tasks-per-day 2e8 --results-per-task 2 --webhook-loss 0.05

Two kinds of input, kept apart: figures measured on this machine by `make bench` (`Measured`, with the
benchmark that gives each), and AWS's published default quotas (`Quotas`; most are soft and raised by a
quota request). The model of the code's behaviour is in the functions below: how many writes and index
writes a task makes (the write plan of docs/guarantees.md), how the results consumer groups a stream
batch by tally, how much the reconciler polls per run.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

ONE_VCPU_MB = 1769  # AWS Lambda: a function has the equivalent of one vCPU at 1,769 MB


@dataclass(frozen=True)
class Measured:
    """From `make bench` (bench/README.md): each is a per-environment or per-task figure."""

    # Benchmark 12: the CPU one webhook takes in its environment, runtime client and handler included
    # (the slow end of its runs). An environment kept busy gets its memory's share of a vCPU, so it is
    # busy `webhook_seconds` a webhook; DynamoDB's round trip fits inside (docs/capacity.md, Lambda).
    webhook_cpu_seconds: float = 0.0024
    webhook_memory_mb: float = 512.0  # template.yaml's MemorySize
    submit_tasks_per_second: float = 961.0  # benchmark 5: one submitter, 20 ms to Runware
    write_units_per_task: float = 2.51  # benchmark 8: table and indexes, submit to final
    read_units_per_task: float = 0.65  # benchmark 8
    reconcile_tasks_per_second: float = 542.0  # benchmark 10: one run healing lost webhooks, 20 ms away
    # benchmark 11: one stream batch of 100 completions (events, tallies, job), each batch spanning up to
    # 30 tallies of a file (written in one transaction)
    results_seconds_per_batch: float = 0.17

    @property
    def webhook_seconds(self) -> float:
        return self.webhook_cpu_seconds * ONE_VCPU_MB / self.webhook_memory_mb


@dataclass(frozen=True)
class Quotas:
    """AWS's default quotas per account and region (soft unless said), as published."""

    lambda_concurrency: int = 1_000  # concurrent executions, all functions
    lambda_scale_per_10s: int = 1_000  # each function may add this many environments every 10 s
    sqs_event_source_max_concurrency: int = 1_000  # ScalingConfig.MaximumConcurrency ceiling (hard)
    http_api_rps: int = 10_000  # API Gateway HTTP API, per account and region
    http_api_burst: int = 5_000
    dynamodb_table_wru: int = 40_000  # on-demand table maximum, per second
    dynamodb_table_rru: int = 40_000
    dynamodb_partition_wcu: int = 1_000  # per partition (hard): one item or one index key's writes
    eventbridge_put_events_rps: int = 10_000  # PutEvents requests (us-east-1, us-west-2, eu-west-1)
    stream_parallelization: int = 10  # ParallelizationFactor maximum per shard (hard)


@dataclass(frozen=True)
class Plan:
    tasks_per_day: float = 100e6
    burst_factor: float = 10.0
    results_per_task: int = 1
    webhook_loss: float = 0.02  # share of webhooks Runware never delivers (the reconciler polls them)
    largest_file_share: float = 1.0  # share of the burst coming from one file (its job and BySource keys)
    records_per_batch: float = 100.0  # template: the stream event source's BatchSize
    submit_max_concurrency: int = 10  # template: SubmitMaxConcurrency
    parallelization_factor: int = 1  # template: ResultsParallelizationFactor (1 by default, up to 10)
    open_shards: int = 4  # DynamoTaskRepository.open_shards
    reconcile_tasks_per_run: int = 20_000  # template: ReconcileMaxTasksPerRun
    reconcile_period_seconds: float = 300.0  # template: rate(5 minutes)
    reconcile_run_seconds: float = 290.0  # template: the function's Timeout (300 s) less its reserves
    tally_lines: int = 100  # domain.jobs.TALLY_LINES


@dataclass(frozen=True)
class Line:
    part: str
    needs: float
    limit: float
    unit: str
    moves_it: str

    @property
    def load(self) -> float:
        return self.needs / self.limit

    def render(self) -> str:
        verdict = "FAILS" if self.load > 1 else "ok"
        return (
            f"  {verdict:5}  {self.part:56} {self.needs:>12,.0f} of {self.limit:>10,.0f} {self.unit:10} "
            f"({self.load:4.0%})  {self.moves_it}"
        )


def lines(plan: Plan, measured: Measured, quotas: Quotas) -> list[Line]:
    average = plan.tasks_per_day / 86_400
    burst = average * plan.burst_factor
    webhooks = burst * plan.results_per_task
    webhook_environments = webhooks * measured.webhook_seconds
    submitters = burst / measured.submit_tasks_per_second
    write_units = burst * measured.write_units_per_task
    tallies_per_second = burst / plan.tally_lines
    # The results consumer: one transaction per file per stream batch (up to 32 of its tallies), each
    # writing the job item once (2 units, transactional).
    file_burst = burst * plan.largest_file_share
    job_item_units = file_burst / plan.records_per_batch * 2
    shards = max(1, math.ceil(write_units / quotas.dynamodb_partition_wcu))  # a stream shard per partition
    results_batches = burst / plan.records_per_batch
    lost = average * plan.results_per_task * plan.webhook_loss
    # A run ends at its cap or its time limit, whichever comes first.
    run_limit = measured.reconcile_tasks_per_second * plan.reconcile_run_seconds
    reconcile_rate = min(plan.reconcile_tasks_per_run, run_limit) / plan.reconcile_period_seconds
    return [
        Line("Submit: environments for the burst (SQS MaximumConcurrency)", submitters,
             plan.submit_max_concurrency, "envs", "SubmitMaxConcurrency (the event source's, up to 1,000)"),
        Line("Webhook: concurrent environments for the burst", webhook_environments,
             quotas.lambda_concurrency, "envs", "Lambda concurrency quota (shared by all functions)"),
        Line("API Gateway: webhook requests per second", webhooks, quotas.http_api_rps, "req/s",
             "HTTP API account throttle quota (or a stage per tenant)"),
        Line("DynamoDB: write units per second, table and indexes", write_units, quotas.dynamodb_table_wru,
             "WRU/s", "on-demand table maximum (quota), warm throughput before a launch"),
        Line("DynamoDB: read units per second", burst * measured.read_units_per_task,
             quotas.dynamodb_table_rru, "RRU/s", "on-demand table maximum (quota)"),
        Line("DynamoDB: BySource writes of the largest file (one key)", file_burst / plan.tally_lines,
             quotas.dynamodb_partition_wcu, "WCU/s", "one entry per tally of 100 lines; split the file"),
        Line("DynamoDB: writes to the largest file's JOB item", job_item_units,
             quotas.dynamodb_partition_wcu, "WCU/s", "bigger stream batches (BatchSize); split the file"),
        Line("DynamoDB: OpenTasks index writes per shard", tallies_per_second * 2 / plan.open_shards,
             quotas.dynamodb_partition_wcu, "WCU/s", "DynamoTaskRepository.open_shards"),
        Line("Results: environments for the stream batches", results_batches
             * measured.results_seconds_per_batch, shards * plan.parallelization_factor, "envs",
             f"ResultsParallelizationFactor (1-{quotas.stream_parallelization} per shard)"),
        Line("EventBridge: PutEvents requests per second (10 entries each)", math.ceil(burst / 10),
             quotas.eventbridge_put_events_rps, "req/s", "PutEvents quota (lower outside 3 regions)"),
        Line("Reconciler: lost webhooks per second vs tasks polled per second", lost, reconcile_rate,
             "tasks/s", f"ReconcileMaxTasksPerRun (a run's time allows ~{run_limit:,.0f}), the schedule"),
    ]  # fmt: skip


def add_options(parser: argparse.ArgumentParser, *groups: type) -> None:
    """A `--name` option for each field of the dataclasses `groups` (numbers; unset keeps the default)."""
    for group in groups:
        for spec in fields(group):
            parser.add_argument(f"--{spec.name.replace('_', '-')}", type=float, default=None)


def from_options(args: argparse.Namespace, group: type[T]) -> T:
    """An instance of `group` (a dataclass given to `add_options`) with the options that were set."""
    return with_figures(group(), {name: value for name, value in vars(args).items() if value is not None})


def with_figures(base: T, figures: Mapping[str, float]) -> T:
    """`base` with those of `figures` that name its fields, each converted to the field's type."""
    known = {spec.name for spec in fields(base)}
    converted = {name: type(getattr(base, name))(value) for name, value in figures.items() if name in known}
    return replace(base, **converted)


def render(plan: Plan, measured: Measured, quotas: Quotas = Quotas()) -> list[str]:
    average = plan.tasks_per_day / 86_400
    header = (
        f"{plan.tasks_per_day:,.0f} tasks a day: {average:,.0f}/s on average, bursts of "
        f"{average * plan.burst_factor:,.0f}/s, {plan.results_per_task} result(s) a task"
    )
    ordered = sorted(lines(plan, measured, quotas), key=lambda line: -line.load)
    return [header, *(line.render() for line in ordered)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_options(parser, Plan, Measured)
    args = parser.parse_args()
    print("\n".join(render(from_options(args, Plan), from_options(args, Measured))))


if __name__ == "__main__":
    main()
