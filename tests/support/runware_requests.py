"""Helpers to build Runware requests by hand and read the emulator's answers in tests."""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests

MODEL = "minimax:m2.7@0"
API_KEY = "test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def new_uuid() -> str:
    return str(uuid.uuid4())


def text_task(**overrides: Any) -> dict[str, Any]:
    """A minimal valid textInference task with a fresh taskUUID; keyword arguments override fields."""
    task: dict[str, Any] = {
        "taskType": "textInference",
        "taskUUID": new_uuid(),
        "model": MODEL,
        "messages": [{"role": "user", "content": "Summarise the relay design in one sentence."}],
    }
    task.update(overrides)
    return task


def get_response(task_uuid: str) -> dict[str, Any]:
    return {"taskType": "getResponse", "taskUUID": task_uuid}


def post(url: str, tasks: Any, headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
    """POST a body (JSON-encoded unless bytes) with the test API key unless `headers` says otherwise."""
    body = tasks if isinstance(tasks, bytes) else json.dumps(tasks).encode()
    sent = {"Content-Type": "application/json", **(AUTH if headers is None else headers)}
    return requests.post(url, data=body, headers=sent, timeout=kwargs.pop("timeout", 10), **kwargs)


def poll(url: str, task_uuid: str) -> dict[str, Any]:
    response = post(url, [get_response(task_uuid)])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def sse_lines(text: str) -> list[str]:
    """The non-empty lines of an SSE body (comments included), in order."""
    return [line for line in text.split("\n") if line]


def sse_payloads(text: str) -> list[Any]:
    """Each `data:` line's JSON, unwrapped from `{"data": {...}}`; `[DONE]` stays a string."""
    payloads: list[Any] = []
    for line in sse_lines(text):
        if not line.startswith("data: "):
            continue
        raw = line[len("data: ") :]
        if raw == "[DONE]":
            payloads.append(raw)
            continue
        payload = json.loads(raw)
        if set(payload) == {"data"} and isinstance(payload["data"], dict):
            payload = payload["data"]
        payloads.append(payload)
    return payloads
