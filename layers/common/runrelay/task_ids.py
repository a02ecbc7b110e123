"""Deterministic task identity: the same idempotency key always yields the same taskUUID.

A redelivered SQS message or a re-uploaded identical S3 object therefore maps to the task Runware
already has (it answers conflictTaskUUID), never to a second paid run.

A task that wants N results is sent to Runware as N tasks of one result each (`result_task_uuid`): a
webhook then names exactly one result by its taskUUID, so a redelivery is told apart from a second
result with the same content (Runware's results carry no index, and identical texts without a seed are
legitimate).
"""

from __future__ import annotations

import hashlib
import uuid

# Namespacing keeps our UUIDs apart from other applications hashing the same keys.
_NAMESPACE = b"runrelay/taskUUID/v1\x00"
# Runware's numberResults maximum: a task has this many result slots at most, each its own Runware task.
# Here, not in `contract`, so the webhook can check a slot without importing pydantic.
MAX_NUMBER_RESULTS = 4


def task_uuid_for(idempotency_key: str) -> uuid.UUID:
    """A UUID-v4-shaped identifier (version 4, RFC 4122 variant bits) derived from the key by SHA-256."""
    digest = bytearray(hashlib.sha256(_NAMESPACE + idempotency_key.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40  # version 4
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return uuid.UUID(bytes=bytes(digest))


def result_task_uuid(task_uuid: str, slot: int) -> str:
    """The taskUUID of the Runware task that produces result `slot` of a task: slot 0 is the task itself,
    so a one-result task is sent under its own UUID."""
    if slot == 0:
        return task_uuid
    return str(task_uuid_for(f"{task_uuid}#result{slot}"))
