"""Reconcile on the fakes: overdue tasks polled, results stored through the idempotent path, old ones
expired."""

from __future__ import annotations

import time

from runrelay.contract import InferenceResult, RunwareError
from runrelay.deadline import Deadline
from runrelay.domain.tasks import NewTask, TaskStatus
from runrelay.reconcile_logic import ReconcileConfig, ReconcileService
from runrelay.runware_client import PollOutcome
from runrelay.runware_errors import TransientRunwareError
from runrelay.task_ids import result_task_uuid, task_uuid_for
from tests.support.fakes import FakeRunware, FakeTaskRepository


def poller(outcome: PollOutcome | Exception) -> FakeRunware:
    """Runware answering every poll with `outcome` (raised if an exception)."""
    runware = FakeRunware()
    runware.default_poll = outcome
    return runware


def open_task(tasks: FakeTaskRepository, key: str, number_results: int = 1) -> str:
    uuid = str(task_uuid_for(key))
    tasks.create_pending(NewTask(uuid, key, "src", 0, number_results))
    return uuid


def test_results_from_polling_complete_tasks_once(tasks: FakeTaskRepository) -> None:
    done, failing, waiting = (
        open_task(tasks, "done", 2),
        open_task(tasks, "failing"),
        open_task(tasks, "waiting"),
    )
    done_second = result_task_uuid(done, 1)  # the done task's result 1 is a Runware task of its own
    outcome = PollOutcome(
        results=[
            InferenceResult(taskUUID=done, text="same"),  # identical results without seeds: both count
            InferenceResult(taskUUID=done_second, text="same"),
            InferenceResult(taskUUID=str(task_uuid_for("never asked")), text="stray"),
        ],
        processing=[waiting],
        errors={failing: RunwareError(code="timeoutProvider", message="slow", taskUUID=failing)},
    )
    runware = poller(outcome)
    service = ReconcileService(tasks, runware, ReconcileConfig(overdue_after_seconds=0))
    report = service.run(Deadline.after(30), now=time.time() + 10)
    assert sorted(runware.asked[0]) == sorted([done, done_second, failing, waiting])
    assert (report.checked, report.results_stored, report.completed, report.failed) == (3, 2, 1, 1)
    assert report.still_processing == 1
    statuses = {u: tasks.get_task(u).status for u in (done, failing, waiting)}  # type: ignore[union-attr]
    assert statuses == {done: TaskStatus.COMPLETED, failing: TaskStatus.FAILED, waiting: TaskStatus.PENDING}
    assert [r["text"] for r in tasks.get_task(done).results] == ["same", "same"]  # type: ignore[union-attr]
    assert tasks.get_task(str(task_uuid_for("never asked"))) is None
    again = service.run(Deadline.after(30), now=time.time() + 10)
    assert again.checked == 1  # only the one still waiting is open


def test_a_task_missing_one_of_its_results_is_still_processing(tasks: FakeTaskRepository) -> None:
    task = open_task(tasks, "half", 2)
    outcome = PollOutcome(results=[InferenceResult(taskUUID=task, text="a")])  # result 1: no answer yet
    report = ReconcileService(tasks, poller(outcome), ReconcileConfig(overdue_after_seconds=0)).run(
        Deadline.after(30), now=time.time() + 10
    )
    assert (report.results_stored, report.completed, report.still_processing) == (1, 0, 1)


def test_tasks_past_their_maximum_age_expire(tasks: FakeTaskRepository) -> None:
    waiting = open_task(tasks, "too-old")
    service = ReconcileService(
        tasks,
        poller(PollOutcome(processing=[waiting])),
        ReconcileConfig(overdue_after_seconds=0, max_task_age_seconds=60),
    )
    report = service.run(Deadline.after(30), now=time.time() + 120)
    assert report.expired == 1
    view = tasks.get_task(waiting)
    assert view is not None
    assert view.status == TaskStatus.FAILED
    assert view.error == {"code": "taskExpired", "message": "no result within MAX_TASK_AGE_SECONDS"}


def test_not_found_is_tolerated_until_the_task_is_old(tasks: FakeTaskRepository) -> None:
    unknown = open_task(tasks, "unknown")
    not_found = PollOutcome(
        errors={unknown: RunwareError(code="taskNotFound", message="?", taskUUID=unknown)}
    )
    service = ReconcileService(
        tasks, poller(not_found), ReconcileConfig(overdue_after_seconds=0, max_task_age_seconds=60)
    )
    assert service.run(Deadline.after(30), now=time.time() + 5).failed == 0
    assert service.run(Deadline.after(30), now=time.time() + 120).failed == 1


def test_fresh_tasks_are_not_polled_and_runware_trouble_stops_quietly(tasks: FakeTaskRepository) -> None:
    open_task(tasks, "fresh")
    runware = poller(TransientRunwareError(503, [], "busy"))
    service = ReconcileService(tasks, runware, ReconcileConfig(overdue_after_seconds=3600))
    assert service.run(Deadline.after(30)).checked == 0
    assert runware.asked == []
    service.config = ReconcileConfig(overdue_after_seconds=0)
    report = service.run(Deadline.after(30), now=time.time() + 10)
    assert (report.checked, report.polls) == (1, 0)
