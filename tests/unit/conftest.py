"""Unit fixtures: moto in-process for DynamoDB/S3, the table built from template.yaml's own definition."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.stack.template_model import load_template, table_create_kwargs
from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.adapters.s3 import S3PayloadStore

TABLE = "unit-tasks"
BUCKET = "unit-payloads"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        dynamodb.create_table(**table_create_kwargs(load_template(), "TasksTable", TABLE))
        s3.create_bucket(Bucket=BUCKET)
        yield {"dynamodb": dynamodb, "s3": s3}


@pytest.fixture
def store(aws: dict[str, Any]) -> DynamoTaskRepository:
    payloads = S3PayloadStore(BUCKET, s3=aws["s3"])
    return DynamoTaskRepository(TABLE, payloads=payloads, dynamodb=aws["dynamodb"])


def item_count(aws: dict[str, Any]) -> int:
    return int(aws["dynamodb"].scan(TableName=TABLE, Select="COUNT")["Count"])
