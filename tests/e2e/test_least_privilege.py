"""Least privilege, from a recorded run: each function's role grants exactly what its code calls.

Every AWS call made inside the functions' workers is logged (`local/stack/aws_call_log.py`, preloaded into
each worker) while one short run takes every path of the product: a file fanned out into ranges (so
the submitter re-queues work), with valid and invalid lines; an SQS message; webhooks, one of them a
result too large for its item for a task with no row (offloaded to completions/, orphan row); dropped
webhooks healed by the reconciler; the file's results file and events. Each call becomes the IAM
actions and ARNs AWS checks for it; template.yaml's statements for that function, resolved against
the stack's resources, must allow all of them, and every granted action must have been used by some
call, or be listed in ALLOWED_UNUSED with the reason the run cannot reach it.

Depends only on botocore (the recorder), the template and the local stack's API.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from local.stack import template_model
from local.stack.aws_call_log import ENV_VAR as CALL_LOG_ENV_VAR
from local.stack.aws_call_log import read_calls
from local.stack.event_tap import EventTap
from local.stack.intrinsics import IntrinsicResolver, PhysicalResource, pseudo_parameters
from local.stack.local_stack import LocalStack
from runrelay.inputs import control_message
from tests.support.iam_policy import ArnBook, Grant, check, grants_of

from .conftest import Pipeline

ROOT = Path(__file__).resolve().parents[2]
RECORDER = ROOT / "local" / "stack" / "aws_call_log.py"

# (function, statement Sid, action) granted although this run does not call it: each is a real path of
# the code that a short, fault-free run cannot take.
ALLOWED_UNUSED = {
    # Rows found already there (a redelivered message, a duplicate S3 notification): their status read
    # back (tests/unit/test_dynamodb_task_repository.py and tests/e2e/test_submit_crash.py take it).
    ("SubmitFunction", "WriteTaskAndJobRows", "dynamodb:BatchGetItem"),
    # Items the submitter puts only on paths this run does not take: a cancellation request and the
    # shared cool-down after Runware's 429 (tests/e2e/test_back_pressure.py and the cancel tests take them).
    ("SubmitFunction", "WriteTaskAndJobRows", "dynamodb:PutItem"),
    # An object read without a version id: S3 notifications of the (versioned) bucket always carry one.
    ("SubmitFunction", "ReadInputObjects", "s3:GetObject"),
    # A polled result too large for the item (the webhook's offload is exercised instead).
    ("ReconcileFunction", "OffloadLargeCompletions", "s3:PutObject"),
    # A polled result for a task whose row is gone (expired under TTL): kept as an orphan row.
    ("ReconcileFunction", "StoreResults", "dynamodb:PutItem"),
    # A multi-result task's lost race, or reading a task back before failing it for its age.
    ("ReconcileFunction", "StoreResults", "dynamodb:GetItem"),
    # A multipart results file (a very large input) whose upload fails midway.
    ("ResultsFunction", "WriteResultsFiles", "s3:AbortMultipartUpload"),
}


def _canonical_resources(stack: LocalStack) -> dict[str, PhysicalResource]:
    """The stack's resources with AWS-shaped ARNs (DynamoDB Local names its tables in a fake region)."""
    assert stack.resources is not None
    resources = dict(stack.resources.physical)
    for logical_id, resource in resources.items():
        if resource.attributes.get("Arn", "").startswith("arn:aws:dynamodb:"):
            arn = f"arn:aws:dynamodb:{stack.region}:{stack.resources.account_id}:table/{resource.ref}"
            resources[logical_id] = PhysicalResource(resource.ref, {**resource.attributes, "Arn": arn})
    return resources


def _arn_book(stack: LocalStack, resources: dict[str, PhysicalResource], secretsmanager: Any) -> ArnBook:
    assert stack.resources is not None
    book = ArnBook(region=stack.region, account_id=stack.resources.account_id)
    for resource in resources.values():
        arn = resource.attributes.get("Arn", "")
        if arn.startswith("arn:aws:dynamodb:"):
            book.tables[resource.ref] = arn
        elif arn.startswith("arn:aws:sqs:"):
            book.queues[resource.ref] = arn
        elif arn.startswith("arn:aws:events:"):
            book.buses[resource.ref] = arn
    key_name = stack.resources.runware_api_key_secret_name
    book.secrets[key_name] = secretsmanager.describe_secret(SecretId=key_name)["ARN"]
    return book


