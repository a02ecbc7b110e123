"""One AWS client per service per container, reused across invocations.

Clients are botocore's, made without boto3: boto3 adds resources, docs and the S3 transfer methods on top
of the same clients, and importing it is a tenth of a cold start none of our handlers needs
(bench/README.md, cold_import). The results writer's uploads use boto3's transfer manager explicitly
(`adapters.s3_uploads`). Endpoints come from the SDK's standard variables (AWS_ENDPOINT_URL,
AWS_ENDPOINT_URL_DYNAMODB, ...), so the local stack and AWS run the same code path.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import botocore.session
from botocore.config import Config

_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    # Each function's own budget (template.yaml: AWS_MAX_ATTEMPTS), botocore's variable for it.
    retries={"mode": "standard", "max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS") or 4)},
    tcp_keepalive=True,
    max_pool_connections=32,
    # Our requests are built by code, not typed by people, and the service validates them anyway:
    # botocore's client-side walk of every nested attribute value is a measurable share of a warm
    # webhook (bench/README.md).
    parameter_validation=False,
)

# One session for every client: its loader caches the shared data files (endpoints, partitions,
# retry and default config), so a second client is cheap on a cold start (bench/README.md).
# Sessions are not thread-safe, and the submit pool's threads may ask for a client at once: a lock.
_lock = threading.Lock()
_session: botocore.session.Session | None = None
_clients: dict[str, Any] = {}


def client(service: str) -> Any:
    found = _clients.get(service)
    if found is not None:
        return found
    global _session
    with _lock:
        if service not in _clients:
            if _session is None:
                _session = botocore.session.get_session()
            _clients[service] = _session.create_client(service, config=_CONFIG)
        return _clients[service]


def cache_clear() -> None:
    """Forget every client (tests that change AWS endpoints between cases)."""
    global _session
    with _lock:
        _clients.clear()
        _session = None
