"""The cost model (bench/cost.py) and how `make bench` feeds it, and the capacity plan, its own figures."""

from __future__ import annotations

import argparse

import pytest

from bench.__main__ import scaled_on_paper
from bench.capacity_plan import Measured, Plan, add_options, from_options, with_figures
from bench.cost import Prices, Workload, costs, render, webhook_duration_seconds
from bench.stats import Check, Report

ROUND = Measured(
    webhook_cpu_seconds=0.002,
    webhook_memory_mb=1769,  # a whole vCPU: the webhook is busy for its CPU time
    submit_tasks_per_second=1024,
    write_units_per_task=4,
    read_units_per_task=1,
    reconcile_tasks_per_second=500,
    results_seconds_per_batch=0.2,
)


def by_item(measured: Measured, workload: Workload) -> dict[str, float]:
    return {cost.item: cost.usd for cost in costs(measured, workload, Prices())}


def test_dynamodb_is_billed_by_the_measured_units_per_task() -> None:
    found = by_item(ROUND, Workload())
    assert found["DynamoDB writes (table and indexes)"] == pytest.approx(4 * 0.625)
    assert found["DynamoDB reads"] == pytest.approx(0.125)
    assert found["DynamoDB storage"] == pytest.approx(0.25)  # 1 GB for 30 days


def test_a_webhook_is_billed_its_cpu_at_the_memory_share_or_its_cpu_and_round_trip() -> None:
    # A whole vCPU: 2 ms of CPU, then DynamoDB's 3 ms round trip.
    quick_round_trip = Workload(dynamodb_round_trip_seconds=0.003)
    assert webhook_duration_seconds(ROUND, quick_round_trip) == pytest.approx(0.005)
    # 512 MB: 2.4 ms of CPU takes 8.3 ms at 0.29 of a vCPU, and the round trip fits inside; billed by the
    # whole millisecond.
    slow = Measured(webhook_cpu_seconds=0.0024, webhook_memory_mb=512)
    assert webhook_duration_seconds(slow, Workload(dynamodb_round_trip_seconds=0.005)) == pytest.approx(0.009)
    found = by_item(ROUND, quick_round_trip)
    gb_seconds = 1_000_000 * 0.005 * 1769 / 1024
    assert found["Lambda webhook"] == pytest.approx(gb_seconds * Prices().lambda_gb_second)


def test_the_other_functions_are_billed_by_their_measured_rates() -> None:
    workload = Workload(
        submit_memory_mb=2048, results_memory_mb=1024, reconcile_memory_mb=512, webhook_loss=0.1
    )
    found = by_item(ROUND, workload)
    gb_second = Prices().lambda_gb_second
    assert found["Lambda submit"] == pytest.approx(1_000_000 / 1024 * 2 * gb_second)
    assert found["Lambda results"] == pytest.approx(10_000 * 0.2 * 1 * gb_second)  # batches of 100
    assert found["Lambda reconcile (lost webhooks healed)"] == pytest.approx(100_000 / 500 * 0.5 * gb_second)


def test_more_results_a_task_mean_more_webhooks_and_requests() -> None:
    one, two = by_item(ROUND, Workload()), by_item(ROUND, Workload(results_per_task=2))
    assert two["HTTP API (webhooks)"] == pytest.approx(2 * one["HTTP API (webhooks)"]) == pytest.approx(2.0)
    assert two["Lambda webhook"] == pytest.approx(2 * one["Lambda webhook"])
    events = "EventBridge (TaskCompleted, JobCompleted)"
    assert two[events] == one[events]


def test_the_table_adds_up() -> None:
    table = render(ROUND, Workload())
    total = sum(cost.usd for cost in costs(ROUND, Workload(), Prices()))
    assert f"${total:8.3f}" in table[-2]
    assert len(table) == len(costs(ROUND, Workload(), Prices())) + 3


def test_figures_replace_only_the_fields_they_name_in_the_fields_types() -> None:
    measured = with_figures(Measured(), {"write_units_per_task": 3, "not_a_field": 9.0})
    assert measured.write_units_per_task == 3.0
    assert measured.read_units_per_task == Measured().read_units_per_task
    plan = with_figures(Plan(), {"results_per_task": 2.0})
    assert plan.results_per_task == 2
    assert isinstance(plan.results_per_task, int)


def test_options_set_only_what_was_given() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, Workload, Measured)
    args = parser.parse_args(["--item-kb", "3", "--webhook-cpu-seconds", "0.001"])
    assert from_options(args, Workload) == Workload(item_kb=3)
    assert from_options(args, Measured) == Measured(webhook_cpu_seconds=0.001)


def test_a_reports_figures_survive_its_json() -> None:
    report = Report("b", [Check("c", 1.0, 2.0)], {"n": 1}, {"write_units_per_task": 3.5})
    assert Report.from_dict(report.to_dict()).figures == {"write_units_per_task": 3.5}
    assert Report.from_dict({"benchmark": "old", "checks": []}).figures == {}


def test_make_bench_scales_its_own_figures_on_paper() -> None:
    lines = scaled_on_paper({"write_units_per_task": 8.0, "submit_tasks_per_second": 100.0})
    text = "\n".join(lines)
    assert "this run's submit_tasks_per_second, write_units_per_task" in text
    assert "8,000,000.0 WRU" in text  # the cost, from the run's units
    submit = next(line for line in lines if "Submit: environments" in line)
    assert "116 of" in submit  # 11,574 tasks/s at the burst over 100 a submitter
    assert "no figure of this run" in "\n".join(scaled_on_paper({}))
