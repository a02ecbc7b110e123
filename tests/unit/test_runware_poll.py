"""Reading a getResponse answer item by item: what cannot be read fails its own task, not the poll."""

from __future__ import annotations

from runrelay.runware_client import poll_outcome

GOOD, BAD, BUSY, NULL_CODE, ODD_ERROR = (f"0000000{n}-0000-4000-8000-000000000000" for n in range(1, 6))


def test_one_unreadable_item_fails_its_task_and_the_rest_are_read() -> None:
    # Before, one such item raised out of the poll, stopping every reconciler run at the same batch.
    body = {
        "data": [
            {"taskType": "textInference", "taskUUID": GOOD, "status": "success", "text": "hi"},
            {"taskType": "textInference", "taskUUID": BAD, "status": "success", "text": 7},
            {"taskType": "textInference", "taskUUID": BUSY, "status": "processing"},
            {"taskType": "textInference", "status": "success", "text": "whose?"},
        ],
        "errors": [
            {"taskUUID": NULL_CODE, "code": None, "message": "it broke"},
            {"taskUUID": ODD_ERROR, "code": {"nested": True}, "message": ["not", "text"]},
        ],
    }
    outcome = poll_outcome(body)
    assert [result.taskUUID for result in outcome.results] == [GOOD]
    assert outcome.processing == [BUSY]
    assert outcome.errors[BAD].code == "invalidResult"
    assert "does not match its contract" in outcome.errors[BAD].message
    assert (outcome.errors[NULL_CODE].code, outcome.errors[NULL_CODE].message) == ("unknown", "it broke")
    assert outcome.errors[ODD_ERROR].code == "invalidError"
    assert set(outcome.errors) == {BAD, NULL_CODE, ODD_ERROR}


def test_an_unreadable_message_is_clipped() -> None:
    body = {
        "data": [{"taskType": "textInference", "taskUUID": BAD, "status": "success", "text": ["x" * 50_000]}]
    }
    assert len(poll_outcome(body).errors[BAD].message) <= 1_000
