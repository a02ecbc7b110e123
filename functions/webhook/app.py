"""WebhookFunction: Runware's callbacks (HTTP API, payload v2) → results stored once in DynamoDB."""

from __future__ import annotations

import gc

# No garbage collection while the modules load: what they make lives as long as the environment, and
# the collector's passes over it are a tenth of the cold import (bench/README.md, cold_import).
gc.disable()

import base64
import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from runrelay import wiring
from runrelay.domain.tasks import StoreOutcome
from runrelay.webhook_token import (
    ATTEMPT_PARAMETER,
    SLOT_PARAMETER,
    TASK_PARAMETER,
    TOKEN_PARAMETER,
    WEBHOOK_PATH,
)

logger = Logger()
metrics = Metrics()

# One route, so no event_handler resolver: importing it (asyncio, data classes, jmespath) weighs on
# every cold start (bench/README.md, cold_import). The HTTP API sends only this route here anyway.
Response = dict[str, Any]


def _json(status: int, body: dict[str, Any]) -> Response:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def _body(event: dict[str, Any]) -> str | bytes:
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body


def _count(name: str, value: int, **metadata: Any) -> None:
    """One EMF line now, for what API Gateway's own metrics cannot tell apart (its Count, 4xx and 5xx
    cover every webhook for free): a refused token or shape, a result delivered twice."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for key, detail in metadata.items():
        metrics.add_metadata(key=key, value=detail)
    metrics.flush_metrics()


def receive_webhook(event: dict[str, Any]) -> Response:
    query = event.get("queryStringParameters") or {}
    try:
        reply, report = wiring.webhook_receiver().receive(
            _body(event),
            query.get(TOKEN_PARAMETER),
            task=query.get(TASK_PARAMETER),
            slot=query.get(SLOT_PARAMETER),
            attempt=query.get(ATTEMPT_PARAMETER),
        )
    except Exception:
        # Storage trouble: answer 5xx so Runware delivers again later.
        logger.exception("webhook could not be stored")
        return _json(500, {"error": "storageUnavailable", "message": "try again later"})
    if report.rejected_reason:
        logger.warning(
            "webhook rejected", reason=report.rejected_reason, status=reply.status, task_uuid=report.task_uuid
        )
        _count("RejectedWebhooks", 1, reason=report.rejected_reason)
        return _json(reply.status, reply.body)
    outcomes = [outcome.value for outcome in report.outcomes]
    duplicates = report.outcomes.count(StoreOutcome.DUPLICATE)
    if duplicates:
        _count("DuplicateWebhooks", duplicates, task_uuid=report.task_uuid, outcomes=outcomes)
    # A stored webhook writes no line at INFO: at 100 million a day a line each would be most of the
    # function's CloudWatch bill and over a third of the handler's own Python time (bench/README.md,
    # warm_webhook). The item records when each result arrived; LogLevel DEBUG logs every one.
    logger.debug("webhook stored", task_uuid=report.task_uuid, outcomes=outcomes)
    return _json(reply.status, reply.body)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event.get("requestContext") or {}
    # Set directly: a correlation_id_path is a JMESPath search per call, half the decorator's cost.
    logger.set_correlation_id(request.get("requestId"))
    http = request.get("http") or {}
    # rawPath carries the stage name on a named stage; the route key never does.
    routed = event.get("routeKey") == f"POST {WEBHOOK_PATH}" or (
        http.get("method") == "POST" and str(event.get("rawPath", "")).endswith(WEBHOOK_PATH)
    )
    if not routed:
        return _json(404, {"error": "notFound", "message": "no such route"})
    return receive_webhook(event)


# What loading made is kept out of the collector's reach (less for each collection in an invocation to
# walk), then collection resumes for the invocations' own garbage.
gc.freeze()
gc.enable()
