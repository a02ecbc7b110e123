"""The functions' IAM roles: explicit statements only, nothing broad, and a matcher that really checks.

The recorded-run check (every call allowed, every grant used) is tests/e2e/test_least_privilege.py;
here the template alone, with its intrinsics resolved to placeholder resources, and the matcher's own
behaviour on calls written by hand (so a missing action or an unused grant is shown to be reported).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from local.stack.intrinsics import IntrinsicResolver, PhysicalResource, parameter_values, pseudo_parameters
from local.stack.template_model import properties
from tests.support.iam_policy import (
    ArnBook,
    Grant,
    Permission,
    UnmappedCall,
    check,
    grants_of,
    iam_match,
    permissions_for,
    statements_of,
)

REGION, ACCOUNT = "us-east-1", "123456789012"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/tasks"
BUCKET = "input-bucket"
WEBHOOK_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:stack/WebhookSecret-AbCdEf"
API_KEY_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:runrelay/runware-api-key-XyZ123"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/ingest"
BUS = "stack-events"
# Placeholders for every resource a function's policy may name.
RESOURCES = {
    "TasksTable": PhysicalResource("tasks", {"Arn": TABLE_ARN, "StreamArn": f"{TABLE_ARN}/stream/x"}),
    "InputBucket": PhysicalResource(BUCKET, {"Arn": f"arn:aws:s3:::{BUCKET}"}),
    "IngestQueue": PhysicalResource(
        QUEUE_URL, {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:ingest", "QueueName": "ingest"}
    ),
    "IngestDeadLetterQueue": PhysicalResource(
        "dlq-url", {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:ingest-dlq", "QueueName": "ingest-dlq"}
    ),
    "ResultsDeadLetterQueue": PhysicalResource(
        "rdlq-url", {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:results-dlq", "QueueName": "results-dlq"}
    ),
    "EventBus": PhysicalResource(BUS, {"Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{BUS}"}),
    "WebhookSecret": PhysicalResource(WEBHOOK_SECRET_ARN, {}),
}
ARNS = ArnBook(
    region=REGION,
    account_id=ACCOUNT,
    tables={"tasks": TABLE_ARN},
    queues={QUEUE_URL: RESOURCES["IngestQueue"].attributes["Arn"]},
    buses={BUS: RESOURCES["EventBus"].attributes["Arn"]},
    secrets={"runrelay/runware-api-key": API_KEY_ARN},
)


def _functions(template: dict[str, Any]) -> list[str]:
    return [k for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]


def _grants(template: dict[str, Any]) -> dict[str, list[Grant]]:
    resolver = IntrinsicResolver(
        template,
        parameters=parameter_values(template),
        resources=RESOURCES,
        pseudo=pseudo_parameters("stack", REGION, ACCOUNT),
    )
    return {f: grants_of(f, properties(template, f), resolver.resolve) for f in _functions(template)}


def _call(service: str, operation: str, **resources: Any) -> dict[str, Any]:
    return {"function": "x", "service": service, "operation": operation, "resources": resources}


# One call per grant of the template, as the code makes them (the e2e test records the real ones).
CALLS = [
    ("SubmitFunction", _call("dynamodb", "TransactWriteItems", TransactItems=[
        {"Action": "Put", "TableName": "tasks"}, {"Action": "Update", "TableName": "tasks"}])),
    ("SubmitFunction", _call("dynamodb", "GetItem", TableName="tasks")),
    ("SubmitFunction", _call("dynamodb", "BatchExecuteStatement", Statements=[
        {"Action": "Insert", "TableName": "tasks"}, {"Action": "Insert", "TableName": "tasks"}])),
    ("SubmitFunction", _call("dynamodb", "BatchGetItem", Tables=["tasks"])),
    ("SubmitFunction", _call("dynamodb", "Query", TableName="tasks", IndexName="BySource")),  # a retry
    ("SubmitFunction", _call("s3", "GetObject", Bucket=BUCKET, Key="incoming/a.jsonl", VersionId=True)),
    ("SubmitFunction", _call("s3", "GetObject", Bucket=BUCKET, Key="incoming/b.jsonl")),
    ("SubmitFunction", _call("secretsmanager", "GetSecretValue", SecretId="runrelay/runware-api-key")),
    ("SubmitFunction", _call("secretsmanager", "GetSecretValue", SecretId=WEBHOOK_SECRET_ARN)),
    ("SubmitFunction", _call("sqs", "SendMessage", QueueUrl=QUEUE_URL)),
    ("WebhookFunction", _call("dynamodb", "UpdateItem", TableName="tasks")),
    ("WebhookFunction", _call("dynamodb", "GetItem", TableName="tasks")),
    ("WebhookFunction", _call("dynamodb", "PutItem", TableName="tasks")),
    ("WebhookFunction", _call("s3", "PutObject", Bucket=BUCKET, Key="completions/t/r.json")),
    ("WebhookFunction", _call("secretsmanager", "GetSecretValue", SecretId=WEBHOOK_SECRET_ARN)),
    ("ReconcileFunction", _call("dynamodb", "Query", TableName="tasks", IndexName="OpenTasks")),
    ("ReconcileFunction", _call("dynamodb", "Query", TableName="tasks", IndexName="BySource")),
    ("ReconcileFunction", _call("dynamodb", "BatchGetItem", Tables=["tasks"])),
    ("ReconcileFunction", _call("dynamodb", "UpdateItem", TableName="tasks")),
    ("ReconcileFunction", _call("dynamodb", "GetItem", TableName="tasks")),
    ("ReconcileFunction", _call("dynamodb", "PutItem", TableName="tasks")),
    ("ReconcileFunction", _call("s3", "PutObject", Bucket=BUCKET, Key="completions/t/r.json")),
    ("ReconcileFunction", _call("secretsmanager", "GetSecretValue", SecretId="runrelay/runware-api-key")),
    ("ResultsFunction", _call("dynamodb", "GetItem", TableName="tasks")),
    ("ResultsFunction", _call("dynamodb", "TransactWriteItems", TransactItems=[
        {"Action": "Update", "TableName": "tasks"}, {"Action": "Update", "TableName": "tasks"}])),
    ("ResultsFunction", _call("dynamodb", "Query", TableName="tasks", IndexName="BySource")),
    ("ResultsFunction", _call("dynamodb", "BatchGetItem", Tables=["tasks"])),
    ("ResultsFunction", _call("s3", "PutObject", Bucket=BUCKET, Key="results/incoming/a.jsonl")),
    ("ResultsFunction", _call("s3", "AbortMultipartUpload", Bucket=BUCKET, Key="results/incoming/a.jsonl")),
    ("ResultsFunction", _call("events", "PutEvents", EventBusNames=[BUS])),
]  # fmt: skip


# ---------------------------------------------------------------- the template


def test_every_role_is_explicit_statements(template: dict[str, Any]) -> None:
    for function in _functions(template):
        statements = statements_of(properties(template, function))  # raises on SAM policy templates
        assert statements, function
        for statement in statements:
            assert statement["Effect"] == "Allow", (function, statement)
            assert statement.get("Sid"), f"{function}: every statement says what it is for"


def test_no_broad_actions_or_resources(template: dict[str, Any]) -> None:
    forbidden = {"dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "s3:DeleteObject"}
    for grants in _grants(template).values():
        for grant in grants:
            assert "*" not in grant.action, grant
            assert grant.action not in forbidden, grant
            assert grant.resource != "*", grant
            assert not grant.resource.endswith(f"{BUCKET}/*"), f"{grant}: a prefix, not the whole bucket"
            assert not grant.resource.endswith("/index/*"), f"{grant}: name the index"


def test_the_template_grants_the_known_calls_and_nothing_more(template: dict[str, Any]) -> None:
    verdict = check(_grants(template), CALLS, ARNS)
    assert not verdict.denied, verdict.render()
    assert not verdict.unused, verdict.render()


@pytest.mark.parametrize(
    ("function", "call"),
    [
        # The webhook writes completions only, never results files or inputs.
        ("WebhookFunction", _call("s3", "PutObject", Bucket=BUCKET, Key="results/incoming/a.jsonl")),
        ("WebhookFunction", _call("s3", "GetObject", Bucket=BUCKET, Key="completions/t/r.json")),
        ("WebhookFunction", _call("dynamodb", "Query", TableName="tasks", IndexName="BySource")),
        ("WebhookFunction", _call("dynamodb", "DeleteItem", TableName="tasks")),
        # The reconciler reads the OpenTasks index only, and no webhook secret.
        ("ReconcileFunction", _call("dynamodb", "Query", TableName="tasks", IndexName="ByCaller")),
        ("ReconcileFunction", _call("secretsmanager", "GetSecretValue", SecretId=WEBHOOK_SECRET_ARN)),
        ("ResultsFunction", _call("s3", "PutObject", Bucket=BUCKET, Key="completions/t/r.json")),
        ("SubmitFunction", _call("s3", "GetObject", Bucket=BUCKET, Key="results/incoming/a.jsonl")),
        ("SubmitFunction", _call("dynamodb", "Scan", TableName="tasks")),
    ],
)
def test_calls_outside_a_role_are_denied(template: dict[str, Any], function: str, call: Any) -> None:
    verdict = check(_grants(template), [*CALLS, (function, call)], ARNS)
    assert [(f, c) for f, _, c in verdict.denied] == [(function, call)]


# ---------------------------------------------------------------- the matcher can fail


def test_a_statement_missing_an_action_is_reported(template: dict[str, Any]) -> None:
    broken = copy.deepcopy(template)
    (statement,) = [
        s for s in statements_of(properties(broken, "WebhookFunction")) if s["Sid"] == "StoreResults"
    ]
    statement["Action"].remove("dynamodb:PutItem")  # the statements are the template's own dicts
    verdict = check(_grants(broken), CALLS, ARNS)
    assert [(f, p) for f, p, _ in verdict.denied] == [
        ("WebhookFunction", Permission("dynamodb:PutItem", TABLE_ARN))
    ]
    assert "DENIED WebhookFunction: dynamodb:PutItem" in verdict.render()


def test_a_grant_no_call_used_is_reported_unless_allowed() -> None:
    grants = {
        "F": [
            Grant("F", "Rows", "dynamodb:GetItem", TABLE_ARN),
            Grant("F", "Rows", "dynamodb:Scan", TABLE_ARN),
        ]
    }
    calls = [("F", _call("dynamodb", "GetItem", TableName="tasks"))]
    assert check(grants, calls, ARNS).unused == [grants["F"][1]]
    assert check(grants, calls, ARNS, allowed_unused={("F", "Rows", "dynamodb:Scan")}).unused == []


def test_transactions_are_checked_per_item_action() -> None:
    items = [{"Action": "Put", "TableName": "tasks"}, {"Action": "ConditionCheck", "TableName": "tasks"}]
    call = _call("dynamodb", "TransactWriteItems", TransactItems=items)
    assert permissions_for(call, ARNS) == [
        Permission("dynamodb:PutItem", TABLE_ARN),
        Permission("dynamodb:ConditionCheckItem", TABLE_ARN),
    ]


def test_an_unknown_call_is_not_silently_allowed() -> None:
    with pytest.raises(UnmappedCall):
        permissions_for(_call("kms", "Decrypt"), ARNS)
    with pytest.raises(UnmappedCall):
        permissions_for(_call("dynamodb", "GetItem", TableName="another-table"), ARNS)


def test_iam_wildcards() -> None:
    assert iam_match("arn:aws:s3:::b/completions/*", "arn:aws:s3:::b/completions/t/r.json")
    assert not iam_match("arn:aws:s3:::b/completions/*", "arn:aws:s3:::b/results/x")
    assert iam_match(
        "arn:aws:secretsmanager:r:a:secret:name-??????", "arn:aws:secretsmanager:r:a:secret:name-AbC123"
    )
    assert not iam_match(
        "arn:aws:secretsmanager:r:a:secret:name-??????", "arn:aws:secretsmanager:r:a:secret:name-x"
    )
    assert iam_match("dynamodb:GetItem", "DynamoDB:getitem", case_sensitive=False)
    assert not iam_match("arn:aws:s3:::b/[ab]", "arn:aws:s3:::b/a")  # no character classes in IAM


def test_the_results_dlq_send_is_the_one_sam_adds(template: dict[str, Any]) -> None:
    """Lambda sends a stream batch given up to the on-failure destination with the function's role; SAM
    grants that SendMessage for an SQS destination with `Type: SQS`, so the role states no send itself."""
    (event,) = properties(template, "ResultsFunction")["Events"].values()
    assert event["Type"] == "DynamoDB"
    assert event["Properties"]["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["ResultsDeadLetterQueue", "Arn"]},
    }
    assert not [g for g in _grants(template)["ResultsFunction"] if g.action.startswith("sqs:")]