def _wait_for(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _keys(pipeline: Pipeline, prefix: str) -> list[str]:
    listed = pipeline.clients.s3.list_objects_v2(Bucket=pipeline.stack.endpoints.bucket_name, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def _post_large_orphan_result(pipeline: Pipeline) -> None:
    """A signed webhook for a taskUUID with no row, its text far over what an item holds inline."""
    assert pipeline.stack.resources is not None
    secret = json.loads(pipeline.stack.resources.secret_values["WebhookSecret"])["current"]
    task_uuid = str(uuid.uuid4())
    token = hmac.new(secret.encode(), task_uuid.encode(), hashlib.sha256).hexdigest()
    result = {"taskType": "textInference", "taskUUID": task_uuid, "text": "word " * 40_000}
    answer = requests.post(
        pipeline.stack.endpoints.webhook_url, params={"token": token}, json={"data": [result]}, timeout=30
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.timeout(300)
def test_each_role_grants_exactly_what_the_recorded_run_called(
    pipeline_factory: Callable[..., Pipeline], tmp_path: Path
) -> None:
    calls_dir = tmp_path / "aws-calls"
    pipeline = pipeline_factory(
        # Ranges of ~50 bytes: the small file below fans out, so the submitter re-queues work.
        parameters={"FanOutRangeBytes": "50"},
        extra_environment={"RUNRELAY_LOCAL_PRELOAD": str(RECORDER), CALL_LOG_ENV_VAR: str(calls_dir)},
    )
    stack = pipeline.stack
    tap = EventTap(pipeline.clients.sqs, pipeline.clients.events, stack.endpoints.event_bus_name)

    # A file with valid and invalid lines, and an SQS message: submit, webhooks, results, events.
    lines = [
        json.dumps({"id": "first", "prompt": "one", "numberResults": 2}),
        "{not json",
        json.dumps({"id": "second", "prompt": "two", "numberResults": 5}),  # over the maximum
        json.dumps({"prompt": "three"}),
    ]
    file_source = pipeline.upload("mixed.jsonl", ("\n".join(lines) + "\n").encode())
    message = pipeline.send([{"id": "sqs-a", "prompt": "hi"}, {"prompt": "yo", "numberResults": 2}])
    pipeline.wait_settled({file_source: 4, message: 2})
    tap.wait_for(lambda events: any(e["detail-type"] == "JobCompleted" for e in events), timeout=60)
    assert _keys(pipeline, "results/"), "no results file written"

    # Dropped webhooks: the reconciler polls and stores the results.
    pipeline.emulator.set_faults(webhook_drop_rate=1.0)
    healed = pipeline.send([{"prompt": "lost", "numberResults": 1}])
    pipeline.wait_settled({healed: 1})

    # A large result for a task without a row: offloaded under completions/, kept as an orphan.
    _post_large_orphan_result(pipeline)
    assert _keys(pipeline, "completions/")

    # A retry of the message, which has nothing failed: the submitter lists its tasks, and stops there.
    pipeline.send(control_message("retry", message, "least-privilege"))
    submitter = stack.functions["SubmitFunction"].spec.function_name
    _wait_for(
        "the submitter to list the message's tasks for its retry",
        lambda: any(
            call["function"] == submitter and call["operation"] == "Query" for call in read_calls(calls_dir)
        ),
    )

    calls = list(read_calls(calls_dir))
    names = {pool.spec.function_name: logical_id for logical_id, pool in stack.functions.items()}
    by_function = [(names[call["function"]], call) for call in calls]
    assert {function for function, _ in by_function} == set(stack.functions), "a function made no call"

    template = template_model.load_template(stack.template_path)
    resources = _canonical_resources(stack)
    assert stack.resources is not None
    resolver = IntrinsicResolver(
        template,
        parameters=stack.resources.parameters,
        resources=resources,
        pseudo=pseudo_parameters(stack.stack_name, stack.region, stack.resources.account_id),
    )
    grants: dict[str, list[Grant]] = {
        function: grants_of(function, template_model.properties(template, function), resolver.resolve)
        for function in stack.functions
    }
    verdict = check(
        grants,
        by_function,
        _arn_book(stack, resources, pipeline.clients.secretsmanager),
        allowed_unused=ALLOWED_UNUSED,
    )
    assert not verdict.denied, verdict.render()
    assert not verdict.unused, verdict.render()
    # The allow-list names grants that exist: a renamed statement or a dropped action must leave it too.
    granted = {(g.function, g.sid, g.action) for function_grants in grants.values() for g in function_grants}
    assert granted >= ALLOWED_UNUSED, ALLOWED_UNUSED - granted
