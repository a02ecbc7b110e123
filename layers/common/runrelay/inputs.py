"""What arrives on the ingest queue, turned into task specs with stable idempotency keys.

An SQS body is one of: a task spec or an array of them (docs/architecture.md, "Inputs"), an S3 event
notification, S3's `s3:TestEvent`, our own continuation of a large S3 object, or a control message
(`{"runrelayControl": {"action": "cancel" | "retry", "sourceId": ..., "requestedBy": ...}}`, a retry
optionally with `errorCodes` and `maxAttempts`). S3 objects are
streamed: `.jsonl` line by line (never whole in memory), `.json` as a spec or an array, anything else
as one prompt.
Bad input never raises: it becomes a `Rejection` carrying a clear reason, and the rest goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, model_validator

from .contract import MAX_NUMBER_RESULTS, MAX_SEED, InferenceSettings, Message
from .domain.errors import clipped
from .domain.retries import RetryRequest
from .result_payloads import spec_room
from .task_ids import LINE_NUMBERED_SUFFIXES, MAX_ATTEMPTS, line_key

MAX_METADATA_BYTES = 4096
MAX_CALLER_ID_LENGTH = 512
MAX_JSON_OBJECT_BYTES = 8 * 1024 * 1024  # a .json input is parsed whole (a .jsonl object may be any size)
MAX_LINE_BYTES = MAX_JSON_OBJECT_BYTES  # a .jsonl line is parsed whole too
MAX_PROMPT_OBJECT_BYTES = 1024 * 1024  # a plain-text prompt file
CONTINUATION_KEY = "runrelayContinuation"
CONTROL_KEY = "runrelayControl"
BUDGET_KEY = "budgetUSD"
TASKS_KEY = "tasks"
BUDGET_METADATA = "runrelay-budget-usd"  # x-amz-meta-runrelay-budget-usd on an S3 input
_READ_CHUNK = 256 * 1024
_PROBLEMS_LISTED = 10  # of a spec's validation problems, in its REJECTED error
_PROBLEM_CHARS = 200


class TaskSpec(BaseModel):
    """The caller's task: a prompt or a conversation, optional settings, and an optional idempotency id."""

    model_config = ConfigDict(extra="forbid")

    id: StrictStr | None = Field(default=None, min_length=1, max_length=MAX_CALLER_ID_LENGTH)
    prompt: StrictStr | None = Field(default=None, min_length=1)
    messages: list[Message] | None = Field(default=None, min_length=1)
    settings: InferenceSettings | None = None
    numberResults: StrictInt = Field(default=1, ge=1, le=MAX_NUMBER_RESULTS)
    seed: StrictInt | None = Field(default=None, ge=0, le=MAX_SEED)
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> TaskSpec:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        if self.metadata is not None and len(json.dumps(self.metadata)) > MAX_METADATA_BYTES:
            raise ValueError(f"'metadata' must serialise to at most {MAX_METADATA_BYTES} bytes")
        return self

    def conversation(self) -> list[Message]:
        if self.messages is not None:
            return self.messages
        return [Message(role="user", content=self.prompt or "")]


@dataclass(frozen=True)
class Rejection:
    """Input we cannot turn into a task, with the reason the caller will read."""

    code: str
    message: str


@dataclass(frozen=True)
class SourceItem:
    """One would-be task: where it came from, its idempotency key and its spec or why it was refused.

    `seq` is the task's 1-based position in its source, the same for every kind of input: the line of a
    `.jsonl` file, the place in a `.json` array or an SQS array, 1 for a single spec, a prompt file or a
    refused whole object. `caller_id` is the spec's `id`, kept even when the spec is refused.
    """

    source_id: str
    seq: int
    idempotency_key: str
    spec: TaskSpec | Rejection
    caller_id: str | None = None


@dataclass(frozen=True)
class S3ObjectRef:
    bucket: str
    key: str
    etag: str
    version_id: str | None = None
    size: int | None = None
    start_byte: int = 0
    start_line: int = 0
    start_task: int = 0  # tasks the object yielded before start_byte (its JOB record counts them all)
    end_byte: int | None = None  # a fan-out range stops here (exclusive, on a line boundary)
    # Read only if the object still has this ETag (a retry re-reads lines its tasks were made from).
    if_match: bool = False

    @property
    def source_id(self) -> str:
        # The ETag names the content: re-uploading identical bytes maps to the same tasks.
        return f"s3://{self.bucket}/{self.key}#{self.etag}"


