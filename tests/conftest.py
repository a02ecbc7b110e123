"""Fixtures shared by every test package. Each section belongs to one area; append new sections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.runware_emulator import EmulatorServer
from tests.support.webhook_sink import WebhookSink

# ==== Runware emulator and webhook sink (owner: local/runware_emulator) =================================

# Emulator timings (result spacing 20 ms, webhook backoff 250 ms .. 8 s) multiplied by this in tests.
EMULATOR_TEST_TIME_SCALE = 0.02


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., EmulatorServer]]:
    """Start emulators with custom options (`EmulatorServer` keywords); all are stopped afterwards."""
    started: list[EmulatorServer] = []

    def start(**options: Any) -> EmulatorServer:
        options.setdefault("time_scale", EMULATOR_TEST_TIME_SCALE)
        server = EmulatorServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def emulator(emulator_factory: Callable[..., EmulatorServer]) -> EmulatorServer:
    """A fresh strict Runware emulator on an ephemeral 127.0.0.1 port, any API key, no faults."""
    return emulator_factory()


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    """A local server recording webhook POSTs; `webhook_sink.fail_first(n)` makes it answer 500 n times."""
    with WebhookSink() as sink:
        yield sink


# ==== end of the Runware emulator section ============================================================


# ==== Local AWS stack: DynamoDB Local, moto server, resources from template.yaml (owner: local/ stack) ====

LOCAL_REGION = "us-east-1"


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[str]:
    """Endpoint URL of an in-memory DynamoDB Local on a free 127.0.0.1 port (one per test session)."""
    from local.stack.services import DynamoDBLocal

    with DynamoDBLocal() as server:
        yield server.endpoint_url


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Endpoint URL of a moto server (S3, SQS, Secrets Manager) in a child process (one per session)."""
    from local.stack.services import MotoServer

    with MotoServer() as server:
        yield server.endpoint_url


@pytest.fixture(scope="session")
def aws_clients(dynamodb_local: str, moto_server: str) -> Any:
    """`local.stack.aws_resources.AwsClients` for the session's DynamoDB Local and moto server."""
    from local.stack.aws_resources import AwsClients

    return AwsClients.for_endpoints(dynamodb_url=dynamodb_local, moto_url=moto_server, region=LOCAL_REGION)


@pytest.fixture
def local_stack_name() -> str:
    """A stack name no other test uses: resources of different tests never collide on shared servers."""
    import uuid

    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def provisioned_stack(aws_clients: Any, local_stack_name: str) -> Any:
    """`StackResources` of template.yaml provisioned under a fresh stack name (Runware key "test-key")."""
    from local.stack.aws_resources import PhysicalNames, provision
    from local.stack.template_model import load_template

    return provision(
        load_template(),
        aws_clients,
        PhysicalNames(local_stack_name),
        region=LOCAL_REGION,
        parameter_overrides={"RunwareApiKeySecretName": f"{local_stack_name}/runware-api-key"},
        runware_api_key="test-key",
    )


# ==== end of the local AWS stack section ===========================================================
