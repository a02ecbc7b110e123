"""LocalStack wires template.yaml's event sources to handlers: S3/SQS -> poller, HTTP API -> shim."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.net import wait_for
from local.stack.local_stack import LocalStack

STAND_INS = {
    "SubmitFunction": "tests.support.stand_in_handlers.submit",
    "WebhookFunction": "tests.support.stand_in_handlers.webhook",
    "ReconcileFunction": "tests.support.stand_in_handlers.reconcile",
}


class Calls:
    """What the stand-in handlers (in the functions' own processes) recorded, read from their file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def of(self, function: str) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [call for call in map(json.loads, lines) if call["function"] == function]

    def events(self, function: str) -> list[dict[str, Any]]:
        return [call["event"] for call in self.of(function)]


@pytest.fixture
def calls(tmp_path: Path) -> Calls:
    return Calls(tmp_path / "calls.jsonl")


def _stack(
    local_stack_name: str,
    dynamodb_local: str,
    moto_server: str,
    calls: Calls,
    state_file: Path,
    **options: Any,
) -> LocalStack:
    return LocalStack(
        stack_name=local_stack_name,
        parameter_overrides={"RunwareApiKeySecretName": f"{local_stack_name}/runware-api-key"},
        runware_api_url="http://127.0.0.1:9/v1",  # never called: the handlers are stand-ins
        handler_overrides=STAND_INS,
        extra_environment={"RUNRELAY_TEST_CALLS": str(calls.path)},
        poll_wait_seconds=0,
        state_file=state_file,
        dynamodb_url=dynamodb_local,
        moto_url=moto_server,
        function_log=io.StringIO(),
        **options,
    )


@pytest.fixture
def stack(
    dynamodb_local: str, moto_server: str, local_stack_name: str, calls: Calls, tmp_path: Path
) -> Iterator[LocalStack]:
    with _stack(
        local_stack_name,
        dynamodb_local,
        moto_server,
        calls,
        tmp_path / "local-stack.json",
        retry_delay_seconds=0,
        batching_window_cap_seconds=0.2,
    ) as local_stack:
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
            for event in calls.events("SubmitFunction")
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
    seen = calls.of("SubmitFunction")[-1]["environment"]
    assert seen == {
        "TABLE_NAME": endpoints.table_name,
        "AWS_ENDPOINT_URL_SQS": endpoints.sqs_url,
        "AWS_LAMBDA_FUNCTION_NAME": f"{stack.stack_name}-SubmitFunction",
        "WEBHOOK_BASE_URL": endpoints.api_base_url,
    }


def test_the_webhook_route_is_served_by_the_shim(stack: LocalStack, calls: Calls) -> None:
    endpoints = stack.endpoints
    assert endpoints.webhook_url == f"{endpoints.api_base_url}/webhooks/runware"
    assert stack.environments["SubmitFunction"]["WEBHOOK_BASE_URL"] == endpoints.api_base_url

    response = requests.post(f"{endpoints.webhook_url}?token=abc", json={"data": []}, timeout=10)

    assert (response.status_code, response.json()) == (202, {"token": "abc"})
    (event,) = calls.events("WebhookFunction")
    assert event["routeKey"] == "POST /webhooks/runware"
    assert requests.post(f"{endpoints.api_base_url}/elsewhere", timeout=10).status_code == 404


def test_schedules_invoke_reconcile_with_a_scheduled_event(stack: LocalStack, calls: Calls) -> None:
    (schedule,) = stack.schedules.values()
    assert schedule.fire() == {"checked": 0}
    (event,) = calls.events("ReconcileFunction")
    assert (event["detail-type"], event["source"], event["detail"]) == ("Scheduled Event", "aws.events", {})


def test_endpoints_are_written_for_the_cli_and_everything_is_undone_on_stop(
    dynamodb_local: str, moto_server: str, local_stack_name: str, calls: Calls, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    stack = _stack(local_stack_name, dynamodb_local, moto_server, calls, state_file)
    before = os.environ.get("TABLE_NAME")
    with stack:
        state = json.loads(state_file.read_text())
        assert state["table_name"] == stack.endpoints.table_name
        assert state["runware_api_url"] == "http://127.0.0.1:9/v1"
        assert state["pid"] == os.getpid()
        assert stack.environments["WebhookFunction"]["RUNWARE_API_URL"] == "http://127.0.0.1:9/v1"
        assert "TABLE_NAME" not in os.environ  # each function's variables are its own, not this process's
        webhook_url = stack.endpoints.webhook_url
        pollers = list(stack.pollers.values())
    assert not state_file.exists()
    assert os.environ.get("TABLE_NAME") == before
    with pytest.raises(requests.ConnectionError):
        requests.post(webhook_url, timeout=2)
    assert all(poller._thread is None for poller in pollers)
    with pytest.raises(RuntimeError):
        _ = stack.endpoints