@dataclass(frozen=True)
class SqsTaskMessage:
    message_id: str
    payload: Any
    budget_usd: float | None = None  # `{"budgetUSD": …, "tasks": [...]}`: a spend cap for the message


@dataclass(frozen=True)
class IgnoredMessage:
    reason: str


class ControlMessage(BaseModel):
    """An operator's request about a whole source (the `runrelay` CLI sends them).

    Built on first use: a control message is rare, and building its validators at import weighs on
    every submit cold start."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    action: Literal["cancel", "retry"]
    sourceId: StrictStr = Field(min_length=1, max_length=2048)
    requestedBy: StrictStr = Field(default="unknown", min_length=1, max_length=256)
    # A retry's options: only tasks failed with these codes (default: any), at most this many attempts
    # in all, the first included (default: `task_ids.MAX_ATTEMPTS`).
    errorCodes: list[Annotated[StrictStr, Field(min_length=1, max_length=128)]] | None = Field(
        default=None, min_length=1, max_length=50
    )
    maxAttempts: StrictInt | None = Field(default=None, ge=2, le=MAX_ATTEMPTS)

    @model_validator(mode="after")
    def _options_fit_action(self) -> ControlMessage:
        if self.action != "retry" and (self.errorCodes is not None or self.maxAttempts is not None):
            raise ValueError("'errorCodes' and 'maxAttempts' belong to a retry")
        return self

    def retry_request(self) -> RetryRequest:
        return RetryRequest(
            source_id=self.sourceId,
            requested_by=self.requestedBy,
            error_codes=frozenset(self.errorCodes) if self.errorCodes is not None else None,
            max_attempts=self.maxAttempts or MAX_ATTEMPTS,
        )


def control_message(action: str, source_id: str, requested_by: str, **options: Any) -> str:
    """The ingest-queue body asking for `action` on a source (a retry's options as keyword arguments:
    `errorCodes`, `maxAttempts`; those left None are left out)."""
    body = {"action": action, "sourceId": source_id, "requestedBy": requested_by}
    body |= {name: value for name, value in options.items() if value is not None}
    return json.dumps({CONTROL_KEY: body})


SqsBody = SqsTaskMessage | list[S3ObjectRef] | IgnoredMessage | Rejection | ControlMessage


def parse_spec(raw: Any) -> TaskSpec | Rejection:
    if not isinstance(raw, dict):
        return Rejection("invalidTaskSpec", f"a task spec must be a JSON object, got {type(raw).__name__}")
    try:
        return TaskSpec.model_validate(raw)
    except ValidationError as error:
        return Rejection("invalidTaskSpec", _problems(error))


def _problems(error: ValidationError) -> str:
    """The first few of pydantic's problems, each clipped: a huge array can have one per element."""
    problems = error.errors()
    listed = [
        clipped(f"{'.'.join(str(p) for p in e['loc']) or '(spec)'}: {e['msg']}", _PROBLEM_CHARS)
        for e in problems[:_PROBLEMS_LISTED]
    ]
    more = len(problems) - len(listed)
    return "; ".join(listed) + (f"; and {more} more" if more else "")


def caller_id_of(raw: Any) -> str | None:
    """The `id` a spec carries, valid or not (a REJECTED row still names the caller's id)."""
    caller_id = raw.get("id") if isinstance(raw, dict) else None
    return caller_id if isinstance(caller_id, str) and 0 < len(caller_id) <= MAX_CALLER_ID_LENGTH else None


