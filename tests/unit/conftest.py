"""Unit fixtures.

The services' tests use the in-memory fakes (`tasks`, `jobs`, `runware`, `payloads`): no boto3, no
server. The adapters' unit tests (and the handlers' and CLI's) use `aws`/`store`: moto in-process, and
the table, built from template.yaml's own definition, on the session's DynamoDB Local. boto3 and moto
are imported inside those fixtures only, so importing this module (which the services' tests do, for
the fixtures) pulls in neither (tests/unit/test_service_tests_import_no_aws.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.fakes import FakeJobRepository, FakePayloadStore, FakeRunware, FakeTaskRepository

if TYPE_CHECKING:
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository

BUCKET = "unit-payloads"


# ==== in-memory fakes of the ports (the services' tests) ==========================================


@pytest.fixture
def payloads() -> FakePayloadStore:
    return FakePayloadStore(BUCKET)


@pytest.fixture
def tasks(payloads: FakePayloadStore, jobs: FakeJobRepository) -> FakeTaskRepository:
    return FakeTaskRepository(payloads=payloads, jobs=jobs)


@pytest.fixture
def jobs() -> FakeJobRepository:
    return FakeJobRepository()


@pytest.fixture
def runware() -> FakeRunware:
    return FakeRunware()


# ==== moto in-process (the adapters', handlers' and CLI's tests) ===================================


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, dynamodb_local: str) -> Iterator[dict[str, Any]]:
    """moto in-process for S3, SQS, Secrets Manager and CloudFormation; DynamoDB Local for the table,
    which moto cannot stand in for (the submitter creates rows with parameterised PartiQL INSERTs),
    under a name no other test uses. Clients made from the environment reach the same endpoints."""
    import uuid

    import boto3
    from moto import mock_aws

    from local.stack.template_model import load_template, table_create_kwargs

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local)
    table = f"unit-tasks-{uuid.uuid4().hex[:12]}"
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=dynamodb_local)
        s3 = boto3.client("s3", region_name="us-east-1")
        dynamodb.create_table(**table_create_kwargs(load_template(), "TasksTable", table))
        s3.create_bucket(Bucket=BUCKET)
        yield {"dynamodb": dynamodb, "s3": s3, "table": table}
        dynamodb.delete_table(TableName=table)


@pytest.fixture
def store(aws: dict[str, Any]) -> DynamoTaskRepository:
    """The DynamoDB task repository on DynamoDB Local, large texts offloaded to BUCKET (moto)."""
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
    from runrelay.adapters.s3 import S3PayloadStore

    return DynamoTaskRepository(
        aws["table"], payloads=S3PayloadStore(BUCKET, s3=aws["s3"]), dynamodb=aws["dynamodb"]
    )


def item_count(aws: dict[str, Any]) -> int:
    return int(aws["dynamodb"].scan(TableName=aws["table"], Select="COUNT")["Count"])
