"""Make moto's S3 event notifications look like the ones S3 really sends.

moto delivers ObjectCreated notifications to the configured queue (prefix/suffix filters honoured),
but it encodes the key's slashes as %2F, and its records lack `userIdentity`, `requestParameters`,
`responseElements`, `s3.object.versionId` (for versioned buckets) and `s3.object.sequencer`. Code that
parses the full AWS shape (for instance Powertools' S3 models, or idempotency keys built from the
version id) would otherwise only break in the cloud. This patch runs inside the moto server process.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

from moto.s3 import notifications

_LOCAL_PRINCIPAL = "AWS:AIDALOCALSTACKPRINCIPAL"
_sequencer_lock = threading.Lock()
_last_sequencer = 0


def _next_sequencer() -> str:
    """Hex, fixed width, strictly increasing: what consumers compare to order events of one key."""
    global _last_sequencer
    with _sequencer_lock:
        _last_sequencer = max(_last_sequencer + 1, time.time_ns())
        return f"{_last_sequencer:018X}"


def _complete(original: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = original(event_name, bucket, key, notification_id)
        for record in event["Records"]:
            record.setdefault("userIdentity", {"principalId": _LOCAL_PRINCIPAL})
            record.setdefault("requestParameters", {"sourceIPAddress": "127.0.0.1"})
            record.setdefault(
                "responseElements",
                {
                    "x-amz-request-id": secrets.token_hex(8).upper(),
                    "x-amz-id-2": base64.b64encode(secrets.token_bytes(48)).decode("ascii"),
                },
            )
            s3_object = record["s3"]["object"]
            # S3 URL-encodes the key but keeps its slashes (moto encodes them as %2F too).
            s3_object["key"] = quote_plus(key.name, safe="/")
            if bucket.is_versioned and getattr(key, "version_id", "null") != "null":
                s3_object["versionId"] = key.version_id
            s3_object["sequencer"] = _next_sequencer()
            record["s3"]["bucket"].setdefault("ownerIdentity", {"principalId": _LOCAL_PRINCIPAL})
        return event

    get_s3_event.__wrapped__ = original  # type: ignore[attr-defined]
    return get_s3_event


def apply() -> None:
    """Idempotent: wraps moto's event builder once."""
    current = notifications._get_s3_event
    if not hasattr(current, "__wrapped__"):
        notifications._get_s3_event = _complete(current)