def classify_sqs_body(message_id: str, body: str) -> SqsBody:
    """Tell what an ingest-queue message is, without touching S3 or DynamoDB."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        return Rejection("malformedMessage", f"message body is not valid JSON: {error}")
    if isinstance(payload, dict):
        if payload.get("Event") == "s3:TestEvent":
            return IgnoredMessage("S3 test event")
        if isinstance(payload.get("Records"), list):
            try:
                refs = [_s3_ref(record) for record in payload["Records"] if _is_object_created(record)]
            except ValueError as error:
                return Rejection("malformedNotification", f"S3 notification record: {error}")
            return refs if refs else IgnoredMessage("S3 notification without ObjectCreated records")
        if isinstance(payload.get(CONTINUATION_KEY), dict):
            try:
                return [_continuation_ref(payload[CONTINUATION_KEY])]
            except (KeyError, TypeError, ValueError) as error:
                return Rejection("malformedContinuation", f"continuation message is incomplete: {error!r}")
        if CONTROL_KEY in payload:
            try:
                return ControlMessage.model_validate(payload[CONTROL_KEY])
            except ValidationError as error:
                return Rejection("malformedControl", f"control message refused: {_problems(error)}")
        if BUDGET_KEY in payload or set(payload) == {TASKS_KEY}:
            return _budgeted_message(message_id, payload)
    return SqsTaskMessage(message_id, payload)


def _budgeted_message(message_id: str, payload: dict[str, Any]) -> SqsTaskMessage | Rejection:
    """`{"budgetUSD": 2.5, "tasks": [spec, …]}`: the tasks, and what the message may spend at most."""
    if set(payload) - {BUDGET_KEY, TASKS_KEY} or not isinstance(payload.get(TASKS_KEY), list):
        return Rejection(
            "invalidBudget", f"a budgeted message is {{'{BUDGET_KEY}': number, '{TASKS_KEY}': [...]}}"
        )
    budget = payload.get(BUDGET_KEY)
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget < 1e9:
        return Rejection(
            "invalidBudget", f"'{BUDGET_KEY}' must be a positive number of dollars, got {budget!r}"
        )
    return SqsTaskMessage(message_id, payload[TASKS_KEY], float(budget))


def budget_of_metadata(metadata: Mapping[str, str]) -> float | None:
    """An S3 input's spend cap, from its user metadata `runrelay-budget-usd` (None: none, or not a
    positive number)."""
    raw = metadata.get(BUDGET_METADATA)
    try:
        budget = float(raw) if raw is not None else None
    except ValueError:
        return None
    return budget if budget is not None and 0 < budget < 1e9 else None


def refused_message(message_id: str, rejection: Rejection) -> SourceItem:
    """The one item recorded for an SQS message refused as a whole, keyed as its first spec would be."""
    source_id = f"sqs:{message_id}"
    return SourceItem(source_id, 1, line_key(source_id, 1), rejection)


def items_of_message(message: SqsTaskMessage) -> Iterator[SourceItem]:
    """Task specs carried by an SQS message: one object or an array of them."""
    source_id = f"sqs:{message.message_id}"
    specs = message.payload if isinstance(message.payload, list) else [message.payload]
    if not specs:
        yield refused_message(message.message_id, Rejection("emptyMessage", "the array holds no task"))
    for index, raw in enumerate(specs):
        spec = _fits_its_row(parse_spec(raw))
        # A valid spec's id is its idempotency key (like OpenAI Batch's custom_id); else the message id
        # and position. A refused spec does not use up its id: the corrected spec may be sent again.
        # The key keeps the 0-based index it always had, so taskUUIDs of earlier messages stay the same.
        key = f"id:{spec.id}" if isinstance(spec, TaskSpec) and spec.id else line_key(source_id, index + 1)
        yield SourceItem(source_id, index + 1, key, spec, caller_id_of(raw))


def _fits_its_row(spec: TaskSpec | Rejection) -> TaskSpec | Rejection:
    """An SQS spec, unless its row could not hold it beside its results (the row keeps it to retry it)."""
    if isinstance(spec, Rejection):
        return spec
    size = len(json.dumps(spec.model_dump(mode="json", exclude_none=True), ensure_ascii=False).encode())
    room = spec_room(spec.numberResults)
    if size <= room:
        return spec
    return Rejection(
        "specTooLarge",
        f"this spec takes {size} bytes; with numberResults {spec.numberResults} its row holds at most {room}"
        " beside the results: send it in an S3 file instead (its row does not keep the spec)",
    )


ObjectFormat = Literal["lines", "json", "prompt"]


def object_format(key: str) -> ObjectFormat:
    """How an object is read, by its key's suffix: a spec per line (`.jsonl`, `.ndjson`), one JSON document
    (`.json`: a spec or an array of them), or else one plain-text prompt."""
    name = key.lower()
    if name.endswith(LINE_NUMBERED_SUFFIXES):
        return "lines"
    return "json" if name.endswith(".json") else "prompt"


def items_of_object(ref: S3ObjectRef, body: Any) -> Iterator[tuple[SourceItem, int]]:
    """Task specs in an S3 object, each with the byte offset just past it (for continuations).

    `body` is the streaming body of a GetObject (from `ref.start_byte` on when continuing).
    """
    kind = object_format(ref.key)
    if kind == "lines":
        yield from _jsonl_items(ref, body)
        return
    limit = MAX_JSON_OBJECT_BYTES if kind == "json" else MAX_PROMPT_OBJECT_BYTES
    data = body.read(limit + 1)
    end = len(data)
    if len(data) > limit:
        yield _item(ref, 1, Rejection("objectTooLarge", f"{ref.key} exceeds {limit} bytes; use .jsonl")), end
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        yield _item(ref, 1, Rejection("notUtf8", f"{ref.key} is not UTF-8 text: {error}")), end
        return
    if kind == "json":
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError) as error:
            yield _item(ref, 1, Rejection("malformedJson", f"{ref.key} is not valid JSON: {error}")), end
            return
        specs = payload if isinstance(payload, list) else [payload]
        if not specs:
            yield _item(ref, 1, Rejection("emptyObject", f"{ref.key} holds an empty array")), end
        for index, raw in enumerate(specs):
            yield _item(ref, index + 1, parse_spec(raw), caller_id_of(raw)), end
        return
    if not text.strip():
        yield _item(ref, 1, Rejection("emptyPrompt", f"{ref.key} is empty: nothing to ask")), end
        return
    yield _item(ref, 1, TaskSpec(prompt=text)), end


def _jsonl_items(ref: S3ObjectRef, body: Any) -> Iterator[tuple[SourceItem, int]]:
    line_number = ref.start_line
    offset = ref.start_byte
    # Only a run over the whole object may call it empty (a fan-out range checked it has tasks).
    seen_any = ref.start_line > 0 or ref.end_byte is not None
    for raw_line in _lines(body):
        offset += len(raw_line)
        line_number += 1
        if isinstance(raw_line, OverlongLine):
            seen_any = True
            too_long = (
                f"line {line_number} is {len(raw_line)} bytes, over the {MAX_LINE_BYTES} a line may have"
            )
            yield _item(ref, line_number, Rejection("lineTooLong", too_long)), offset
            continue
        stripped = raw_line.strip()
        if not stripped:
            continue  # blank lines are not tasks
        seen_any = True
        raw: Any = None
        try:
            raw = json.loads(stripped.decode("utf-8"))
            parsed: TaskSpec | Rejection = parse_spec(raw)
        except UnicodeDecodeError as error:
            parsed = Rejection("notUtf8", f"line {line_number} is not UTF-8: {error}")
        except (ValueError, RecursionError) as error:
            parsed = Rejection("malformedLine", f"line {line_number} is not valid JSON: {error}")
        if isinstance(parsed, Rejection) and not parsed.message.startswith("line "):
            parsed = Rejection(parsed.code, f"line {line_number}: {parsed.message}")
        yield _item(ref, line_number, parsed, caller_id_of(raw)), offset
    if not seen_any:
        refusal = Rejection("emptyObject", f"{ref.key} holds no task lines")
        yield _item(ref, 1, refusal, key_position=0), offset


@dataclass(frozen=True)
class ObjectRange:
    """A line-aligned piece of a JSONL object, with the line number and task count before and after it."""

    start_byte: int
    end_byte: int
    start_line: int
    end_line: int
    start_task: int
    end_task: int


def split_jsonl(ref: S3ObjectRef, body: Any, range_bytes: int) -> Iterator[ObjectRange]:
    """Read a JSONL body once (from `ref.start_byte`) and cut it into ranges of about `range_bytes`,
    counting lines and tasks exactly as `_jsonl_items` does (a non-blank line is one task), so each range
    can be submitted on its own with the same line numbers, hence the same taskUUIDs. The last range ends
    where the body ends."""
    offset, line, tasks = ref.start_byte, ref.start_line, ref.start_task
    start = (offset, line, tasks)
    for raw_line in _lines(body):
        offset += len(raw_line)
        line += 1
        tasks += isinstance(raw_line, OverlongLine) or bool(raw_line.strip())
        if offset - start[0] >= range_bytes:
            yield ObjectRange(start[0], offset, start[1], line, start[2], tasks)
            start = (offset, line, tasks)
    if offset > start[0]:
        yield ObjectRange(start[0], offset, start[1], line, start[2], tasks)


@dataclass(frozen=True)
class OverlongLine:
    """A line longer than MAX_LINE_BYTES: read through and counted, never held whole."""

    length: int

    def __len__(self) -> int:
        return self.length


def _lines(body: Any) -> Iterator[bytes | OverlongLine]:
    """Lines of a streaming body, newline kept, reading fixed-size chunks: memory stays flat whatever the
    lines' lengths, and each byte is copied once (a line spanning many chunks is joined at its end)."""
    parts: list[bytes] = []  # the line not complete yet, in pieces
    length = 0  # its length so far
    while chunk := body.read(_READ_CHUNK):
        *complete, rest = chunk.split(b"\n")
        if complete:
            first, *inside = complete
            yield _line(parts, first + b"\n", length + len(first) + 1)
            yield from (line + b"\n" for line in inside)
            parts, length = [], 0
        length += len(rest)
        if rest and length <= MAX_LINE_BYTES:
            parts.append(rest)
    if length:
        yield _line(parts, b"", length)


