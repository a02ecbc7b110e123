"""SubmitFunction: ingest-queue batches → Runware async tasks. Partial batch failures go back to SQS."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from runrelay import wiring
from runrelay.deadline import Deadline

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    logger.append_keys(message_id=record.message_id)
    report = wiring.submit_service().process_record(
        record.message_id, record.body, Deadline.for_invocation(lambda_context)
    )
    metrics.add_metric(name="TasksSubmitted", unit=MetricUnit.Count, value=report.submitted)
    metrics.add_metric(name="TasksRejected", unit=MetricUnit.Count, value=report.rejected)
    metrics.add_metric(name="SubmitRetries", unit=MetricUnit.Count, value=report.retries)
    logger.info(
        "record processed",
        submitted=report.submitted,
        rejected=report.rejected,
        already_known=report.already_known,
        continued=report.continued,
        ignored=report.ignored,
        http_requests=report.http_requests,
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(  # type: ignore[return-value]  # a TypedDict of batchItemFailures
        event=event, record_handler=record_handler, processor=processor, context=context
    )
