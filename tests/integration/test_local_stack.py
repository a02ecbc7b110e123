"""LocalStack wires template.yaml's event sources to handlers: S3/SQS -> poller, HTTP API -> shim."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.net import wait_for
from local.stack import LocalStack


class Calls:
    """Tiny stand-ins for the template's handlers: record each event, answer as configured."""

    def __init__(self) -> None:
        self.events: dict[str, list[Any]] = {
            "SubmitFunction": [],
            "WebhookFunction": [],
            "ReconcileFunction": [],
        }
        self.environment_seen: dict[str, str] = {}
        self.fail_submit_once = True
        self._lock = threading.Lock()

    def submit(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self._lock:
            self.events["SubmitFunction"].append(event)
            self.environment_seen = {k: os.environ.get(k, "") for k in ("TABLE_NAME", "AWS_ENDPOINT_URL_SQS")}
            failed = [] if not self.fail_submit_once else [r["messageId"] for r in event["Records"]]
            self.fail_submit_once = False
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    def webhook(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events["WebhookFunction"].append(event)
        return {"statusCode": 202, "body": json.dumps({"token": event["queryStringParameters"]["token"]})}

    def reconcile(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events["ReconcileFunction"].append(event)
        return {"checked": 0}


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def stack(
    dynamodb_local: str, moto_server: str, local_stack_name: str, calls: Calls, tmp_path: Path
) -> Iterator[LocalStack]:
    local_stack = LocalStack(
        stack_name=local_stack_name,
        parameter_overrides={"RunwareApiKeySecretName": f"{local_stack_name}/runware-api-key"},
        runware_api_url="http://127.0.0.1:9/v1",  # never called: the handlers below are stand-ins
        handler_overrides={
            "SubmitFunction": calls.submit,
            "WebhookFunction": calls.webhook,
            "ReconcileFunction": calls.reconcile,
        },
        retry_delay_seconds=0,
        batching_window_cap_seconds=0.2,
        poll_wait_seconds=0,
        state_file=tmp_path / "local-stack.json",
        dynamodb_url=dynamodb_local,
        moto_url=moto_server,
    )
    with local_stack:
        yield local_stack


def test_an_uploaded_prompt_reaches_submit_and_a_reported_failure_is_retried(
    stack: LocalStack, calls: Calls
) -> None:
    assert stack.clients is not None
    endpoints = stack.endpoints
    stack.clients.s3.put_object(
        Bucket=endpoints.bucket_name, Key=f"{endpoints.input_prefix}p.txt", Body=b"Hi"
    )

    def s3_deliveries() -> list[dict[str, Any]]:
        return [
            record
            for event in calls.events["SubmitFunction"]
            for record in event["Records"]
            if "Records" in json.loads(record["body"])
        ]

    wait_for(lambda: len(s3_deliveries()) >= 2, 15, "the S3 record and its retry")
    first, retry = s3_deliveries()[:2]
    assert first["messageId"] == retry["messageId"]
    assert retry["attributes"]["ApproximateReceiveCount"] == "2"
    assert stack.resources is not None
    assert first["eventSourceARN"] == stack.resources.ingest_queue_arn
    assert json.loads(first["body"])["Records"][0]["s3"]["object"]["key"] == "incoming/p.txt"
    assert stack.wait_until_idle(10)
    assert calls.environment_seen == {
        "TABLE_NAME": endpoints.table_name,
        "AWS_ENDPOINT_URL_SQS": endpoints.sqs_url,
    }


def test_the_webhook_route_is_served_by_the_shim(stack: LocalStack, calls: Calls) -> None:
    endpoints = stack.endpoints
    assert endpoints.webhook_url == f"{endpoints.api_base_url}/webhooks/runware"
    assert os.environ["WEBHOOK_BASE_URL"] == endpoints.api_base_url

    response = requests.post(f"{endpoints.webhook_url}?token=abc", json={"data": []}, timeout=10)

    assert (response.status_code, response.json()) == (202, {"token": "abc"})
    (event,) = calls.events["WebhookFunction"]
    assert event["routeKey"] == "POST /webhooks/runware"
    assert requests.post(f"{endpoints.api_base_url}/elsewhere", timeout=10).status_code == 404


def test_schedules_invoke_reconcile_with_a_scheduled_event(stack: LocalStack, calls: Calls) -> None:
    (schedule,) = stack.schedules.values()
    assert schedule.fire() == {"checked": 0}
    (event,) = calls.events["ReconcileFunction"]
    assert (event["detail-type"], event["source"], event["detail"]) == ("Scheduled Event", "aws.events", {})


def test_endpoints_are_written_for_the_cli_and_everything_is_undone_on_stop(
    dynamodb_local: str, moto_server: str, local_stack_name: str, calls: Calls, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    stack = LocalStack(
        stack_name=local_stack_name,
        parameter_overrides={"RunwareApiKeySecretName": f"{local_stack_name}/key"},
        runware_api_url="http://127.0.0.1:9/v1",
        handler_overrides={
            "SubmitFunction": calls.submit,
            "WebhookFunction": calls.webhook,
            "ReconcileFunction": calls.reconcile,
        },
        state_file=state_file,
        poll_wait_seconds=0,
        dynamodb_url=dynamodb_local,
        moto_url=moto_server,
    )
    before = os.environ.get("TABLE_NAME")
    with stack:
        state = json.loads(state_file.read_text())
        assert state["table_name"] == stack.endpoints.table_name
        assert state["runware_api_url"] == "http://127.0.0.1:9/v1"
        assert state["pid"] == os.getpid()
        assert os.environ["RUNWARE_API_URL"] == "http://127.0.0.1:9/v1"
        webhook_url = stack.endpoints.webhook_url
        pollers = list(stack.pollers.values())
    assert not state_file.exists()
    assert os.environ.get("TABLE_NAME") == before
    with pytest.raises(requests.ConnectionError):
        requests.post(webhook_url, timeout=2)
    assert all(poller._thread is None for poller in pollers)
    with pytest.raises(RuntimeError):
        _ = stack.endpoints