def _line(parts: list[bytes], last: bytes, length: int) -> bytes | OverlongLine:
    return OverlongLine(length) if length > MAX_LINE_BYTES else b"".join([*parts, last])


def _item(
    ref: S3ObjectRef,
    seq: int,
    spec: TaskSpec | Rejection,
    caller_id: str | None = None,
    *,
    key_position: int | None = None,
) -> SourceItem:
    """A task of an object, keyed by its line (`task_ids.line_key`). Only the refusal of a JSONL object
    without lines is keyed elsewhere (`key_position` 0, as it always was): it has no line."""
    key = line_key(ref.source_id, seq) if key_position is None else f"{ref.source_id}:{key_position}"
    return SourceItem(ref.source_id, seq, key, spec, caller_id)


def _is_object_created(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and record.get("eventSource") == "aws:s3"
        and str(record.get("eventName", "")).startswith("ObjectCreated")
    )


def _s3_ref(record: dict[str, Any]) -> S3ObjectRef:
    """The object an ObjectCreated record names; ValueError if the record is not shaped as S3 sends it."""
    s3 = _member(record, "s3")
    obj = _member(s3, "object")
    name, key = _member(s3, "bucket").get("name"), obj.get("key")
    if not isinstance(name, str) or not name or not isinstance(key, str) or not key:
        raise ValueError("s3.bucket.name and s3.object.key must be non-empty strings")
    etag, version_id, size = obj.get("eTag") or obj.get("etag") or "", obj.get("versionId"), obj.get("size")
    if not isinstance(etag, str) or not isinstance(version_id, str | None):
        raise ValueError("s3.object.eTag and s3.object.versionId must be strings")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"s3.object.size must be a whole number of bytes, got {clipped(repr(size), 100)}")
    # Keys arrive URL-encoded with '+' for spaces (and moto also encodes '/').
    return S3ObjectRef(
        bucket=name, key=unquote_plus(key), etag=etag.strip('"'), version_id=version_id or None, size=size
    )


def _member(parent: dict[str, Any], name: str) -> dict[str, Any]:
    value = parent.get(name)
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object")
    return value


def _continuation_ref(raw: dict[str, Any]) -> S3ObjectRef:
    return S3ObjectRef(
        bucket=str(raw["bucket"]),
        key=str(raw["key"]),
        etag=str(raw["etag"]),
        version_id=raw.get("versionId"),
        size=raw.get("size"),
        start_byte=int(raw.get("startByte", 0)),
        start_line=int(raw.get("startLine", 0)),
        start_task=int(raw.get("startTask", 0)),
        end_byte=None if raw.get("endByte") is None else int(raw["endByte"]),
    )


def continuation_message(ref: S3ObjectRef, start_byte: int, start_line: int, start_task: int = 0) -> str:
    """The queue message that resumes a large object where this invocation stopped."""
    return json.dumps(
        {
            CONTINUATION_KEY: {
                "bucket": ref.bucket,
                "key": ref.key,
                "etag": ref.etag,
                "versionId": ref.version_id,
                "size": ref.size,
                "startByte": start_byte,
                "startLine": start_line,
                "startTask": start_task,
                "endByte": ref.end_byte,
            }
        }
    )
