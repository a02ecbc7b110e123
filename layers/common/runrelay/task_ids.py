"""Deterministic task identity: the same idempotency key always yields the same taskUUID.

A redelivered SQS message or a re-uploaded identical S3 object therefore maps to the task Runware
already has (it answers conflictTaskUUID), never to a second paid run.

A task that wants N results is sent to Runware as N tasks of one result each (`result_task_uuid`): a
webhook then names exactly one result by its taskUUID, so a redelivery is told apart from a second
result with the same content (Runware's results carry no index, and identical texts without a seed are
legitimate).

A retried task runs again as a new attempt (`attempt_task_uuid`): each attempt has its own taskUUIDs,
derived from the task's and the attempt number, so an attempt is itself exactly-once and a late answer to
an earlier attempt is told apart from the current one.
"""

from __future__ import annotations

import hashlib
import uuid

# Namespacing keeps our UUIDs apart from other applications hashing the same keys.
_NAMESPACE = b"runrelay/taskUUID/v1\x00"
# Runware's numberResults maximum: a task has this many result slots at most, each its own Runware task.
# Here, not in `contract`, so the webhook can check a slot without importing pydantic.
MAX_NUMBER_RESULTS = 4
# How many times one task may run in all (its first attempt and its retries).
MAX_ATTEMPTS = 10


def task_uuid_for(idempotency_key: str) -> uuid.UUID:
    """A UUID-v4-shaped identifier (version 4, RFC 4122 variant bits) derived from the key by SHA-256."""
    digest = bytearray(hashlib.sha256(_NAMESPACE + idempotency_key.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40  # version 4
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return uuid.UUID(bytes=bytes(digest))


# Objects read line by line key a task by its line number (1-based); every other source by its 0-based
# place, as keys always were, so taskUUIDs made before line keys were shared stay the same.
LINE_NUMBERED_SUFFIXES = (".jsonl", ".ndjson")


def line_key(source_id: str, seq: int) -> str:
    """The idempotency key of task `seq` of a source when the caller gave it no `id`.

    Every such task's taskUUID follows from its source and its line alone, so the table need not index
    it to find it again (adapters/dynamodb/tasks.py). A source is `s3://bucket/key#etag` (the ETag holds
    no '#') or `sqs:<messageId>`.
    """
    name = source_id.rsplit("#", 1)[0].lower()
    position = seq if name.endswith(LINE_NUMBERED_SUFFIXES) else seq - 1
    return f"{source_id}:{position}"


def line_task_uuid(source_id: str, seq: int) -> str:
    """The taskUUID of task `seq` of a source keyed by its line (`line_key`)."""
    return str(task_uuid_for(line_key(source_id, seq)))


def attempt_task_uuid(task_uuid: str, attempt: int) -> str:
    """The taskUUID attempt `attempt` of a task is sent under: attempt 0 is the task itself."""
    if attempt == 0:
        return task_uuid
    return str(task_uuid_for(f"{task_uuid}#attempt{attempt}"))


def result_task_uuid(task_uuid: str, slot: int, attempt: int = 0) -> str:
    """The taskUUID of the Runware task that produces result `slot` of a task's attempt `attempt`: slot 0
    of attempt 0 is the task itself, so a one-result task is first sent under its own UUID."""
    base = attempt_task_uuid(task_uuid, attempt)
    if slot == 0:
        return base
    return str(task_uuid_for(f"{base}#result{slot}"))
