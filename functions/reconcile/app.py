"""ReconcileFunction (scheduled): polls Runware for overdue tasks so a lost webhook loses nothing."""

from __future__ import annotations

import gc

# No garbage collection while the modules load: what they make lives as long as the environment, and
# the collector's passes over it are a tenth of the cold import (bench/README.md, cold_import).
gc.disable()

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from runrelay import wiring
from runrelay.deadline import Deadline

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = wiring.reconcile_service().run(Deadline.for_invocation(context))
    metrics.add_metric(
        name="ReconciledTasks",
        unit=MetricUnit.Count,
        value=report.results_stored + report.failed + report.cancelled,
    )
    metrics.add_metric(name="OverdueTasks", unit=MetricUnit.Count, value=report.still_processing)
    if report.skipped:  # a task whose write failed alone (its error is logged): worth a look if it repeats
        metrics.add_metric(name="SkippedTasks", unit=MetricUnit.Count, value=report.skipped)
    logger.info("reconcile finished", **asdict(report))
    return asdict(report)


# What loading made is kept out of the collector's reach (less for each collection in an invocation to
# walk), then collection resumes for the invocations' own garbage.
gc.freeze()
gc.enable()
