"""Webhook receiver on the fake task repository: every documented body shape, authentication, limits;
nothing written when rejected."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runrelay.domain.tasks import NewTask, TaskStatus
from runrelay.task_ids import result_task_uuid, task_uuid_for
from runrelay.webhook_logic import WebhookReceiver
from runrelay.webhook_token import token_for
from tests.support.fakes import FakeTaskRepository

SECRET = "current-secret"
OLD_SECRET = "previous-secret"
UUID = str(task_uuid_for("webhook-task"))
OTHER_UUID = str(task_uuid_for("other-task"))


@pytest.fixture
def receiver(tasks: FakeTaskRepository) -> WebhookReceiver:
    tasks.create_pending(NewTask(UUID, "webhook-task", "src", 0, number_results=2))
    return WebhookReceiver(tasks, lambda: [SECRET, OLD_SECRET], max_body_bytes=64 * 1024)


def result(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"taskType": "textInference", "taskUUID": UUID, "text": text, "finishReason": "stop", **extra}


@pytest.mark.parametrize(
    "body",
    [
        {"data": [result()]},
        result(),
        [result()],
    ],
    ids=["wrapped", "bare", "array"],
)
def test_result_shapes_are_stored(receiver: WebhookReceiver, tasks: FakeTaskRepository, body: Any) -> None:
    reply, _ = receiver.receive(json.dumps(body), token_for(SECRET, UUID))
    assert reply.status == 200
    view = tasks.get_task(UUID)
    assert view is not None
    assert [r["text"] for r in view.results] == ["hi"]


@pytest.mark.parametrize(
    "body",
    [
        {"errors": [{"code": "timeoutProvider", "message": "slow", "taskUUID": UUID}]},
        {"error": {"code": "timeoutProvider", "message": "slow"}, "taskUUID": UUID},
        {"error": {"code": "timeoutProvider", "message": "slow", "taskUUID": UUID}},
        {"taskUUID": UUID, "status": "error", "error": {"code": "timeoutProvider", "message": "slow"}},
        {"data": [{"taskUUID": UUID, "status": "error", "code": "timeoutProvider", "message": "slow"}]},
    ],
)
def test_error_shapes_fail_the_task(receiver: WebhookReceiver, tasks: FakeTaskRepository, body: Any) -> None:
    reply, _ = receiver.receive(json.dumps(body), token_for(SECRET, UUID))
    assert reply.status == 200
    view = tasks.get_task(UUID)
    assert view is not None
    assert view.status == TaskStatus.FAILED
    assert view.error is not None
    assert view.error["code"] == "timeoutProvider"


def test_duplicates_and_completion(receiver: WebhookReceiver, tasks: FakeTaskRepository) -> None:
    token = token_for(SECRET, UUID)
    first, _ = receiver.receive(json.dumps({"data": [result("a", seed=1)]}), token)
    again, _ = receiver.receive(json.dumps(result("a", seed=1)), token)
    second, report = receiver.receive(*second_result("b", seed=2), task=UUID, slot="1")
    assert [first.body["outcomes"], again.body["outcomes"], second.body["outcomes"]] == [
        ["stored"],
        ["duplicate"],
        ["completed"],
    ]
    assert report.task_uuid == second.body["taskUUID"] == UUID
    view = tasks.get_task(UUID)
    assert view is not None
    assert view.status == TaskStatus.COMPLETED


def second_result(text: str, **extra: Any) -> tuple[str, str]:
    """The task's result 1, sent by Runware under its own taskUUID, and that task's token."""
    runware_uuid = result_task_uuid(UUID, 1)
    return json.dumps({"data": [{**result(text, **extra), "taskUUID": runware_uuid}]}), token_for(
        SECRET, runware_uuid
    )


def test_two_identical_results_without_seeds_both_count(
    receiver: WebhookReceiver, tasks: FakeTaskRepository
) -> None:
    """A short deterministic answer, twice: told apart by their Runware tasks, not by their content."""
    replies = [
        receiver.receive(json.dumps(result("4")), token_for(SECRET, UUID))[0],
        receiver.receive(*second_result("4"), task=UUID, slot="1")[0],
        receiver.receive(*second_result("4"), task=UUID, slot="1")[0],
    ]
    assert [reply.body["outcomes"] for reply in replies] == [["stored"], ["completed"], ["duplicate"]]
    view = tasks.get_task(UUID)
    assert view is not None
    assert (view.status, [r["text"] for r in view.results]) == (TaskStatus.COMPLETED, ["4", "4"])


@pytest.mark.parametrize(
    ("task", "slot", "status"),
    [
        (UUID, None, 400),  # half an address
        (None, "1", 400),
        (UUID, "x", 400),
        (UUID, "0", 400),  # result 0 is the task's own UUID: it needs no address
        (UUID, "-1", 400),
        (UUID, "²", 400),
        (UUID, "4", 400),  # past the most results a task can want
        (UUID, "01", 400),
        (UUID, "9" * 5000, 400),  # too long for int(): still a 400, not a crash
        ("not-a-uuid", "1", 400),
        (UUID, "2", 403),  # a valid token, but for result 1's task, not result 2's
        (OTHER_UUID, "1", 403),  # or another task's
    ],
)
def test_a_wrong_result_address_is_refused_and_writes_nothing(
    receiver: WebhookReceiver, tasks: FakeTaskRepository, task: str | None, slot: str | None, status: int
) -> None:
    before = tasks.writes
    reply, report = receiver.receive(*second_result("b"), task=task, slot=slot)
    assert (reply.status, reply.body["error"], report.rejected_reason) == (
        status,
        "invalidAddress",
        "invalidAddress",
    )
    assert tasks.writes == before


def test_previous_secret_is_accepted_during_rotation(receiver: WebhookReceiver) -> None:
    reply, _ = receiver.receive(json.dumps(result()), token_for(OLD_SECRET, UUID))
    assert reply.status == 200


@pytest.mark.parametrize(
    ("body", "token", "status", "code"),
    [
        (json.dumps(result()), None, 401, "missingToken"),
        (json.dumps(result()), "", 401, "missingToken"),
        (json.dumps(result()), "0" * 64, 403, "invalidToken"),
        (json.dumps(result()), token_for(SECRET, OTHER_UUID), 403, "invalidToken"),
        (json.dumps(result()), token_for("stranger", UUID), 403, "invalidToken"),
        ("not json", "t", 400, "malformedJson"),
        ("", "t", 400, "emptyBody"),
        ("42", "t", 400, "invalidShape"),
        (json.dumps({"hello": "world"}), "t", 400, "invalidShape"),
        (json.dumps({**result(), "taskUUID": "not-a-uuid"}), "t", 400, "invalidTaskUUID"),
        (json.dumps({"data": [{"text": "no uuid"}]}), "t", 400, "missingTaskUUID"),
        (json.dumps({"data": [result(), {**result(), "taskUUID": OTHER_UUID}]}), "t", 400, "mixedTasks"),
        (json.dumps({"data": [{"taskUUID": UUID}]}), "t", 400, "invalidResult"),
        (json.dumps({**result(), "cost": "cheap"}), "t", 400, "invalidResult"),
        (json.dumps({"data": ["text"]}), "t", 400, "invalidShape"),
        ("[" * 40 + "]" * 40, "t", 400, "tooDeep"),
        ("[" * 33 + "]" * 33, "t", 400, "tooDeep"),  # one level too deep: just past the bracket count
        ("[" * 32 + "]" * 32, "t", 400, "invalidShape"),  # as deep as allowed: parsed, then refused
        (json.dumps({"data": [{"taskUUID": UUID, "text": "[{" * 40}]}), "t", 403, "invalidToken"),
        ("[" * 100_000, "t", 413, "payloadTooLarge"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_write_nothing(
    receiver: WebhookReceiver,
    tasks: FakeTaskRepository,
    body: str,
    token: str | None,
    status: int,
    code: str,
) -> None:
    before = tasks.writes
    reply, report = receiver.receive(body, token)
    assert (reply.status, reply.body["error"]) == (status, code)
    assert reply.body["message"]
    assert report.rejected_reason == code
    assert tasks.writes == before
    view = tasks.get_task(UUID)
    assert view is not None
    assert view.results == []


def test_unknown_fields_are_kept(receiver: WebhookReceiver, tasks: FakeTaskRepository) -> None:
    receiver.receive(json.dumps(result(futureField=[1, 2])), token_for(SECRET, UUID))
    view = tasks.get_task(UUID)
    assert view is not None
    assert view.results[0]["futureField"] == [1, 2]


def test_a_bare_status_error_gets_a_default_code_and_message(
    receiver: WebhookReceiver, tasks: FakeTaskRepository
) -> None:
    reply, _ = receiver.receive(json.dumps({"taskUUID": UUID, "status": "error"}), token_for(SECRET, UUID))
    assert reply.status == 200
    view = tasks.get_task(UUID)
    assert view is not None
    assert view.error == {"code": "taskFailed", "message": "status error"}


@pytest.mark.parametrize(
    ("extra", "stored"),
    [
        ({"seed": 10**400}, ("seed", str(10**400))),
        ({"usage": {"promptTokens": 10**400}}, ("usage", {"promptTokens": str(10**400)})),
        ({"seed": 3.0}, ("seed", 3)),
        ({"unknownField": 10**400}, ("unknownField", str(10**400))),
    ],
    ids=["huge-seed", "huge-usage", "whole-float-seed", "huge-unknown"],
)
def test_integers_beyond_dynamodb_are_kept_as_text_not_answered_5xx(
    receiver: WebhookReceiver, tasks: FakeTaskRepository, extra: dict[str, Any], stored: tuple[str, Any]
) -> None:
    # JSON allows any integer; DynamoDB holds 38 digits. A 5xx would make Runware redeliver it forever.
    # The fake keeps them as the DynamoDB codec does (test_dynamodb_task_repository.py checks the adapter).
    reply, _ = receiver.receive(json.dumps({"data": [result("x", **extra)]}), token_for(SECRET, UUID))
    assert reply.status == 200
    view = tasks.get_task(UUID)
    assert view is not None
    name, value = stored
    assert view.results[0][name] == value


@pytest.mark.parametrize(
    "extra",
    [{"seed": 1e400}, {"seed": float("nan")}, {"seed": 1.5}, {"usage": {"completionTokens": float("-inf")}}],
    ids=["infinite-seed", "nan-seed", "fractional-seed", "infinite-usage"],
)
def test_non_integer_seeds_and_counts_are_refused_4xx(
    receiver: WebhookReceiver, tasks: FakeTaskRepository, extra: dict[str, Any]
) -> None:
    reply, _ = receiver.receive(json.dumps({"data": [result("x", **extra)]}), token_for(SECRET, UUID))
    assert 400 <= reply.status < 500
    view = tasks.get_task(UUID)
    assert view is not None
    assert view.results == []


def test_an_error_for_a_task_already_final_is_ignored(
    receiver: WebhookReceiver, tasks: FakeTaskRepository
) -> None:
    token = token_for(SECRET, UUID)
    failure = {"errors": [{"code": "timeoutProvider", "message": "slow", "taskUUID": UUID}]}
    first, _ = receiver.receive(json.dumps(failure), token)
    again, _ = receiver.receive(json.dumps(failure), token)
    assert [first.body["outcomes"], again.body["outcomes"]] == [["failed"], ["ignored"]]
    late, _ = receiver.receive(json.dumps(result("late")), token)  # kept; the task stays FAILED
    assert late.body["outcomes"] == ["stored"]
    view = tasks.get_task(UUID)
    assert view is not None
    assert (view.status, [r["text"] for r in view.results]) == (TaskStatus.FAILED, ["late"])


def test_storage_trouble_propagates_so_runware_retries(
    receiver: WebhookReceiver, tasks: FakeTaskRepository
) -> None:
    def broken(_: object) -> None:
        raise RuntimeError("table unavailable")

    tasks.store_result = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(RuntimeError, match="table unavailable"):
        receiver.receive(json.dumps(result()), token_for(SECRET, UUID))
