"""Receive Runware webhook callbacks: authenticate, normalise every documented shape, store once.

Answers: 200 stored/duplicate; 401 no token; 403 token not valid for the body's taskUUID, or a URL whose
task and result do not name that taskUUID; 400 bad JSON or shape; 413 body too large. Nothing is written
for any rejected request. 5xx only when storage fails, so Runware retries later.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .domain.tasks import StoreOutcome
from .models import DEFAULT_MODEL, ModelEntry
from .task_ids import MAX_ATTEMPTS, MAX_NUMBER_RESULTS, result_task_uuid
from .webhook_results import InvalidResult, WebhookResult, error_document
from .webhook_token import token_is_valid

if TYPE_CHECKING:
    from .ports import TaskRepository

MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class WebhookReply:
    status: int
    body: dict[str, Any]


@dataclass
class WebhookReport:
    """What happened, for logs and metrics."""

    task_uuid: str | None = None
    outcomes: list[StoreOutcome] = field(default_factory=list)
    rejected_reason: str | None = None


class BadWebhook(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class _Failure:
    task_uuid: str
    error: dict[str, Any]
    attempt: int = 0


class WebhookReceiver:
    def __init__(
        self,
        store: TaskRepository,
        secrets: Callable[[], Sequence[str]],
        max_body_bytes: int = 1_048_576,
        model: ModelEntry = DEFAULT_MODEL,
    ) -> None:
        self.store = store
        self.model = model
        self._secrets = secrets
        self.max_body_bytes = max_body_bytes

    def receive(
        self,
        body: str | bytes | None,
        token: str | None,
        *,
        task: str | None = None,
        slot: str | None = None,
        attempt: str | None = None,
    ) -> tuple[WebhookReply, WebhookReport]:
        """`token`, `task`, `slot` and `attempt` are the webhook URL's query parameters (`webhook_token`)."""
        report = WebhookReport()
        try:
            items = self._authenticated_items(body, token, report)
            if task is not None or slot is not None or attempt is not None:
                items = _addressed(items, report, task, slot, attempt)
        except BadWebhook as bad:
            report.rejected_reason = bad.code
            return WebhookReply(bad.status, {"error": bad.code, "message": str(bad)}), report
        for item in items:
            if isinstance(item, _Failure):
                changed = self.store.mark_failed(item.task_uuid, item.error, attempt=item.attempt)
                report.outcomes.append(StoreOutcome.FAILED if changed else StoreOutcome.IGNORED)
            else:
                report.outcomes.append(self.store.store_result(item))
        stored = [o.value for o in report.outcomes]
        return WebhookReply(200, {"taskUUID": report.task_uuid, "outcomes": stored}), report

    def _authenticated_items(
        self, body: str | bytes | None, token: str | None, report: WebhookReport
    ) -> list[WebhookResult | _Failure]:
        raw = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        if len(raw) > self.max_body_bytes:
            raise BadWebhook(413, "payloadTooLarge", f"body exceeds {self.max_body_bytes} bytes")
        if not token:
            raise BadWebhook(401, "missingToken", "the webhook URL's token parameter is missing")
        payload = _parse_json(raw)
        items = _normalise(payload, self.model)
        uuids = {item.task_uuid if isinstance(item, _Failure) else item.taskUUID for item in items}
        if len(uuids) != 1:
            raise BadWebhook(400, "mixedTasks", "a webhook body must concern exactly one taskUUID")
        task_uuid = uuids.pop()
        if not token_is_valid(token, task_uuid, self._secrets()):
            raise BadWebhook(403, "invalidToken", "the token is not valid for this taskUUID")
        report.task_uuid = task_uuid
        return items


# Slot 0 of attempt 0 is the task's own Runware task and carries no address; the others are named by
# their numbers (a retried attempt names its slot 0 too).
_ADDRESSED_SLOTS = {str(slot): slot for slot in range(MAX_NUMBER_RESULTS)}
_ADDRESSED_ATTEMPTS = {str(attempt): attempt for attempt in range(1, MAX_ATTEMPTS)}


