"""Shared request/response samples for the contract tests, and a reader for Runware's `.jsonc` examples."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from runrelay.contract import MODEL_ID
from tests.contract.schema import examples_dir

TASK_UUID = "a770f077-f413-47de-9dac-be0b26a35da6"
OTHER_UUID = "50836053-a0ee-4cf5-b9d6-ae7c5d140ada"


def minimal_request() -> dict[str, Any]:
    return {
        "taskType": "textInference",
        "taskUUID": TASK_UUID,
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "Hello"}],
    }


def full_request() -> dict[str, Any]:
    """A request using every field the schema has, each at an ordinary valid value."""
    return {
        **minimal_request(),
        "messages": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi. What shall I write?"},
            {"role": "user", "content": "A haiku about queues."},
        ],
        "seed": 42,
        "settings": {"systemPrompt": "Be brief.", "temperature": 0.7, "topP": 0.95, "maxTokens": 1024},
        "webhookURL": "https://hooks.example.com/runware?token=s3cr3t-t0ken",
        "includeCost": True,
        "includeUsage": True,
        "deliveryMethod": "async",
        "numberResults": 2,
    }


# Runware's .jsonc examples carry `//` comments and trailing commas; neither may be touched inside a string.
_COMMENT = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*')
_TRAILING_COMMA = re.compile(r'"(?:\\.|[^"\\])*"|,(?=\s*[}\]])')


def _drop_outside_strings(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda m: m.group(0) if m.group(0).startswith('"') else "", text)


def parse_jsonc(text: str) -> Any:
    return json.loads(_drop_outside_strings(_TRAILING_COMMA, _drop_outside_strings(_COMMENT, text)))


def load_example(name: str) -> Any:
    path: Path = examples_dir() / name
    return parse_jsonc(path.read_text(encoding="utf-8"))
