"""The capacity plan's arithmetic (bench/capacity_plan.py), on round numbers."""

from __future__ import annotations

import pytest

from bench.capacity_plan import Measured, Plan, Quotas, lines


def test_needs_scale_with_the_burst_and_the_measured_rates() -> None:
    plan = Plan(tasks_per_day=86_400 * 1_000, burst_factor=10, open_shards=4, largest_file_share=0.5)
    measured = Measured(
        webhook_cpu_seconds=0.01, webhook_memory_mb=1769, submit_tasks_per_second=500, write_units_per_task=4
    )
    found = {line.part: line for line in lines(plan, measured, Quotas())}
    assert found["Submit: environments for the burst (SQS MaximumConcurrency)"].needs == pytest.approx(20)
    assert found["Webhook: concurrent environments for the burst"].needs == pytest.approx(100)
    assert found["DynamoDB: write units per second, table and indexes"].needs == pytest.approx(40_000)
    # A file's tasks are in no index; its tallies are, one per 100 lines.
    assert found["DynamoDB: BySource writes of the largest file (one key)"].needs == pytest.approx(50)
    assert found["DynamoDB: OpenTasks index writes per shard"].needs == pytest.approx(50)


def test_a_webhook_keeps_its_environment_busy_for_its_cpu_over_the_memory_share() -> None:
    assert Measured(webhook_cpu_seconds=0.002, webhook_memory_mb=1769).webhook_seconds == pytest.approx(0.002)
    assert Measured(webhook_cpu_seconds=0.002, webhook_memory_mb=884.5).webhook_seconds == pytest.approx(
        0.004
    )


def test_the_reconciler_keeps_up_below_its_polling_rate_only() -> None:
    def reconciler(loss: float) -> float:
        plan = Plan(tasks_per_day=86_400 * 1_000, webhook_loss=loss)
        [line] = [line for line in lines(plan, Measured(), Quotas()) if line.part.startswith("Reconciler")]
        return line.load

    assert reconciler(0.06) < 1 < reconciler(0.07)  # 20,000 tasks a 5-minute run: 66.7 a second

    def reconciler_raised(loss: float) -> float:
        """The cap raised past what a run's time allows: the measured heal rate decides."""
        plan = Plan(tasks_per_day=86_400 * 1_000, webhook_loss=loss, reconcile_tasks_per_run=10**6)
        [line] = [line for line in lines(plan, Measured(), Quotas()) if line.part.startswith("Reconciler")]
        return line.load

    # 542 tasks/s for 290 s of every 300: about 524 a second.
    assert reconciler_raised(0.5) < 1 < reconciler_raised(0.55)
