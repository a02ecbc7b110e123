"""The AWS call log names each call's service, operation and resources, and nothing of its payload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.stack.aws_call_log import install, partiql_target, read_calls, resources_of, unmetered_inserts


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stack-SomeFunction")
    with mock_aws():
        undo = install(str(tmp_path))
        try:
            yield tmp_path
        finally:
            undo()


def _calls(folder: Path, operation: str) -> list[dict[str, Any]]:
    return [call for call in read_calls(folder) if call["operation"] == operation]


def test_each_call_is_logged_with_its_function_and_resources(recorded: Path) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="t", Item={"pk": {"S": "secret-prompt"}})
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "b"}}}},
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "SET x = :x",
                        "ExpressionAttributeValues": {":x": {"S": "y"}}}},
        ]
    )  # fmt: skip
    dynamodb.batch_get_item(RequestItems={"t": {"Keys": [{"pk": {"S": "a"}}]}})
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bucket-b")
    s3.put_object(Bucket="bucket-b", Key="results/x.jsonl", Body=b"secret body")

    (put,) = _calls(recorded, "PutItem")
    assert put == {
        "function": "stack-SomeFunction",
        "service": "dynamodb",
        "operation": "PutItem",
        "resources": {"TableName": "t"},
    }
    (transaction,) = _calls(recorded, "TransactWriteItems")
    assert transaction["resources"]["TransactItems"] == [
        {"Action": "Put", "TableName": "t"},
        {"Action": "Update", "TableName": "t"},
    ]
    assert _calls(recorded, "BatchGetItem")[0]["resources"] == {"Tables": ["t"]}
    assert _calls(recorded, "PutObject")[0]["resources"] == {"Bucket": "bucket-b", "Key": "results/x.jsonl"}
    logged = "".join(path.read_text() for path in recorded.glob("*.jsonl"))
    assert "secret" not in logged  # items and bodies are never written


def test_uninstall_stops_logging(tmp_path: Path) -> None:
    with mock_aws():
        undo = install(str(tmp_path))
        undo()
        boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="q")
    assert list(read_calls(tmp_path)) == []


_INSERT = """INSERT INTO "rr-tasks" VALUE {'pk': ?, 'status': ?}"""


def test_partiql_statements_name_their_iam_kind_and_table() -> None:
    assert partiql_target(_INSERT) == {"Action": "Insert", "TableName": "rr-tasks"}
    assert partiql_target('SELECT pk FROM "rr-tasks" WHERE pk = ?') == {
        "Action": "Select",
        "TableName": "rr-tasks",
    }
    assert partiql_target('delete from "t1" where pk = ?')["Action"] == "Delete"
    params = {"Statements": [{"Statement": _INSERT, "Parameters": []}]}
    assert resources_of("BatchExecuteStatement", params) == {"Statements": [partiql_target(_INSERT)]}


def test_unmetered_inserts_are_the_items_written_and_the_refused_count() -> None:
    statements = [
        {"Statement": _INSERT, "Parameters": [{"S": f"TASK#{n}"}, {"S": "PENDING"}]} for n in range(3)
    ]
    answer = {"Responses": [{}, {"Error": {"Code": "DuplicateItem", "Message": "m"}}, {}]}
    assert unmetered_inserts({"Statements": statements}, answer) == {
        "items": [
            {"TableName": "rr-tasks", "Item": {"pk": {"S": f"TASK#{n}"}, "status": {"S": "PENDING"}}}
            for n in (0, 2)
        ],
        "refused": 1,
    }