def _addressed(
    items: list[WebhookResult | _Failure],
    report: WebhookReport,
    task: str | None,
    slot: str | None,
    attempt: str | None,
) -> list[WebhookResult | _Failure]:
    """Results of any Runware task but the task itself, whose UUID (named in the body) is derived from
    the task, the slot and the attempt named in the URL."""
    if task is None or slot is None or slot not in _ADDRESSED_SLOTS:
        raise BadWebhook(400, "invalidAddress", "the URL must name both a task and a result number")
    if attempt is not None and attempt not in _ADDRESSED_ATTEMPTS:
        raise BadWebhook(400, "invalidAddress", "the URL's attempt is not a retry's number")
    result_slot = _ADDRESSED_SLOTS[slot]
    attempt_number = 0 if attempt is None else _ADDRESSED_ATTEMPTS[attempt]
    if result_slot == 0 and attempt_number == 0:
        raise BadWebhook(400, "invalidAddress", "result 0 of the first attempt carries no address")
    try:
        task_uuid = str(uuid.UUID(task))
    except ValueError:
        raise BadWebhook(400, "invalidAddress", "the URL's task is not a UUID") from None
    if result_task_uuid(task_uuid, result_slot, attempt_number) != report.task_uuid:
        raise BadWebhook(403, "invalidAddress", "the URL's task and result do not name this taskUUID")
    report.task_uuid = task_uuid
    return [
        _Failure(task_uuid, item.error, attempt_number)
        if isinstance(item, _Failure)
        else replace(
            item,
            document={**item.document, "taskUUID": task_uuid},
            slot=result_slot,
            attempt=attempt_number,
        )
        for item in items
    ]


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise BadWebhook(400, "emptyBody", "the body is empty")
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise BadWebhook(400, "malformedJson", f"the body is not valid JSON: {error}") from None
    # Nesting needs brackets: a body with no more than MAX_JSON_DEPTH of them (a result has about
    # four) cannot be too deep, and counting bytes is far cheaper than walking the document.
    few_brackets = raw.count(b"{") + raw.count(b"[") <= MAX_JSON_DEPTH
    if not few_brackets and _depth(payload) > MAX_JSON_DEPTH:
        raise BadWebhook(400, "tooDeep", f"JSON nesting deeper than {MAX_JSON_DEPTH}")
    return payload


def _depth(value: Any) -> int:
    """Nesting depth without recursion (a hostile body must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def _normalise(payload: Any, model: ModelEntry) -> list[WebhookResult | _Failure]:
    """Every webhook shape in docs/runware-behaviour.md: {"data": [...]}, a bare result, {"errors": [...]},
    {"error": ...}, and results with status "error"."""
    if isinstance(payload, list):
        payload = {"data": payload}
    if not isinstance(payload, dict):
        raise BadWebhook(400, "invalidShape", "the body must be a JSON object")
    entries: list[Any] = []
    if isinstance(payload.get("data"), list):
        entries.extend(payload["data"])
    elif "data" in payload and isinstance(payload["data"], dict):
        entries.append(payload["data"])
    failures: list[Any] = []
    if isinstance(payload.get("errors"), list):
        failures.extend(payload["errors"])
    if isinstance(payload.get("error"), dict):
        failures.append({"taskUUID": payload.get("taskUUID"), **payload["error"]})
    elif not entries and not failures and "taskUUID" in payload:
        entries.append(payload)
    items: list[WebhookResult | _Failure] = [_failure(raw) for raw in failures]
    items.extend(_result_or_failure(raw, model) for raw in entries)
    if not items:
        raise BadWebhook(400, "invalidShape", "no result or error found in the body")
    return items


def _result_or_failure(raw: Any, model: ModelEntry) -> WebhookResult | _Failure:
    if not isinstance(raw, dict):
        raise BadWebhook(400, "invalidShape", "each result must be a JSON object")
    canonical = _require_uuid(raw.get("taskUUID"))
    try:
        result = WebhookResult.parse(raw, canonical, model.string_fields)
        if result.is_error:
            given = result.error or {
                "code": raw.get("code") or "taskFailed",
                "message": raw.get("message") or "status error",
            }
            return _Failure(canonical, error_document(given))
    except InvalidResult as error:
        raise BadWebhook(400, "invalidResult", f"result fields have the wrong types: {error}") from None
    if result.text is None:
        raise BadWebhook(400, "invalidResult", "a result must carry 'text' or an error")
    return result


def _failure(raw: Any) -> _Failure:
    if not isinstance(raw, dict):
        raise BadWebhook(400, "invalidShape", "each error must be a JSON object")
    task_uuid = _require_uuid(raw.get("taskUUID"))
    try:
        return _Failure(task_uuid, error_document(raw))
    except InvalidResult:
        raise BadWebhook(400, "invalidError", "error fields have the wrong types") from None


def _require_uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise BadWebhook(400, "missingTaskUUID", "taskUUID is missing")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise BadWebhook(400, "invalidTaskUUID", "taskUUID is not a UUID") from None
    if str(parsed) != value.lower():
        raise BadWebhook(400, "invalidTaskUUID", "taskUUID must be in canonical 8-4-4-4-12 form")
    return str(parsed)  # lower case, as our rows are keyed
