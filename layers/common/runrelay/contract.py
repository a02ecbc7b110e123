"""Runware's wire contract for MiniMax M2.7, as pydantic v2 models.

Request models mirror `runware-minimax-m2.7.openapi.json` bound for bound and forbid extra keys, so a
request that passes them also passes the schema (tests/contract proves it against the file itself).
Response models are the opposite: lenient, keeping every unknown field Runware may add later.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    field_serializer,
)

from .task_ids import MAX_NUMBER_RESULTS

MODEL_ID: Final = "minimax:m2.7@0"
TEXT_INFERENCE: Final = "textInference"
MAX_SEED = 4_294_967_295
MAX_TOKENS_LIMIT = 196_608
MAX_SYSTEM_PROMPT_CHARS = 200_000

DeliveryMethod = Literal["sync", "async", "stream"]


def _hundredths(value: float) -> float:
    """Accept a multiple of 0.01 and return it without float artefacts (0.7, not 0.7000000001).

    The schema's `multipleOf: 0.01` is checked the way JSON Schema validators check floats
    (`value / 0.01` must be integral). Ten two-decimal values such as 0.07 fail that check in
    binary floating point; we refuse them here with a clear message instead of letting Runware
    answer 400 for a whole batch.
    """
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    rounded = round(value, 2)
    if abs(rounded - value) > 1e-9:
        raise ValueError(f"{value!r} is not a multiple of 0.01")
    quotient = rounded / 0.01
    if not math.isfinite(quotient):  # |value| near float max: int(inf) would escape as OverflowError
        raise ValueError(f"{value!r} is far outside the allowed range")
    if int(quotient) != quotient:
        neighbours = f"{rounded - 0.01:.2f} or {rounded + 0.01:.2f}"
        raise ValueError(
            f"{rounded} fails the schema's multipleOf 0.01 check in binary floating point; use {neighbours}"
        )
    return int(rounded) if rounded == int(rounded) else rounded


# Strict: a bool or a numeric string is refused as the schema's `type: number` refuses it, not coerced.
Hundredths = Annotated[float, Strict(), AfterValidator(_hundredths)]

# RFC 3986 `URI` restricted to http(s) with a non-empty host: the same grammar as the schema's
# `format: uri` check (so no spaces, no non-ASCII, no `<>{}|^`, only %XX escapes, a numeric port).
_PCT = r"%[0-9A-Fa-f]{2}"
_SUB = r"A-Za-z0-9\-._~!$&'()*+,;="  # unreserved + sub-delims
_HTTP_URI = re.compile(
    rf"""
    (?i:https?)://
    (?:(?:[{_SUB}:]|{_PCT})*@)?                  # userinfo
    (?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?:[{_SUB}]|{_PCT})+)  # host: [IPv6] or reg-name / IPv4
    (?::[0-9]*)?                                 # port
    (?:/(?:[{_SUB}:@]|{_PCT})*)*                 # path-abempty
    (?:\?(?:[{_SUB}:@/?]|{_PCT})*)?              # query
    (?:\#(?:[{_SUB}:@/?]|{_PCT})*)?              # fragment
    """,
    re.VERBOSE,
)


def _absolute_uri(value: str) -> str:
    match = _HTTP_URI.fullmatch(value)
    ok = match is not None
    if match is not None and match["ip6"] is not None:
        try:
            ipaddress.IPv6Address(match["ip6"])
        except ValueError:
            ok = False
    if not ok:
        raise ValueError("must be an absolute http(s) URI with a host (RFC 3986: no spaces, ASCII only)")
    return value


class StrictModel(BaseModel):
    """A request object: unknown keys are refused, as the schema's additionalProperties: false does."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LenientModel(BaseModel):
    """A response object: unknown keys are kept, never an error.

    Built on first use rather than at import: the submit function parses Runware's answers only when
    they carry errors or results, and the reconciler's polls are its only reader (bench/README.md,
    cold_import_submit)."""

    model_config = ConfigDict(extra="allow", defer_build=True)


class Message(StrictModel):
    role: Literal["user", "assistant"]
    content: StrictStr = Field(min_length=1)


class InferenceSettings(StrictModel):
    systemPrompt: StrictStr | None = Field(default=None, min_length=1, max_length=MAX_SYSTEM_PROMPT_CHARS)
    temperature: Hundredths | None = Field(default=None, gt=0, le=1)
    topP: Hundredths | None = Field(default=None, ge=0, le=1)
    maxTokens: StrictInt | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)


