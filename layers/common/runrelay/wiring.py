"""Composition root: builds each function's service once per container from its settings."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from .adapters.dynamodb.tasks import DynamoTaskRepository
from .adapters.s3 import S3PayloadStore
from .aws_clients import client
from .secrets import runware_api_key, signing_secret, webhook_secrets
from .settings import settings
from .webhook_logic import WebhookReceiver

# Each function imports only what it builds (bench/cold_import): the webhook's cold start must not
# pay for requests, the request models, the input parsers or the submit and reconcile services.
if TYPE_CHECKING:
    from .adapters.dynamodb.jobs import DynamoJobRepository
    from .back_pressure import SharedBackPressure
    from .contract import TextInferenceTask
    from .deadline import Deadline
    from .inputs import S3ObjectRef
    from .reconcile_logic import ReconcileService
    from .results_logic import ResultsService
    from .runware_client import PollOutcome, RunwareClient, SubmitOutcome
    from .submit_logic import SubmitService


def _required(value: str | None, name: str) -> str:
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return value


@cache
def task_repository() -> DynamoTaskRepository:
    config = settings()
    payloads = S3PayloadStore(config.payload_bucket) if config.payload_bucket else None
    return DynamoTaskRepository(
        config.table_name,
        payloads=payloads,
        retention_days=config.task_retention_days,
        dynamodb=client("dynamodb"),
    )


@cache
def job_repository() -> DynamoJobRepository:
    from .adapters.dynamodb.jobs import DynamoJobRepository

    config = settings()
    return DynamoJobRepository(
        config.table_name, retention_days=config.task_retention_days, dynamodb=client("dynamodb")
    )


@cache
def runware_client() -> RunwareClient:
    from .runware_client import RunwareClient

    config = settings()
    secret_id = _required(config.runware_api_key_secret_id, "RUNWARE_API_KEY_SECRET_ID")
    return RunwareClient(config.runware_api_url, runware_api_key(secret_id), pacing=_shared_pacing())


def _shared_pacing() -> SharedBackPressure | None:
    config = settings()
    if config.runware_back_pressure != "shared":
        return None
    from .adapters.dynamodb.throttle import DynamoThrottleStore
    from .back_pressure import DEFAULT_POSTS_IN_FLIGHT, AdaptiveWindow, SharedBackPressure

    store = DynamoThrottleStore(config.table_name, dynamodb=client("dynamodb"))
    return SharedBackPressure(store, AdaptiveWindow(DEFAULT_POSTS_IN_FLIGHT))


class _RunwareOnDemand:
    """Fetches the API key only when a request is really sent: bad input never needs it."""

    def submit(self, tasks: list[TextInferenceTask], deadline: Deadline) -> SubmitOutcome:
        return runware_client().submit(tasks, deadline)

    def get_response(self, task_uuids: list[str], deadline: Deadline) -> PollOutcome:
        return runware_client().get_response(task_uuids, deadline)


def _open_object(ref: S3ObjectRef) -> Any:
    extra: dict[str, str] = {}
    if ref.version_id:
        extra["VersionId"] = ref.version_id
    if ref.if_match:
        extra["IfMatch"] = f'"{ref.etag}"'
    if ref.end_byte is not None:
        extra["Range"] = f"bytes={ref.start_byte}-{ref.end_byte - 1}"
    elif ref.start_byte:
        extra["Range"] = f"bytes={ref.start_byte}-"
    response = client("s3").get_object(Bucket=ref.bucket, Key=ref.key, **extra)
    _opened_metadata.clear()  # only the object just opened: a warm container accumulates nothing
    _opened_metadata[ref.source_id] = response.get("Metadata") or {}
    return response["Body"]


# The user metadata of the object opened last (GetObject returns it: no HeadObject needed), read by
# `_object_budget` right after the open.
_opened_metadata: dict[str, dict[str, str]] = {}


def _object_budget(ref: S3ObjectRef) -> float | None:
    from .inputs import budget_of_metadata  # the webhook's cold start must not import the inputs

    return budget_of_metadata(_opened_metadata.pop(ref.source_id, {}))


def _enqueue(body: str) -> None:
    queue_url = _required(settings().ingest_queue_url, "INGEST_QUEUE_URL")
    client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)


@cache
def submit_service() -> SubmitService:
    from .adapters.dynamodb.budgets import DynamoSpendLedger
    from .submit_logic import SubmitConfig, SubmitService

    config = settings()
    secret_id = _required(config.webhook_secret_id, "WEBHOOK_SECRET_ID")
    submit_config = SubmitConfig(
        webhook_base_url=_required(config.webhook_base_url, "WEBHOOK_BASE_URL"),
        webhook_secret=signing_secret(secret_id),
        max_tasks_per_request=config.max_tasks_per_request,
        fan_out_range_bytes=config.fan_out_range_bytes,
        daily_budget_usd=config.daily_budget_usd,
        estimated_cost_per_result_usd=config.estimated_cost_per_result_usd,
    )
    return SubmitService(
        task_repository(),
        _RunwareOnDemand(),
        submit_config,
        open_object=_open_object,
        enqueue=_enqueue,
        jobs=job_repository(),
        ledger=DynamoSpendLedger(config.table_name, retention_days=config.task_retention_days),
        object_budget=_object_budget,
    )


@cache
def webhook_receiver() -> WebhookReceiver:
    config = settings()
    secret_id = _required(config.webhook_secret_id, "WEBHOOK_SECRET_ID")
    # Looked up per request through the secrets cache, so a rotation is seen within minutes.
    return WebhookReceiver(
        task_repository(), lambda: webhook_secrets(secret_id), config.max_webhook_body_bytes
    )


@cache
def reconcile_service() -> ReconcileService:
    from .reconcile_logic import ReconcileConfig, ReconcileService

    config = settings()
    return ReconcileService(
        task_repository(),
        _RunwareOnDemand(),
        ReconcileConfig(
            overdue_after_seconds=config.overdue_after_seconds,
            max_task_age_seconds=config.max_task_age_seconds,
            max_tasks_per_run=config.reconcile_max_tasks_per_run,
        ),
        job_repository().cancellation,
    )


@cache
def results_service() -> ResultsService:
    # Imported here: the webhook's cold start (benchmarked) must not pay for the results code.
    from .adapters.eventbridge import EventBridgePublisher
    from .adapters.s3_uploads import S3ObjectWriter
    from .results_file import ResultsWriter
    from .results_logic import ResultsService

    config = settings()
    bus_name = _required(config.event_bus_name, "EVENT_BUS_NAME")
    return ResultsService(
        job_repository(),
        ResultsWriter(task_repository(), S3ObjectWriter(s3=client("s3"))),
        EventBridgePublisher(bus_name, events_client=client("events")),
    )
