"""What a Lambda SQS record's tasks are keyed on, across redrives.

Its own module, without the input parsers: the submit handler needs it at import, and the parsers (and
the pydantic models they build) are loaded with the submit service on the first record
(bench/README.md, cold_import_submit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# `runrelay redrive` sends a parked message again with its first message id in this attribute: SQS gives
# a re-sent message a new id, and a task spec without an `id` is keyed on its message's id.
REDRIVE_MESSAGE_ID_ATTRIBUTE = "runrelayMessageId"


def idempotency_message_id(record: Mapping[str, Any]) -> str:
    """The message id a Lambda SQS record's tasks are keyed on: the first id it had, across redrives."""
    attribute = (record.get("messageAttributes") or {}).get(REDRIVE_MESSAGE_ID_ATTRIBUTE) or {}
    first = attribute.get("stringValue")
    return first if isinstance(first, str) and first else str(record["messageId"])
