"""What a task keeps of an error: texts clipped, the whole bounded, small errors untouched."""

from __future__ import annotations

import json

from runrelay.domain.errors import MAX_ERROR_BYTES, MAX_MESSAGE_CHARS, bounded_error, clipped


def test_a_short_text_and_a_small_error_are_kept_as_they_are() -> None:
    assert clipped("short") == "short"
    error = {"code": "invalidPrompt", "message": "too long", "parameter": "messages", "extra": {"n": 1}}
    assert bounded_error(error) == error


def test_a_long_text_is_clipped_and_says_how_long_it_was() -> None:
    text = "x" * (MAX_MESSAGE_CHARS + 500)
    assert clipped(text) == "x" * (MAX_MESSAGE_CHARS - 26) + "… (1500 characters in all)"
    assert len(clipped(text)) == MAX_MESSAGE_CHARS
    assert clipped(clipped(text)) == clipped(text)
    stored = bounded_error({"code": "c" * 5_000, "message": text})
    assert stored["message"] == clipped(text)
    assert len(stored["code"]) < 300


def test_an_error_still_too_large_keeps_only_what_a_reader_needs() -> None:
    error = {
        "code": "x",
        "message": "m",
        "taskUUID": "t",
        "details": [{"field": i} for i in range(5_000)],
        "hints": ["h" * 900] * 50,
    }
    stored = bounded_error(error)
    assert stored == {"code": "x", "message": "m", "taskUUID": "t", "truncated": True}
    assert len(json.dumps(bounded_error({**error, "message": "é" * 10_000}))) <= MAX_ERROR_BYTES


def test_a_task_completed_event_carries_a_bounded_error_even_from_an_old_row() -> None:
    from runrelay.domain.events import task_completed
    from runrelay.domain.tasks import TaskRecord, TaskStatus

    # A row stored before errors were bounded: ten such events must still fit one PutEvents call.
    old_row = TaskRecord(
        task_uuid="u",
        status=TaskStatus.FAILED,
        source_id="src",
        source_seq=1,
        error={"code": "providerError", "message": "m" * 300_000, "details": ["d" * 1_000] * 50},
    )
    detail = task_completed(old_row).detail
    assert detail["error"] == {"code": "providerError", "message": clipped("m" * 300_000)}
    assert len(json.dumps(detail)) * 10 < 256 * 1024
