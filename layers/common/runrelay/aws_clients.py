"""One boto3 client per service per container, reused across invocations.

Endpoints come from boto3's standard variables (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB, ...), so
the local stack and AWS run the same code path.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"mode": "standard", "max_attempts": 4},
    tcp_keepalive=True,
    max_pool_connections=32,
)


@cache
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_CONFIG)