class TextInferenceTask(StrictModel):
    """One `textInference` item of the request array."""

    taskType: Literal["textInference"] = TEXT_INFERENCE
    taskUUID: UUID
    model: Literal["minimax:m2.7@0"] = MODEL_ID
    messages: list[Message] = Field(min_length=1)
    seed: StrictInt | None = Field(default=None, ge=0, le=MAX_SEED)
    settings: InferenceSettings | None = None
    webhookURL: Annotated[StrictStr, AfterValidator(_absolute_uri)] | None = None
    includeCost: StrictBool | None = None
    includeUsage: StrictBool | None = None
    deliveryMethod: DeliveryMethod | None = None
    numberResults: StrictInt | None = Field(default=None, ge=1, le=MAX_NUMBER_RESULTS)

    @field_serializer("taskUUID")
    def _uuid_text(self, value: UUID) -> str:
        return str(value)

    def to_request(self) -> dict[str, Any]:
        """The JSON object to send: unset optionals left out so Runware applies its own defaults."""
        body = self.model_dump(mode="json", exclude_none=True)
        if body.get("settings") == {}:
            del body["settings"]
        return body


class AuthenticationTask(StrictModel):
    """Optional first array element carrying the API key instead of the Authorization header."""

    taskType: Literal["authentication"] = "authentication"
    apiKey: StrictStr = Field(min_length=1)
    connectionSessionUUID: UUID | None = None

    def to_request(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class GetResponseTask(StrictModel):
    """Runware's utility task to poll a task's results (how lost webhooks are healed)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # the reconciler's alone

    taskType: Literal["getResponse"] = "getResponse"
    taskUUID: UUID

    def to_request(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Usage(LenientModel):
    promptTokens: int | None = None
    completionTokens: int | None = None
    totalTokens: int | None = None
    thinkingTokens: int | None = None


class RunwareError(LenientModel):
    """One item of an `errors` array (or an `error` object)."""

    code: str = "unknown"
    message: str = ""
    parameter: str | None = None
    taskType: str | None = None
    taskUUID: str | None = None
    documentation: str | None = None

    @property
    def is_conflict(self) -> bool:
        """Runware already has this taskUUID: the task was accepted before, it will not run twice."""
        return "conflicttaskuuid" in self.code.lower()


class InferenceResult(LenientModel):
    """A `textInference` result: sync response item, getResponse item or webhook body item."""

    taskType: str | None = None
    taskUUID: str
    text: str | None = None
    finishReason: str | None = None
    cost: float | None = None
    usage: Usage | None = None
    seed: int | None = None
    status: str | None = None
    reasoningContent: str | None = None
    error: RunwareError | None = None

    @property
    def is_error(self) -> bool:
        return self.status == "error" or self.error is not None

    @property
    def slot(self) -> int:
        """Which result of its task this is: a Runware task carries one (`task_ids.result_task_uuid`)."""
        return 0

    @property
    def attempt(self) -> int:
        """Which attempt of its task this answers: a poll is read back into the attempt it asked about."""
        return 0

    def as_document(self) -> dict[str, Any]:
        """What is stored: every field but the task's identity, nulls left out."""
        return self.model_dump(mode="json", exclude_none=True, exclude={"taskUUID", "taskType"})

    @property
    def is_final(self) -> bool:
        """A result that carries an outcome (success or error), not a `processing` placeholder."""
        return self.is_error or self.text is not None or self.status == "success"


class ErrorResponse(LenientModel):
    errors: list[RunwareError] = Field(min_length=1)
