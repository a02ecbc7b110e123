"""The four thin handlers driven by the sample events in events/ (moto in-process for AWS)."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from runrelay import aws_clients, wiring
from runrelay import secrets as secrets_module
from runrelay import settings as settings_module
from runrelay.domain.jobs import FinalLine

from .conftest import BUCKET

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
EVENTS_SECRET = "events-webhook-secret"  # the secret the sample events' tokens were made with


class Context:
    function_name = "runrelay-test"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:runrelay-test"
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/runrelay-test"
    log_stream_name = "stream"
    function_version = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def load_handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"handler_{name}", ROOT / "functions" / name / "app.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _clear_caches() -> None:
    """A fresh container: per-container clients and services built again for this test's moto."""
    settings_module.settings.cache_clear()
    for built in (
        wiring.task_repository,
        wiring.job_repository,
        wiring.runware_client,
        wiring.submit_service,
        wiring.webhook_receiver,
        wiring.reconcile_service,
        wiring.results_service,
    ):
        built.cache_clear()
    aws_clients.cache_clear()
    secrets_module.cache_clear()


@pytest.fixture
def lambda_env(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import boto3

    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    secrets.create_secret(Name="webhook", SecretString=json.dumps({"current": EVENTS_SECRET, "previous": ""}))
    for key, value in {
        "TABLE_NAME": aws["table"],
        "PAYLOAD_BUCKET": BUCKET,
        "WEBHOOK_SECRET_ID": "webhook",
        "POWERTOOLS_METRICS_NAMESPACE": "runrelay",
        "POWERTOOLS_SERVICE_NAME": "runrelay",
    }.items():
        monkeypatch.setenv(key, value)
    _clear_caches()
    yield
    _clear_caches()


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("webhook_wrapped.json", 200),
        ("webhook_bare.json", 200),
        ("webhook_error.json", 200),
        ("webhook_bad_token.json", 403),
        ("webhook_missing_token.json", 401),
    ],
)
def test_webhook_handler_on_sample_events(lambda_env: None, name: str, status: int) -> None:
    handler = load_handler("webhook")
    answer = handler.lambda_handler(event(name), Context())
    assert answer["statusCode"] == status
    body = json.loads(answer["body"])
    assert ("error" in body) is (status != 200)


def test_webhook_handler_answers_404_elsewhere(lambda_env: None) -> None:
    handler = load_handler("webhook")
    wrong = event("webhook_wrapped.json") | {"rawPath": "/other", "routeKey": "POST /other"}
    wrong["requestContext"] = wrong["requestContext"] | {
        "http": {**wrong["requestContext"]["http"], "path": "/other"}
    }
    assert handler.lambda_handler(wrong, Context())["statusCode"] == 404


