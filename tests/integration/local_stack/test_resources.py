"""Resources provisioned from template.yaml onto DynamoDB Local and moto match the template."""

from __future__ import annotations

import json
import time
from typing import Any

from local.stack.aws_resources import StackResources
from local.stack.template_model import load_template, properties

TEMPLATE = load_template()


def _receive_all(sqs: Any, queue_url: str, wait: int = 1) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get(
        "Messages", []
    )
    for message in messages:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def _s3_records(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """S3 event records among the messages (S3's one-off s3:TestEvent carries none)."""
    return [record for m in messages for record in json.loads(m["Body"]).get("Records", [])]


def test_table_has_the_template_keys_indexes_and_ttl(
    aws_clients: Any, provisioned_stack: StackResources
) -> None:
    table = aws_clients.dynamodb.describe_table(TableName=provisioned_stack.table_name)["Table"]
    spec = properties(TEMPLATE, "TasksTable")

    assert provisioned_stack.table_name == f"{provisioned_stack.stack_name}-TasksTable"
    assert table["KeySchema"] == spec["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(spec["AttributeDefinitions"], key=str)
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"BySource", "OpenTasks", "ByCaller"}
    for expected in spec["GlobalSecondaryIndexes"]:
        assert indexes[expected["IndexName"]]["KeySchema"] == expected["KeySchema"]
        assert indexes[expected["IndexName"]]["Projection"] == expected["Projection"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    ttl = aws_clients.dynamodb.describe_time_to_live(TableName=provisioned_stack.table_name)
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}


def test_queues_carry_the_template_attributes_and_redrive_to_the_dlq(
    aws_clients: Any, provisioned_stack: StackResources
) -> None:
    attributes = aws_clients.sqs.get_queue_attributes(
        QueueUrl=provisioned_stack.ingest_queue_url, AttributeNames=["All"]
    )["Attributes"]
    spec = properties(TEMPLATE, "IngestQueue")

    assert attributes["VisibilityTimeout"] == str(spec["VisibilityTimeout"])
    assert attributes["MessageRetentionPeriod"] == str(spec["MessageRetentionPeriod"])
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == provisioned_stack.dead_letter_queue_arn
    assert int(redrive["maxReceiveCount"]) == spec["RedrivePolicy"]["maxReceiveCount"] == 5
    dlq = aws_clients.sqs.get_queue_attributes(
        QueueUrl=provisioned_stack.dead_letter_queue_url, AttributeNames=["MessageRetentionPeriod"]
    )["Attributes"]
    assert dlq["MessageRetentionPeriod"] == str(
        properties(TEMPLATE, "IngestDeadLetterQueue")["MessageRetentionPeriod"]
    )


def test_bucket_is_versioned_and_notifies_the_queue_for_the_prefix_only(
    aws_clients: Any, provisioned_stack: StackResources
) -> None:
    s3, sqs, bucket = aws_clients.s3, aws_clients.sqs, provisioned_stack.bucket_name
    assert provisioned_stack.input_prefix == "incoming/"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    _receive_all(sqs, provisioned_stack.ingest_queue_url)  # S3's s3:TestEvent, sent on configuration

    s3.put_object(Bucket=bucket, Key="elsewhere/ignored.txt", Body=b"not a task")
    put = s3.put_object(Bucket=bucket, Key="incoming/a prompt.txt", Body=b"Say hi")

    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while not records and time.monotonic() < deadline:
        records = _s3_records(_receive_all(sqs, provisioned_stack.ingest_queue_url))
    assert len(records) == 1
    record = records[0]
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == bucket
    assert record["s3"]["object"]["key"] == "incoming/a+prompt.txt"  # URL-encoded, slashes kept
    # The shape S3 really sends (moto's records are completed by local.stack.services.s3_event_fidelity).
    assert record["s3"]["object"]["versionId"] == put["VersionId"]
    assert set(record) >= {"userIdentity", "requestParameters", "responseElements"}
    assert len(record["s3"]["object"]["sequencer"]) >= 16
    assert _s3_records(_receive_all(sqs, provisioned_stack.ingest_queue_url, wait=0)) == []


def test_secrets_have_the_generated_shape_and_the_given_api_key(
    aws_clients: Any, provisioned_stack: StackResources
) -> None:
    secrets = aws_clients.secretsmanager
    webhook = json.loads(
        secrets.get_secret_value(SecretId=provisioned_stack.webhook_secret_arn)["SecretString"]
    )
    generate = properties(TEMPLATE, "WebhookSecret")["GenerateSecretString"]

    assert set(webhook) == {"previous", "current"}
    assert webhook["previous"] == ""
    assert len(webhook["current"]) == generate["PasswordLength"]
    assert webhook["current"].isalnum()  # ExcludePunctuation
    api_key = secrets.get_secret_value(SecretId=provisioned_stack.runware_api_key_secret_name)["SecretString"]
    assert api_key == "test-key"


def test_two_stacks_on_the_same_servers_do_not_share_resources(
    aws_clients: Any, provisioned_stack: StackResources
) -> None:
    from local.stack.aws_resources import PhysicalNames, provision

    other = provision(
        TEMPLATE, aws_clients, PhysicalNames(f"{provisioned_stack.stack_name}x"), region="us-east-1"
    )
    assert other.table_name != provisioned_stack.table_name
    assert other.ingest_queue_url != provisioned_stack.ingest_queue_url
    assert other.bucket_name != provisioned_stack.bucket_name
