"""Per-task webhook tokens: Runware does not sign webhooks, so each webhookURL carries a MAC.

token = HMAC-SHA256(secret, taskUUID); the receiver recomputes it from the body's taskUUID and compares
in constant time. During a secret rotation both the current and the previous secret are accepted.

Result `slot` > 0 of a task, and every result of a retried attempt, is its own Runware task
(`task_ids.result_task_uuid`); its URL also names the task, the slot and the attempt, which the receiver
checks against the body's taskUUID (the token covers that UUID).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlencode

from .task_ids import result_task_uuid

TOKEN_PARAMETER = "token"  # noqa: S105 - the query parameter name, not a secret
TASK_PARAMETER = "task"
SLOT_PARAMETER = "result"
ATTEMPT_PARAMETER = "attempt"
WEBHOOK_PATH = "/webhooks/runware"


def token_for(secret: str, task_uuid: str) -> str:
    return hmac.new(secret.encode("utf-8"), task_uuid.lower().encode("ascii"), hashlib.sha256).hexdigest()


def token_is_valid(token: str, task_uuid: str, secrets: Iterable[str]) -> bool:
    """True when the token was made for this taskUUID with any of the accepted secrets."""
    if not token:
        return False
    given = token.encode("utf-8", "replace")
    valid = False
    for secret in secrets:
        if secret:
            # No early exit: the time taken does not tell which secret matched.
            valid |= hmac.compare_digest(given, token_for(secret, task_uuid).encode("ascii"))
    return valid


def webhook_url_for(base_url: str, secret: str, task_uuid: str, slot: int = 0, attempt: int = 0) -> str:
    """The webhookURL sent with result `slot` of a task's attempt `attempt`:
    <API base>/webhooks/runware?token=<HMAC>, plus `task=<taskUUID>&result=<slot>` for any Runware task
    other than the task itself, and `&attempt=<attempt>` for a retried attempt."""
    runware_uuid = result_task_uuid(task_uuid, slot, attempt)
    parameters: dict[str, str | int] = {TOKEN_PARAMETER: token_for(secret, runware_uuid)}
    if slot or attempt:
        parameters |= {TASK_PARAMETER: task_uuid, SLOT_PARAMETER: slot}
    if attempt:
        parameters[ATTEMPT_PARAMETER] = attempt
    return f"{base_url.rstrip('/')}{WEBHOOK_PATH}?{urlencode(parameters)}"
