"""Spend caps on the fakes: a chunk is sent only if its estimate fits the budgets; what does not fit ends
CANCELLED with budgetExceeded; each final task replaces its estimate by its real cost exactly once."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest

from runrelay.deadline import Deadline
from runrelay.domain.budgets import BUDGET_EXCEEDED_CODE, daily_budget
from runrelay.domain.tasks import TaskStatus
from runrelay.inputs import Rejection, classify_sqs_body
from runrelay.results_file import ResultsWriter
from runrelay.results_logic import ResultsService
from runrelay.submit_logic import SubmitConfig, SubmitService
from runrelay.webhook_logic import WebhookReceiver
from runrelay.webhook_token import token_for
from tests.support.fakes import (
    FakeEventPublisher,
    FakeJobRepository,
    FakeObjectWriter,
    FakeRunware,
    FakeSpendLedger,
    FakeTaskRepository,
)
from tests.support.s3_events import s3_created_event

SOURCE = "s3://b/in/batch.jsonl#e"
SECRET = "s"
ESTIMATE = 0.001


class Harness:
    def __init__(
        self, tasks: FakeTaskRepository, jobs: FakeJobRepository, runware: FakeRunware, **config: Any
    ) -> None:
        self.tasks, self.jobs, self.runware = tasks, jobs, runware
        self.ledger = FakeSpendLedger(jobs)
        self.data = b""
        self.object_budget: float | None = None
        self.submit = SubmitService(
            tasks,
            runware,
            SubmitConfig(
                webhook_base_url="https://hooks.example/",
                webhook_secret=SECRET,
                max_tasks_per_request=4,
                chunks_in_flight=1,
                estimated_cost_per_result_usd=ESTIMATE,
                **config,
            ),
            open_object=lambda ref: io.BytesIO(self.data),
            enqueue=lambda body: None,
            jobs=jobs,
            ledger=self.ledger,
            object_budget=lambda ref: self.object_budget,
        )
        self.webhooks = WebhookReceiver(tasks, lambda: [SECRET])
        self.results = ResultsService(jobs, ResultsWriter(tasks, FakeObjectWriter()), FakeEventPublisher())

    def upload(self, count: int, budget: float | None) -> Any:
        self.data = b"".join(json.dumps({"prompt": f"line {n}"}).encode() + b"\n" for n in range(count))
        self.object_budget = budget
        body = s3_created_event("b", "in/batch.jsonl", len(self.data))
        return self.submit.process_record("m", body, Deadline.after(60))

    def complete(self, source: str, cost: float, deliveries: int = 1) -> None:
        """Every open task of the source gets its result (with this cost), `deliveries` times."""
        for task in self.tasks.tasks_of_source(source):
            if task.status != TaskStatus.PENDING:
                continue
            body = json.dumps({"taskUUID": task.task_uuid, "text": "ok", "cost": cost})
            for _ in range(deliveries):
                self.webhooks.receive(body, token_for(SECRET, task.task_uuid))
        while changes := [*self.tasks.drain_changes(), *self.jobs.drain_changes()]:
            assert self.results.process(changes).failed_sequence_number is None


@pytest.fixture
def harness(tasks: FakeTaskRepository, jobs: FakeJobRepository, runware: FakeRunware) -> Harness:
    return Harness(tasks, jobs, runware)


def sent(runware: FakeRunware) -> int:
    return sum(len(request) for request in runware.requests)


def test_a_file_stops_at_its_budget_and_its_other_lines_end_cancelled(harness: Harness) -> None:
    report = harness.upload(12, budget=0.009)  # room for two chunks of four at 0.001 each
    assert (report.submitted, report.over_budget, report.cancelled) == (8, 4, 4)
    assert sent(harness.runware) == 8
    tasks = harness.tasks.tasks_of_source(SOURCE)
    assert [t.status for t in tasks] == [TaskStatus.PENDING] * 8 + [TaskStatus.CANCELLED] * 4
    error = tasks[-1].error
    assert error is not None
    assert (error["code"], error["scope"], error["budgetUSD"]) == (BUDGET_EXCEEDED_CODE, "source", 0.009)
    assert tasks[0].budget == {"reservedUSD": ESTIMATE, "source": True}
    assert harness.ledger.committed("source", SOURCE) == pytest.approx((0.008, 0.0))
    job = harness.jobs.get(SOURCE)
    assert job is not None
    assert job.expected == 12  # every line has its row: the job still closes


def test_real_costs_replace_the_estimates_once_however_often_a_webhook_comes(harness: Harness) -> None:
    harness.upload(6, budget=1.0)
    harness.complete(SOURCE, cost=0.0002, deliveries=3)
    committed, spent = harness.ledger.committed("source", SOURCE)
    assert (committed, spent) == (pytest.approx(6 * 0.0002), pytest.approx(6 * 0.0002))


def test_the_room_real_costs_leave_is_used_by_later_sources(
    tasks: FakeTaskRepository, jobs: FakeJobRepository, runware: FakeRunware
) -> None:
    harness = Harness(tasks, jobs, runware, daily_budget_usd=0.004)
    first = harness.submit.process_record(
        "m1", json.dumps([{"prompt": str(n)} for n in range(4)]), Deadline.after(60)
    )
    assert first.submitted == 4
    second = harness.submit.process_record("m2", json.dumps({"prompt": "one more"}), Deadline.after(60))
    assert (second.submitted, second.over_budget) == (0, 1)  # the day is full of estimates
    harness.complete("sqs:m1", cost=0.0005)  # far cheaper than reckoned: room again
    third = harness.submit.process_record("m3", json.dumps({"prompt": "now it fits"}), Deadline.after(60))
    assert third.submitted == 1
    day = daily_budget(0.004, time.time()).name
    assert harness.ledger.committed("day", day)[0] == pytest.approx(4 * 0.0005 + ESTIMATE)


def test_a_redelivered_record_reserves_nothing_twice(harness: Harness) -> None:
    body = json.dumps({"budgetUSD": 0.01, "tasks": [{"prompt": "a"}, {"prompt": "b"}]})
    harness.submit.process_record("m1", body, Deadline.after(60))
    again = harness.submit.process_record("m1", body, Deadline.after(60))
    assert again.submitted == 2  # open rows are sent again; Runware answers conflictTaskUUID
    assert len(harness.runware.known) == 2
    assert harness.ledger.committed("source", "sqs:m1")[0] == pytest.approx(2 * ESTIMATE)


def test_a_budgeted_message_must_be_well_formed() -> None:
    for body, reason in (
        ({"budgetUSD": -1, "tasks": [{"prompt": "a"}]}, "positive number"),
        ({"budgetUSD": "5", "tasks": [{"prompt": "a"}]}, "positive number"),
        ({"budgetUSD": 5, "tasks": {"prompt": "a"}}, "tasks"),
        ({"budgetUSD": 5, "tasks": [], "extra": 1}, "tasks"),
    ):
        refused = classify_sqs_body("m", json.dumps(body))
        assert isinstance(refused, Rejection), body
        assert refused.code == "invalidBudget"
        assert reason in refused.message
