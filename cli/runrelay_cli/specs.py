"""What `runrelay submit` sends, checked client-side with the same rules the submit function applies.

A file follows the input formats of docs/architecture.md: `.jsonl`/`.ndjson` one spec per line, `.json`
a spec or an array, anything else one prompt (the whole UTF-8 text). Invalid specs are reported before
anything is sent, with the line (or array index) the submitter would name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runrelay.inputs import (
    MAX_JSON_OBJECT_BYTES,
    MAX_PROMPT_OBJECT_BYTES,
    Rejection,
    TaskSpec,
    object_format,
    parse_spec,
)

# One SQS message holds at most this many specs (the submitter's default batch: all rows of a message
# are written before any is sent) and stays under SQS's 256 KiB body limit.
MAX_SPECS_PER_MESSAGE = 100
MAX_MESSAGE_BYTES = 250_000


@dataclass(frozen=True)
class Problem:
    where: str  # "line 4", "item 2", "file"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class CheckedFile:
    """A local input file: its raw specs (as they will be sent) and what is wrong with them."""

    path: Path
    specs: list[Any]
    problems: list[Problem]
    is_prompt_text: bool = False

    @property
    def task_count(self) -> int:
        return len(self.specs)


def check_file(path: Path) -> CheckedFile:
    try:
        data = path.read_bytes()
    except OSError as error:
        return CheckedFile(path, [], [Problem("file", f"cannot read {path}: {error.strerror or error}")])
    kind = object_format(path.name)  # as the submitter will read the object
    if kind == "lines":
        return _check_jsonl(path, data)
    limit = MAX_JSON_OBJECT_BYTES if kind == "json" else MAX_PROMPT_OBJECT_BYTES
    if len(data) > limit:
        return CheckedFile(path, [], [Problem("file", f"larger than {limit} bytes; use .jsonl")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return CheckedFile(path, [], [Problem("file", f"not UTF-8 text: {error}")])
    if kind == "json":
        try:
            payload = json.loads(text)
        except ValueError as error:
            return CheckedFile(path, [], [Problem("file", f"not valid JSON: {error}")])
        specs = payload if isinstance(payload, list) else [payload]
        if not specs:
            return CheckedFile(path, [], [Problem("file", "an empty array holds no task")])
        where = "item {}" if isinstance(payload, list) else "spec"
        problems = [_problem(where.format(i), raw) for i, raw in enumerate(specs)]
        return CheckedFile(path, specs, [p for p in problems if p is not None])
    if not text.strip():
        return CheckedFile(path, [], [Problem("file", "empty: nothing to ask")])
    return CheckedFile(path, [{"prompt": text}], [], is_prompt_text=True)


def _check_jsonl(path: Path, data: bytes) -> CheckedFile:
    specs: list[Any] = []
    problems: list[Problem] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            problems.append(Problem(f"line {number}", f"not valid JSON: {error}"))
            specs.append(None)
            continue
        specs.append(raw)
        problem = _problem(f"line {number}", raw)
        if problem is not None:
            problems.append(problem)
    if not specs:
        problems.append(Problem("file", "holds no task lines"))
    return CheckedFile(path, specs, problems)


def _problem(where: str, raw: Any) -> Problem | None:
    parsed = parse_spec(raw)
    return Problem(where, parsed.message) if isinstance(parsed, Rejection) else None


def option_spec(
    *,
    prompt: str | None = None,
    messages: list[Any] | None = None,
    caller_id: str | None = None,
    number_results: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    system_prompt: str | None = None,
    seed: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The raw spec the command-line options describe, unvalidated (`--force` sends it as it is)."""
    settings = {
        k: v
        for k, v in {
            "temperature": temperature,
            "topP": top_p,
            "maxTokens": max_tokens,
            "systemPrompt": system_prompt,
        }.items()
        if v is not None
    }
    raw: dict[str, Any] = {"prompt": prompt} if messages is None else {"messages": messages}
    for name, value in (
        ("id", caller_id),
        ("settings", settings or None),
        ("numberResults", number_results),
        ("seed", seed),
        ("metadata", metadata),
    ):
        if value is not None:
            raw[name] = value
    return raw


def prompt_spec(prompt: str, **options: Any) -> TaskSpec | Rejection:
    """A spec from command-line options, validated (a Rejection names the bad option)."""
    return parse_spec(option_spec(prompt=prompt, **options))


def read_messages(path: Path) -> list[Any]:
    """`--messages FILE`: a JSON array of {role, content}, or a spec-like object holding `messages`."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if isinstance(payload, dict) and "messages" in payload:
        payload = payload["messages"]
    if not isinstance(payload, list) or not payload:
        raise ValueError(f'{path} must hold a non-empty JSON array of {{"role": …, "content": …}} messages')
    return payload


def parse_metadata(text: str) -> dict[str, Any]:
    """`--metadata`: a JSON object (kept with the task, returned in results)."""
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise ValueError(f"--metadata is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise ValueError(f"--metadata must be a JSON object, got {type(payload).__name__}")
    return payload


def message_bodies(specs: list[Any]) -> Iterator[tuple[str, int]]:
    """SQS bodies for the specs: a spec alone, or arrays of ≤100 specs under the size limit; with counts."""
    if len(specs) == 1:
        yield json.dumps(specs[0], ensure_ascii=False), 1
        return
    batch: list[str] = []
    size = 2
    for spec in specs:
        encoded = json.dumps(spec, ensure_ascii=False)
        grown = size + len(encoded.encode("utf-8")) + 1
        if batch and (len(batch) >= MAX_SPECS_PER_MESSAGE or grown > MAX_MESSAGE_BYTES):
            yield f"[{','.join(batch)}]", len(batch)
            batch, grown = [], 2 + len(encoded.encode("utf-8")) + 1
        if grown > MAX_MESSAGE_BYTES:
            raise ValueError(f"a spec of {grown} bytes does not fit in an SQS message; use --via s3")
        batch.append(encoded)
        size = grown
    if batch:
        yield f"[{','.join(batch)}]", len(batch)
