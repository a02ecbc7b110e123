"""The (taskType, model) seam: a second model entry (tests/support/models.py) works end to end on the
fakes, from the webhook through storage to the results file. A result's identity is its slot, whatever
the model (tests/contract/test_ports.py, test_identical_results_in_two_slots_are_two_results)."""

from __future__ import annotations

import json

import pytest

from runrelay import models
from runrelay.domain.tasks import NewTask, TaskRecord, TaskStatus
from runrelay.models import DEFAULT_MODEL, MINIMAX_M2_7, TEXT_INFERENCE, model_entry, register
from runrelay.results_file import ResultsWriter, result_line
from runrelay.task_ids import result_task_uuid, task_uuid_for
from runrelay.webhook_logic import WebhookReceiver
from runrelay.webhook_token import token_for
from tests.support.fakes import FakeObjectWriter, FakeTaskRepository
from tests.support.models import ACME_TINY

SOURCE = "s3://in/acme.jsonl#e"


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry as shipped, restored after the test."""
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))


def test_the_shipped_model_is_registered_and_the_default() -> None:
    assert model_entry(TEXT_INFERENCE, "minimax:m2.7@0") is MINIMAX_M2_7
    assert DEFAULT_MODEL is MINIMAX_M2_7


@pytest.mark.usefixtures("registry")
def test_an_entry_is_found_once_registered_and_not_before() -> None:
    with pytest.raises(LookupError, match="acme:tiny@1"):
        model_entry(TEXT_INFERENCE, "acme:tiny@1")
    assert register(ACME_TINY) is ACME_TINY
    assert model_entry(TEXT_INFERENCE, "acme:tiny@1") is ACME_TINY
    assert model_entry(TEXT_INFERENCE, "minimax:m2.7@0") is MINIMAX_M2_7  # the others stay
    with pytest.raises(LookupError):
        model_entry("imageInference", "acme:tiny@1")  # the task type is part of the key


def test_a_result_line_keeps_the_entrys_fields() -> None:
    task = TaskRecord(
        task_uuid="u",
        status=TaskStatus.COMPLETED,
        source_id=SOURCE,
        source_seq=1,
        results=[{"text": "a", "choiceIndex": 0, "logprob": -0.5, "seed": 9, "cost": 0.25, "receivedAt": 1}],
    )
    acme_line = result_line(task, model=ACME_TINY)
    assert acme_line["results"] == [{"text": "a", "choiceIndex": 0, "logprob": -0.5}]
    assert acme_line["text"] == "a"
    assert acme_line["cost"] == 0.25  # summed from the stored results, whatever the model keeps per result
    assert result_line(task)["results"] == [{"text": "a", "seed": 9, "cost": 0.25}]


def test_a_second_model_end_to_end_on_the_fakes() -> None:
    tasks = FakeTaskRepository()
    task_uuid = str(task_uuid_for(f"{SOURCE}:1"))
    tasks.create_many([(NewTask(task_uuid, f"{SOURCE}:1", SOURCE, 1, number_results=2), None)])
    receiver = WebhookReceiver(tasks, lambda: ["secret"], model=ACME_TINY)
    outcomes = []
    # Result 0, result 0 redelivered with a new seed, then result 1 (its own Runware task).
    for slot, choice, seed in ((0, 0, 1), (0, 0, 2), (1, 1, 3)):
        runware_uuid = result_task_uuid(task_uuid, slot)
        body = {"taskType": "textInference", "taskUUID": runware_uuid, "text": "a", "choiceIndex": choice}
        address = {"task": task_uuid, "slot": str(slot)} if slot else {}
        token = token_for("secret", runware_uuid)
        payload = json.dumps({"data": [{**body, "seed": seed, "logprob": -0.5}]})
        reply, _ = receiver.receive(payload, token, **address)
        outcomes += reply.body["outcomes"]
    assert outcomes == ["stored", "duplicate", "completed"]

    objects = FakeObjectWriter()
    written = ResultsWriter(tasks, objects, model=ACME_TINY).write(SOURCE, 1, "in", "acme.jsonl")
    assert (written.lines, written.counts) == (1, {"COMPLETED": 1})
    [line] = [json.loads(row) for row in objects.read("in", "results/acme.jsonl").splitlines()]
    assert line["taskUUID"] == task_uuid
    assert line["results"] == [
        {"text": "a", "choiceIndex": 0, "logprob": -0.5},
        {"text": "a", "choiceIndex": 1, "logprob": -0.5},
    ]
