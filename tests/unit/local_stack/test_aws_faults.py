"""The AWS fault injector behaves as AWS does: below botocore's retries, per service and operation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError, ResponseStreamingError
from moto import mock_aws

from local.stack.aws_faults import AwsFaults, count_faults, install

ONE_ATTEMPT = Config(retries={"mode": "standard", "max_attempts": 1})


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def inject(tmp_path: Path) -> Iterator[Any]:
    undo: list[Any] = []

    def apply(**rates: Any) -> str:
        log = str(tmp_path / "faults.log")
        undo.append(install(AwsFaults(log_file=log, **rates)))
        return log

    yield apply
    for step in reversed(undo):
        step()


def _table() -> Any:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", config=ONE_ATTEMPT)
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb


def test_throttling_reaches_the_caller_when_retries_run_out(aws: None, inject: Any) -> None:
    dynamodb = _table()
    log = inject(throttle=1.0)
    with pytest.raises(ClientError) as raised:
        dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})
    assert raised.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert count_faults(log)["dynamodb throttle"] >= 1


def test_botocore_retries_a_server_error_as_on_aws(aws: None, inject: Any) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", config=Config(retries={"max_attempts": 3}))
    _table()
    log = inject(server_error=1.0)
    with pytest.raises(ClientError, match="InternalServerError"):
        dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})
    assert count_faults(log)["dynamodb server_error"] >= 3  # the first attempt and botocore's retries


def test_a_lost_response_leaves_the_write_applied(aws: None, inject: Any) -> None:
    dynamodb = _table()
    inject(lost_response=1.0)
    with pytest.raises(ReadTimeoutError):
        dynamodb.put_item(
            TableName="t", Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)"
        )
    assert dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}}


def test_a_transaction_is_cancelled_for_a_conflict(aws: None, inject: Any) -> None:
    dynamodb = _table()
    inject(transaction_conflict=1.0)
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}}}}])
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert raised.value.response["CancellationReasons"] == [
        {"Code": "TransactionConflict", "Message": "injected"}
    ]
    assert "Item" not in dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})


def test_put_events_refuses_some_entries_and_delivers_only_the_others(aws: None, inject: Any) -> None:
    events = boto3.client("events", region_name="us-east-1", config=ONE_ATTEMPT)
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventPattern=json.dumps({"source": ["t"]}))
    events.put_targets(Rule="all", Targets=[{"Id": "q", "Arn": arn}])
    inject(put_events_refused=1.0)
    entries = [{"Source": "t", "DetailType": "d", "Detail": json.dumps({"n": n})} for n in range(6)]
    answer = events.put_events(Entries=entries)

    assert len(answer["Entries"]) == 6
    refused = [n for n, entry in enumerate(answer["Entries"]) if "ErrorCode" in entry]
    assert answer["FailedEntryCount"] == len(refused) >= 1
    delivered = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        delivered += [json.loads(m["Body"])["detail"]["n"] for m in messages]
    assert sorted(delivered) == [n for n in range(6) if n not in refused]


def test_a_get_object_body_breaks_off(aws: None, inject: Any) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", config=ONE_ATTEMPT)
    s3.create_bucket(Bucket="fault-bucket")
    s3.put_object(Bucket="fault-bucket", Key="k", Body=b"x" * 10_000)
    inject(broken_body=1.0)
    body = s3.get_object(Bucket="fault-bucket", Key="k")["Body"]
    assert len(body.read(1000)) == 1000
    with pytest.raises(ResponseStreamingError):
        body.read()


def test_an_outage_fails_every_call_to_its_service_only(aws: None, tmp_path: Path) -> None:
    dynamodb = _table()
    s3 = boto3.client("s3", region_name="us-east-1", config=ONE_ATTEMPT)
    s3.create_bucket(Bucket="fault-bucket")
    log = str(tmp_path / "faults.log")
    undo = install(AwsFaults(log_file=log).with_outage("dynamodb", start_in=0, seconds=60))
    try:
        for _ in range(5):
            with pytest.raises(Exception):  # noqa: B017, PT011 (a 500 or a reset, at random)
                dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})
        s3.put_object(Bucket="fault-bucket", Key="k", Body=b"fine")
    finally:
        undo()
    counts = count_faults(log)
    assert set(counts) == {"dynamodb outage"}  # S3 was not touched
    assert counts["dynamodb outage"] >= 5
