"""Runware REST client: batched submits, getResponse polling and SSE streaming over one pooled session.

Retries follow docs/runware-behaviour.md: 429/5xx/timeouts/resets back off exponentially with full jitter,
honour Retry-After, and stop at the caller's deadline. Permanent errors raise typed exceptions.
A resubmitted taskUUID that Runware already has (conflictTaskUUID) counts as accepted.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from pydantic import ValidationError
from requests.adapters import HTTPAdapter

from .back_pressure import THROTTLE_STATUSES, CooldownTooLong, SharedBackPressure
from .contract import (
    AuthenticationTask,
    GetResponseTask,
    InferenceResult,
    RunwareError,
    TextInferenceTask,
)
from .deadline import Deadline
from .domain.errors import clipped
from .runware_errors import (
    PERMANENT_BY_STATUS,
    TRANSIENT_STATUSES,
    InvalidRequestError,
    PermanentRunwareError,
    RunwareApiError,
    TransientRunwareError,
)

USER_AGENT = "runrelay/0.1"


@dataclass
class SubmitOutcome:
    """What Runware did with each task of a submit: taken (new), already known (conflictTaskUUID),
    rejected, or sync results. Each task sent is in at most one of the first three."""

    taken: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    rejected: dict[str, RunwareError] = field(default_factory=dict)
    results: list[InferenceResult] = field(default_factory=list)
    http_requests: int = 0
    retries: int = 0

    @property
    def accepted(self) -> list[str]:
        """Every task Runware has now: a resubmitted one it already had counts as accepted."""
        return self.taken + self.conflicts


@dataclass
class PollOutcome:
    """getResponse answer: final results, still-processing UUIDs and per-task errors."""

    results: list[InferenceResult] = field(default_factory=list)
    processing: list[str] = field(default_factory=list)
    errors: dict[str, RunwareError] = field(default_factory=dict)


@dataclass
class StreamEvent:
    """One SSE chunk: a text delta, or the closing fields (finishReason, usage, cost)."""

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    cost: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 0.25
    cap_seconds: float = 8.0
    connect_timeout: float = 3.05
    read_timeout: float = 30.0
    # Never start an attempt with less time than this left: it could not finish anyway.
    min_attempt_seconds: float = 0.5


@dataclass
class _Attempt:
    response: requests.Response | None = None
    failure: RunwareApiError | None = None
    retry_after: float | None = None
    throttled: bool = False


class RunwareClient:
    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        key_in_body: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        pacing: SharedBackPressure | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("a Runware API key is required")
        self.api_url = api_url
        self._api_key = api_key
        self._key_in_body = key_in_body
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._jitter = jitter
        self._session = session or _pooled_session()
        self._pacing = pacing  # None: each caller backs off alone
        self.retries = 0

    def __repr__(self) -> str:  # never show the key
        return f"RunwareClient(api_url={self.api_url!r})"

    # -- public calls -------------------------------------------------------------------------

    def submit(self, tasks: Sequence[TextInferenceTask], deadline: Deadline) -> SubmitOutcome:
        """POST the tasks as one array. Per-task 400s are isolated so one bad task never sinks the batch."""
        outcome = SubmitOutcome()
        self._submit_batch(list(tasks), deadline, outcome)
        return outcome

    def _submit_batch(
        self, batch: list[TextInferenceTask], deadline: Deadline, outcome: SubmitOutcome
    ) -> None:
        while batch:
            try:
                body = self._post([t.to_request() for t in batch], deadline, outcome)
            except PermanentRunwareError as error:
                only_conflicts = bool(error.errors) and all(e.is_conflict for e in error.errors)
                if not isinstance(error, InvalidRequestError) and not only_conflicts:
                    raise  # 401/402/403: the account, not a task, is at fault
                # A 400 means nothing in the request ran: settle the tasks it names, resend the rest.
                named = {e.taskUUID: e for e in error.errors if e.taskUUID}
                for uuid, item in named.items():
                    if item.is_conflict:
                        outcome.conflicts.append(uuid)
                    else:
                        outcome.rejected[uuid] = item
                if named:
                    batch = [t for t in batch if str(t.taskUUID) not in named]
                    continue
                if len(batch) == 1:
                    only = str(batch[0].taskUUID)
                    first = error.errors[0] if error.errors else RunwareError(code="invalidRequest")
                    outcome.rejected[only] = first.model_copy(update={"taskUUID": only})
                    return
                # The 400 blames no task: one request per task finds the bad one(s).
                for task in batch:
                    self._submit_batch([task], deadline, outcome)
                return
            self._read_submit_answer(batch, body, outcome)
            return

    def get_response(self, task_uuids: Sequence[str], deadline: Deadline) -> PollOutcome:
        """Poll results; reads failures from a top-level `errors` array and from `status: error` items."""
        outcome = PollOutcome()
        if not task_uuids:
            return outcome
        items = [GetResponseTask.model_validate({"taskUUID": uuid}).to_request() for uuid in task_uuids]
        return poll_outcome(self._post(items, deadline))

    def stream(self, task: TextInferenceTask, deadline: Deadline) -> Iterator[StreamEvent]:
        """Yield deltas from Runware's SSE stream; the final events carry finishReason, usage and cost."""
        payload = [{**task.to_request(), "deliveryMethod": "stream"}]
        response, _ = self._send(payload, deadline, stream=True)
        with response:
            for line in response.iter_lines(decode_unicode=True):
                event = _parse_sse_line(line)
                if event is _DONE:
                    return
                if isinstance(event, StreamEvent):
                    yield event

    # -- transport ----------------------------------------------------------------------------

    def _post(
        self, items: list[dict[str, Any]], deadline: Deadline, outcome: SubmitOutcome | None = None
    ) -> dict[str, Any]:
        response, retries = self._send(items, deadline)
        if outcome is not None:
            outcome.http_requests += 1 + retries
            outcome.retries += retries
        with response:
            return _json_body(response)

    def _send(
        self, items: list[dict[str, Any]], deadline: Deadline, *, stream: bool = False
    ) -> tuple[requests.Response, int]:
        """One logical request: retried on transient failures until the deadline, raises on permanent ones."""
        payload = items
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self._key_in_body:
            payload = [AuthenticationTask(apiKey=self._api_key).to_request(), *items]
        else:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if stream:
            headers["Accept"] = "text/event-stream"
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        attempt = 0
        while True:
            remaining = deadline.remaining()
            if remaining < self._retry.min_attempt_seconds:
                raise TransientRunwareError(None, [], "deadline reached before Runware accepted the request")
            self._wait_turn(deadline, stream)
            answer: _Attempt | None = None
            try:
                answer = self._attempt(data, headers, deadline, stream)
            finally:  # the place in the window is given back however the attempt ended
                if answer is None or not answer.throttled:
                    self._attempt_done(stream)
            if answer.response is not None:
                return answer.response, attempt
            delay = self._backoff(attempt, answer.retry_after)
            if answer.throttled:
                self._attempt_done(stream, throttled=True, pause=delay)
            if delay + self._retry.min_attempt_seconds > deadline.remaining():
                assert answer.failure is not None  # no response: a transient failure
                raise answer.failure
            attempt += 1
            self.retries += 1
            self._sleep(delay)

    def _attempt(self, data: bytes, headers: dict[str, str], deadline: Deadline, stream: bool) -> _Attempt:
        """One POST: the response, or the transient failure to retry; raises on a permanent one."""
        timeout = (
            min(self._retry.connect_timeout, deadline.remaining()),
            min(self._retry.read_timeout, deadline.remaining()),
        )
        try:
            response = self._session.post(
                self.api_url, data=data, headers=headers, timeout=timeout, stream=stream
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            return _Attempt(failure=TransientRunwareError(None, [], f"{type(exc).__name__}: {exc}"))
        if response.status_code < 400:
            return _Attempt(response=response)
        with response:
            errors = _errors_of(_json_body(response))
        if response.status_code not in TRANSIENT_STATUSES and response.status_code < 500:
            permanent = PERMANENT_BY_STATUS.get(response.status_code, PermanentRunwareError)
            raise permanent(response.status_code, errors, response.reason or "")
        return _Attempt(
            failure=TransientRunwareError(response.status_code, errors, response.reason or ""),
            retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
            throttled=response.status_code in THROTTLE_STATUSES,
        )

    def _wait_turn(self, deadline: Deadline, stream: bool) -> None:
        """Shared pacing (not for a stream, which one user watches): the cool-down, then the window."""
        if self._pacing is None or stream:
            return
        try:
            self._pacing.before_attempt(deadline, self._retry.min_attempt_seconds)
        except CooldownTooLong as error:
            raise TransientRunwareError(429, [], str(error)) from None

    def _attempt_done(self, stream: bool, *, throttled: bool = False, pause: float = 0.0) -> None:
        if self._pacing is not None and not stream:
            self._pacing.after_attempt(throttled=throttled, pause_seconds=pause)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter; Runware's Retry-After is a floor, not a suggestion."""
        ceiling = min(self._retry.cap_seconds, self._retry.base_seconds * (2**attempt))
        delay = ceiling * self._jitter()
        return max(delay, retry_after) if retry_after is not None else delay

    # -- submit answers -----------------------------------------------------------------------

    @staticmethod
    def _read_submit_answer(
        tasks: Sequence[TextInferenceTask], body: dict[str, Any], outcome: SubmitOutcome
    ) -> None:
        sent = {str(task.taskUUID) for task in tasks}
        failed: set[str] = set()
        for error in _errors_of(body):
            uuid = error.taskUUID
            if uuid is None or uuid not in sent:
                continue
            failed.add(uuid)
            if error.is_conflict:
                outcome.conflicts.append(uuid)
            else:
                outcome.rejected[uuid] = error
        for raw in body.get("data") or []:
            if isinstance(raw, dict) and raw.get("text") is not None and "taskUUID" in raw:
                outcome.results.append(InferenceResult.model_validate(raw))
        # An async acknowledgement may list the tasks or be an empty `data` array: both mean accepted.
        outcome.taken.extend(uuid for uuid in (str(t.taskUUID) for t in tasks) if uuid not in failed)


_DONE = object()


def _parse_sse_line(line: str | None) -> StreamEvent | object | None:
    """Read one SSE line; tolerates `:` comments, `{"data": {...}}` wrappers and usage on a later line."""
    if not line or line.startswith(":") or not line.startswith("data:"):
        return None
    data = line[len("data:") :].strip()
    if data == "[DONE]":
        return _DONE
    try:
        raw = json.loads(data)
    except ValueError:
        return None
    if isinstance(raw, dict) and isinstance(raw.get("data"), dict):
        raw = raw["data"]
    if not isinstance(raw, dict):
        return None
    delta: dict[str, Any] = raw["delta"] if isinstance(raw.get("delta"), dict) else {}
    usage = raw.get("usage") if isinstance(raw.get("usage"), dict) else None
    cost = raw.get("cost")
    return StreamEvent(
        text=str(delta.get("text") or ""),
        reasoning=str(delta.get("reasoningContent") or ""),
        finish_reason=raw.get("finishReason"),
        usage=usage,
        cost=float(cost) if isinstance(cost, int | float) else None,
        raw=raw,
    )


def _pooled_session() -> requests.Session:
    session = requests.Session()
    # Retries are ours (deadline-aware); urllib3's own stay off.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _json_body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"data": body} if isinstance(body, list) else {}


def poll_outcome(body: dict[str, Any]) -> PollOutcome:
    """A getResponse answer, item by item: one item we cannot read fails its own task with a clear error
    (`invalidResult`), never the whole poll, which every reconciler run would meet again."""
    outcome = PollOutcome()
    for error in _errors_of(body):
        if error.taskUUID:
            outcome.errors[error.taskUUID] = error
    for raw in body.get("data") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("taskUUID"), str):
            continue
        try:
            result = InferenceResult.model_validate(raw)
        except ValidationError as problem:
            outcome.errors[raw["taskUUID"]] = RunwareError(
                code="invalidResult",
                message=clipped(f"Runware's result does not match its contract: {problem}"),
                taskUUID=raw["taskUUID"],
            )
            continue
        if result.is_error:
            outcome.errors[result.taskUUID] = result.error or RunwareError(
                code="taskFailed", message="Runware reported status error", taskUUID=result.taskUUID
            )
        elif result.text is not None or result.status == "success":
            outcome.results.append(result)
        else:
            outcome.processing.append(result.taskUUID)
    return outcome


def _errors_of(body: dict[str, Any]) -> list[RunwareError]:
    """Both documented failure keys: an `errors` array and a single `error` object."""
    raw: list[Any] = []
    if isinstance(body.get("errors"), list):
        raw.extend(body["errors"])
    if isinstance(body.get("error"), dict):
        raw.append(body["error"])
    return [_error_of(item) for item in raw if isinstance(item, dict)]


def _error_of(item: dict[str, Any]) -> RunwareError:
    # A null field is taken as absent (`code: null` is "unknown"), as the webhook receiver does.
    present = {key: value for key, value in item.items() if value is not None}
    try:
        return RunwareError.model_validate(present)
    except ValidationError as problem:
        task_uuid = present.get("taskUUID")
        return RunwareError(
            code="invalidError",
            message=clipped(f"Runware's error does not match its contract: {problem}"),
            taskUUID=task_uuid if isinstance(task_uuid, str) else None,
        )


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