def test_webhook_handler_answers_500_when_storage_fails(
    lambda_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TABLE_NAME", "no-such-table")
    _clear_caches()
    handler = load_handler("webhook")
    answer = handler.lambda_handler(event("webhook_wrapped.json"), Context())
    assert answer["statusCode"] == 500


def _metric_names(line: dict[str, Any]) -> list[str]:
    return [m["Name"] for block in line["_aws"]["CloudWatchMetrics"] for m in block["Metrics"]]


def _deliver(
    handler: ModuleType, name: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> tuple[dict[str, Any], list[dict[str, Any]], list[logging.LogRecord]]:
    """The answer to one sample webhook, the EMF lines the function printed and what it logged at INFO and
    above (read from caplog: the logger's stream is whichever stdout was current when it was first made)."""
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="runrelay"):
        answer = handler.lambda_handler(event(name), Context())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return (
        answer,
        [line for line in lines if "_aws" in line],
        [record for record in caplog.records if record.name == "runrelay"],
    )


def test_webhook_prints_nothing_for_a_stored_delivery_and_one_metric_for_a_duplicate(
    lambda_env: None, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """API Gateway counts every delivery; the function adds a line only for what it cannot tell apart."""
    handler = load_handler("webhook")
    answer, printed, logged = _deliver(handler, "webhook_wrapped.json", capsys, caplog)
    assert (answer["statusCode"], printed, logged) == (200, [], [])
    again, [line], logged = _deliver(handler, "webhook_wrapped.json", capsys, caplog)
    assert (json.loads(again["body"])["outcomes"], logged) == (["duplicate"], [])
    assert _metric_names(line) == ["DuplicateWebhooks"]
    assert line["DuplicateWebhooks"] == [1.0]
    assert line["task_uuid"] == json.loads(again["body"])["taskUUID"]


def test_webhook_logs_and_counts_a_rejected_delivery(
    lambda_env: None, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    answer, [metric], [warning] = _deliver(load_handler("webhook"), "webhook_bad_token.json", capsys, caplog)
    assert answer["statusCode"] == 403
    assert (warning.getMessage(), getattr(warning, "reason", None)) == ("webhook rejected", "invalidToken")
    assert _metric_names(metric) == ["RejectedWebhooks"]
    assert metric["reason"] == "invalidToken"


def test_webhook_logs_every_stored_delivery_at_debug(
    lambda_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The stack's LogLevel at DEBUG: one line per stored delivery, with its task."""
    handler = load_handler("webhook")
    level = handler.logger.log_level
    handler.logger.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG, logger="runrelay"):
            answer = handler.lambda_handler(event("webhook_wrapped.json"), Context())
    finally:
        handler.logger.setLevel(level)
    stored = [record for record in caplog.records if record.getMessage() == "webhook stored"]
    task_uuid = json.loads(answer["body"])["taskUUID"]
    assert [getattr(record, "task_uuid", None) for record in stored] == [task_uuid]
    assert getattr(stored[0], "outcomes", None) == ["completed"]


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [
        ("seed", "1" + "0" * 400, 200),
        ("usage", '{"promptTokens": 1' + "0" * 400 + "}", 200),
        ("seed", "1e400", 400),
    ],
    ids=["huge-seed", "huge-usage", "infinite-seed"],
)
def test_webhook_handler_never_answers_5xx_for_odd_numbers(
    lambda_env: None, field: str, value: str, status: int
) -> None:
    """A huge integer is valid JSON: stored (as text where DynamoDB cannot hold it), never a 5xx that
    Runware would redeliver until it gives up."""
    sample = event("webhook_wrapped.json")
    body = sample["body"]
    assert body.rstrip().endswith("}]}")
    sample["body"] = body.rstrip()[: -len("}]}")] + f', "{field}": {value}' + "}]}"
    answer = load_handler("webhook").lambda_handler(sample, Context())
    assert answer["statusCode"] == status, answer


def test_submit_handler_reports_partial_failures(lambda_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No Runware key secret exists: every record that needs Runware fails and goes back to SQS."""
    monkeypatch.setenv("RUNWARE_API_KEY_SECRET_ID", "missing-secret")
    monkeypatch.setenv("WEBHOOK_BASE_URL", "https://hooks.example")
    handler = load_handler("submit")
    answer = handler.lambda_handler(event("sqs_task_specs.json"), Context())
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    assert failed == {"11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"}


def test_every_sample_event_is_driven_through_a_handler() -> None:
    tested = set(re.findall(r'"(\w+\.json)"', Path(__file__).read_text()))
    assert {path.name for path in EVENTS.glob("*.json")} <= tested


def test_submit_handler_on_the_s3_notification_sample(
    lambda_env: None, aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ObjectCreated record is read (and fails: the object is not there); S3's TestEvent is ignored."""
    monkeypatch.setenv("RUNWARE_API_KEY_SECRET_ID", "missing-secret")
    monkeypatch.setenv("WEBHOOK_BASE_URL", "https://hooks.example")
    answer = load_handler("submit").lambda_handler(event("sqs_s3_notification.json"), Context())
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    assert failed == {"44444444-4444-4444-8444-444444444444"}


def test_reconcile_handler_on_the_schedule_sample(lambda_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWARE_API_KEY_SECRET_ID", "missing-secret")
    answer = load_handler("reconcile").lambda_handler(event("reconcile_schedule.json"), Context())
    assert answer["results_stored"] == answer["failed"] == 0  # nothing is open in an empty table


def test_results_handler_on_the_stream_sample(
    lambda_env: None, aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    boto3.client("events", region_name="us-east-1").create_event_bus(Name="runrelay-bus")
    monkeypatch.setenv("EVENT_BUS_NAME", "runrelay-bus")
    sample = event("dynamodb_stream_results.json")
    answer = load_handler("results").lambda_handler(sample, Context())
    assert answer == {"batchItemFailures": []}
    jobs = wiring.job_repository()
    for record in sample["Records"]:
        image = record["dynamodb"]["NewImage"]
        line = FinalLine(image["taskUUID"]["S"], image["sourceId"]["S"], int(image["sourceSeq"]["N"]))
        assert jobs.unrecorded([line]) == []  # counted once: a redelivery of the batch counts nothing
