"""Deterministic fake completions: the same task, seed and result index always give the same result.

A "token" is one whitespace-separated word, so `maxTokens` truncation and usage numbers are exact and
tests can predict them. `maxTokens` budgets reasoning and text together: reasoning may use at most half
of it, the text the rest; a text cut short ends with `finishReason: "length"`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SEED_MODULUS = 2**32
DEFAULT_MAX_TOKENS = 32768
PROMPT_PRICE_PER_TOKEN = 0.0000003
COMPLETION_PRICE_PER_TOKEN = 0.0000012

_SUBJECTS = ["The relay", "Each task", "The queue", "A webhook", "The model", "Your prompt", "The table"]
_VERBS = ["records", "delivers", "summarises", "retries", "stores", "answers", "considers", "reflects on"]
_OBJECTS = [
    "the request carefully",
    "every result exactly once",
    "a short and useful reply",
    "the message in plain words",
    "the question you asked",
    "its output without delay",
    "the context it was given",
]
_CLOSERS = ["quietly.", "as expected.", "in order.", "for now.", "with care.", "again and again.", "today."]


@dataclass(frozen=True)
class Completion:
    """One generated result before it is shaped into a Runware result object."""

    text: str
    reasoning: str
    finish_reason: str
    seed: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


def _digest(*parts: Any) -> bytes:
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).digest()


def uuid_fraction(task_uuid: str, salt: str = "") -> float:
    """A stable number in [0, 1) derived from a taskUUID; fault shares and quirks key off it."""
    digest = hashlib.sha256(f"{salt}:{task_uuid.lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def result_seed(task: Mapping[str, Any], index: int) -> int:
    """The given seed + index (wrapping in the uint32 range), or a stable seed from the taskUUID."""
    given = task.get("seed")
    base = given if isinstance(given, int) else int.from_bytes(_digest("seed", task["taskUUID"])[:4], "big")
    return (base + index) % SEED_MODULUS


def count_tokens(text: str) -> int:
    return len(text.split())


def _sentence(rng: random.Random, topic: str) -> str:
    subject, verb, obj, closer = (
        rng.choice(_SUBJECTS),
        rng.choice(_VERBS),
        rng.choice(_OBJECTS),
        rng.choice(_CLOSERS),
    )
    about = f" about {topic}" if topic and rng.random() < 0.5 else ""
    return f"{subject} {verb} {obj}{about} {closer}"


def _topic(messages: list[Mapping[str, Any]]) -> str:
    """A few words of the last user message, so completions visibly relate to their prompt."""
    for message in reversed(messages):
        if message.get("role") == "user":
            words = str(message.get("content", "")).split()[:3]
            return " ".join(word.strip(".,;:!?\"'") for word in words)
    return ""


def generate(task: Mapping[str, Any], index: int) -> Completion:
    """The `index`-th completion of a validated textInference task."""
    settings: Mapping[str, Any] = task.get("settings", {})
    messages: list[Mapping[str, Any]] = task["messages"]
    seed = result_seed(task, index)
    rng = random.Random(_digest(messages, settings, seed, index))
    topic = _topic(messages)

    full_text = " ".join(_sentence(rng, topic) for _ in range(rng.randint(1, 4)))
    reasoning = " ".join(_sentence(rng, "the answer") for _ in range(rng.randint(1, 2)))
    max_tokens = int(settings.get("maxTokens", DEFAULT_MAX_TOKENS))
    reasoning = " ".join(reasoning.split()[: max_tokens // 2])
    text_budget = max_tokens - count_tokens(reasoning)
    words = full_text.split()
    finish_reason = "stop"
    if len(words) > text_budget:
        words, finish_reason = words[:text_budget], "length"
    text = " ".join(words)

    prompt_text = " ".join(str(m.get("content", "")) for m in messages)
    prompt_tokens = count_tokens(prompt_text) + count_tokens(str(settings.get("systemPrompt", "")))
    return Completion(
        text=text,
        reasoning=reasoning,
        finish_reason=finish_reason,
        seed=seed,
        prompt_tokens=prompt_tokens,
        completion_tokens=len(words),
        reasoning_tokens=count_tokens(reasoning),
    )


def result_object(task: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The Runware result object for result `index`, shaped like a sync answer or webhook item."""
    return shape_result(task, index, generate(task, index))


def shape_result(task: Mapping[str, Any], index: int, completion: Completion) -> dict[str, Any]:
    """Shape a completion as a Runware result object.

    Some results carry `reasoningContent`, `thinkingTokens` or an unknown extra field, chosen stably
    from the taskUUID and index, so receivers must tolerate every variant Runware documents.
    """
    task_uuid: str = task["taskUUID"]
    quirk = uuid_fraction(task_uuid, f"quirk:{index}")
    result: dict[str, Any] = {
        "taskType": "textInference",
        "taskUUID": task_uuid,
        "status": "success",
        "text": completion.text,
        "finishReason": completion.finish_reason,
        "seed": completion.seed,
    }
    if quirk < 0.5 and completion.reasoning:
        result["reasoningContent"] = completion.reasoning
    if task.get("includeCost") is True:
        cost = (
            completion.prompt_tokens * PROMPT_PRICE_PER_TOKEN
            + (completion.completion_tokens + completion.reasoning_tokens) * COMPLETION_PRICE_PER_TOKEN
        )
        result["cost"] = round(cost, 10)
    if task.get("includeUsage") is True:
        completion_total = completion.completion_tokens + completion.reasoning_tokens
        usage: dict[str, Any] = {
            "promptTokens": completion.prompt_tokens,
            "completionTokens": completion_total,
            "totalTokens": completion.prompt_tokens + completion_total,
            "completionTokensDetails": {"reasoningTokens": completion.reasoning_tokens},
        }
        if quirk >= 0.3:
            usage["thinkingTokens"] = completion.reasoning_tokens
        result["usage"] = usage
    if 0.25 <= quirk < 0.75:
        result["providerLatencyMs"] = 40 + int(quirk * 1000) % 400
    return result


_ANY_TASK = "00000000-0000-4000-8000-000000000000"


def identical_result(task: Mapping[str, Any], index: int) -> tuple[Completion, dict[str, Any]]:
    """The prompt's one answer, whatever the task, index or seed, and without a seed."""
    anonymous = {**task, "taskUUID": _ANY_TASK, "seed": 0}
    completion = generate(anonymous, 0)
    result = shape_result(anonymous, 0, completion)
    del result["seed"]
    return completion, {**result, "taskUUID": task["taskUUID"]}


def stream_chunks(text: str, reasoning: str, chunk_words: int = 3) -> list[tuple[str, str]]:
    """Split a completion into `(field, piece)` deltas: reasoning first, then the text.

    Joining the `text` pieces gives back `text` exactly.
    """
    chunks: list[tuple[str, str]] = []
    for field, body in (("reasoningContent", reasoning), ("text", text)):
        words = body.split(" ")
        for start in range(0, len(words), chunk_words):
            piece = " ".join(words[start : start + chunk_words])
            if start + chunk_words < len(words):
                piece += " "
            if piece:
                chunks.append((field, piece))
    return chunks
