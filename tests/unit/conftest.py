"""Unit fixtures.

The services' tests use the in-memory fakes (`tasks`, `jobs`, `runware`, `payloads`): no boto3, no
server. The adapters' unit tests (and the handlers' and CLI's) use `aws`/`store`: moto in-process, the
table built from template.yaml's own definition. boto3 and moto are imported inside those fixtures
only, so importing this module (which the services' tests do, for the fixtures) pulls in neither
(tests/unit/test_service_tests_import_no_aws.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.fakes import FakeJobRepository, FakePayloadStore, FakeRunware, FakeTaskRepository

if TYPE_CHECKING:
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository

TABLE = "unit-tasks"
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
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    import boto3
    from moto import mock_aws

    from local.stack.template_model import load_template, table_create_kwargs

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
    """The DynamoDB task repository on moto, large texts offloaded to BUCKET."""
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
    from runrelay.adapters.s3 import S3PayloadStore

    return DynamoTaskRepository(
        TABLE, payloads=S3PayloadStore(BUCKET, s3=aws["s3"]), dynamodb=aws["dynamodb"]
    )


def item_count(aws: dict[str, Any]) -> int:
    return int(aws["dynamodb"].scan(TableName=TABLE, Select="COUNT")["Count"])
