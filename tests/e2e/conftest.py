"""End-to-end fixtures: the whole local stack (as `make demo` runs it) on the session's servers."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.stack.local_stack import LocalStack
from runrelay.adapters.dynamodb.inspection import TableInspector
from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.adapters.s3 import S3PayloadStore
from runrelay.domain.tasks import TaskRecord

# Environments per function in the e2e stacks: enough to show concurrency, few enough that a test's cold
# starts do not crowd a 2-core machine.
E2E_CONCURRENCY_CAP = 2


class Pipeline:
    """A running local stack plus the few verbs the tests need."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        assert stack.clients is not None
        self.clients = stack.clients
        endpoints = stack.endpoints
        self.store = DynamoTaskRepository(
            endpoints.table_name,
            payloads=S3PayloadStore(endpoints.bucket_name, s3=self.clients.s3),
            dynamodb=self.clients.dynamodb,
        )
        self.inspector = TableInspector(endpoints.table_name, dynamodb=self.clients.dynamodb)

    @property
    def emulator(self) -> Any:
        return self.stack.emulator

    def send(self, payload: Any) -> str:
        body = payload if isinstance(payload, str) else json.dumps(payload)
        sent = self.clients.sqs.send_message(QueueUrl=self.stack.endpoints.ingest_queue_url, MessageBody=body)
        return f"sqs:{sent['MessageId']}"

    def upload(self, name: str, data: bytes) -> str:
        endpoints = self.stack.endpoints
        key = f"{endpoints.input_prefix}{name}"
        put = self.clients.s3.put_object(Bucket=endpoints.bucket_name, Key=key, Body=data)
        return f"s3://{endpoints.bucket_name}/{key}#{put['ETag'].strip(chr(34))}"

    def wait_settled(self, sources: dict[str, int], timeout: float = 60.0) -> dict[str, list[TaskRecord]]:
        """Wait until each source has its expected number of tasks, all final; fail with what is missing."""
        deadline = time.monotonic() + timeout
        found: dict[str, list[TaskRecord]] = {}
        while time.monotonic() < deadline:
            found = {source: self.store.tasks_of_source(source) for source in sources}
            if all(
                len(views) == sources[source] and all(v.is_final for v in views)
                for source, views in found.items()
            ):
                return found
            time.sleep(0.25)
        summary = {s: [v.status for v in views] for s, views in found.items()}
        raise AssertionError(f"tasks did not settle in {timeout}s: {summary}")

    def dlq_depth(self) -> int:
        attributes = self.clients.sqs.get_queue_attributes(
            QueueUrl=self.stack.endpoints.dead_letter_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


@pytest.fixture
def pipeline_factory(dynamodb_local: str, moto_server: str) -> Iterator[Callable[..., Pipeline]]:
    """Start a local stack with its own resources on the shared servers; stopped after the test.

    `own_dynamodb_local=True` gives the stack a DynamoDB Local of its own, for the tests that write tens of
    thousands of items: the session's server slows down as every earlier test's tables accumulate in its
    memory. The stack starts it and stops it after its functions and pollers, so they never outlive it.
    """
    started: list[LocalStack] = []

    def start(
        emulator: dict[str, Any] | None = None,
        parameters: dict[str, str] | None = None,
        schedule_period: float = 1.0,
        own_dynamodb_local: bool = False,
        **stack_options: Any,
    ) -> Pipeline:
        options: dict[str, Any] = {
            "stack_name": f"e2e{uuid.uuid4().hex[:8]}",
            "dynamodb_url": None if own_dynamodb_local else dynamodb_local,
            "moto_url": moto_server,
            "runware_api_url": None,
            "emulator_options": {"time_scale": 0.05, **(emulator or {})},
            "parameter_overrides": {"OverdueAfterSeconds": "3", **(parameters or {})},
            "schedule_period_seconds": schedule_period,
            "retry_delay_seconds": 1,
            "state_file": None,
            "concurrency_cap": E2E_CONCURRENCY_CAP,
        }
        stack = LocalStack(**{**options, **stack_options})
        started.append(stack.start())
        return Pipeline(stack)

    yield start
    for stack in started:
        stack.stop()
