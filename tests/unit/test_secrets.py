"""Secrets are read once per container and read again after SECRET_CACHE_SECONDS (a rotation shows)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from runrelay import aws_clients, secrets


@pytest.fixture
def secretsmanager(aws: dict[str, Any]) -> Iterator[Any]:
    import boto3

    aws_clients.cache_clear()
    secrets.cache_clear()
    yield boto3.client("secretsmanager", region_name="us-east-1")
    secrets.cache_clear()
    aws_clients.cache_clear()


def test_a_secret_is_cached_until_it_is_old(secretsmanager: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    secretsmanager.create_secret(Name="hook", SecretString=json.dumps({"current": "a", "previous": ""}))
    clock = [1000.0]
    monkeypatch.setattr(secrets.time, "monotonic", lambda: clock[0])
    assert secrets.webhook_secrets("hook") == ["a"]
    secretsmanager.put_secret_value(
        SecretId="hook", SecretString=json.dumps({"current": "b", "previous": "a"})
    )
    clock[0] += secrets.SECRET_CACHE_SECONDS - 1
    assert secrets.webhook_secrets("hook") == ["a"]  # still cached
    clock[0] += 2
    assert secrets.webhook_secrets("hook") == ["b", "a"]  # read again: the rotation shows


def test_an_api_key_is_plain_text_or_json(secretsmanager: Any) -> None:
    secretsmanager.create_secret(Name="plain", SecretString=" key-1 \n")
    secretsmanager.create_secret(Name="json", SecretString=json.dumps({"apiKey": "key-2"}))
    assert (secrets.runware_api_key("plain"), secrets.runware_api_key("json")) == ("key-1", "key-2")
