"""ResultsFunction (TasksTable stream): job counting, results files, TaskCompleted/JobCompleted events."""

from __future__ import annotations

import gc

# No garbage collection while the modules load: what they make lives as long as the environment, and
# the collector's passes over it are a tenth of the cold import (bench/README.md, cold_import).
gc.disable()

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from runrelay import wiring
from runrelay.adapters.dynamodb.stream import table_changes

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") or []
    report = wiring.results_service().process(table_changes(records))
    metrics.add_metric(name="TaskEventsPublished", unit=MetricUnit.Count, value=report.task_events)
    metrics.add_metric(name="JobsCompleted", unit=MetricUnit.Count, value=len(report.jobs_completed))
    for seconds in report.latencies:
        metrics.add_metric(name="EndToEndLatency", unit=MetricUnit.Seconds, value=round(seconds, 3))
    if report.tasks_final:
        metrics.add_metric(name="PromptTokens", unit=MetricUnit.Count, value=report.prompt_tokens)
        metrics.add_metric(name="CompletionTokens", unit=MetricUnit.Count, value=report.completion_tokens)
        metrics.add_metric(name="CostUSD", unit=MetricUnit.NoUnit, value=round(report.cost_usd, 10))
    for source_id in report.jobs_completed:
        logger.info("job completed", source_id=source_id)
    logger.info(
        "stream batch processed",
        records=len(records),
        changes=report.changes,
        tasks_final=report.tasks_final,
        tasks_counted=report.tasks_counted,
        task_events=report.task_events,
        failed_sequence_number=report.failed_sequence_number,
    )
    failures = [{"itemIdentifier": report.failed_sequence_number}] if report.failed_sequence_number else []
    return {"batchItemFailures": failures}


# What loading made is kept out of the collector's reach (less for each collection in an invocation to
# walk), then collection resumes for the invocations' own garbage.
gc.freeze()
gc.enable()
