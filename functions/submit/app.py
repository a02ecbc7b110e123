"""SubmitFunction: ingest-queue batches → Runware async tasks. Partial batch failures go back to SQS."""

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
from runrelay.deadline import Deadline
from runrelay.sqs_records import idempotency_message_id

logger = Logger()
metrics = Metrics()


def record_handler(record: dict[str, Any], lambda_context: LambdaContext) -> None:
    logger.append_keys(message_id=record["messageId"])
    report = wiring.submit_service().process_record(
        idempotency_message_id(record), record["body"], Deadline.for_invocation(lambda_context)
    )
    metrics.add_metric(name="TasksSubmitted", unit=MetricUnit.Count, value=report.submitted)
    metrics.add_metric(name="TasksRejected", unit=MetricUnit.Count, value=report.rejected)
    metrics.add_metric(name="TasksCancelled", unit=MetricUnit.Count, value=report.cancelled)
    if report.over_budget:
        metrics.add_metric(name="TasksOverBudget", unit=MetricUnit.Count, value=report.over_budget)
    if report.control is not None:
        metrics.add_metric(name="TasksRetried", unit=MetricUnit.Count, value=report.retried)
    metrics.add_metric(name="SubmitRetries", unit=MetricUnit.Count, value=report.retries)
    if report.refused:
        logger.warning("control message not carried out", control=report.control, reason=report.refused)
    logger.info(
        "record processed",
        submitted=report.submitted,
        rejected=report.rejected,
        cancelled=report.cancelled,
        over_budget=report.over_budget,
        already_known=report.already_known,
        continued=report.continued,
        fanned_out=report.fanned_out,
        ignored=report.ignored,
        control=report.control,
        refused=report.refused,
        retried=report.retried,
        http_requests=report.http_requests,
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Partial batch response by hand, as Powertools' BatchProcessor answers it: importing that utility
    # (asyncio, the event data classes) weighs on every cold start (bench/README.md, cold_import).
    records = event.get("Records") or []
    failures = []
    for record in records:
        try:
            record_handler(record, context)
        except Exception:
            logger.exception("record failed; SQS will deliver it again", message_id=record.get("messageId"))
            failures.append({"itemIdentifier": record["messageId"]})
    if records and len(failures) == len(records):
        raise RuntimeError(f"All records failed processing ({len(records)}); each is logged above")
    return {"batchItemFailures": failures}


# What loading made is kept out of the collector's reach (less for each collection in an invocation to
# walk), then collection resumes for the invocations' own garbage.
gc.freeze()
gc.enable()
