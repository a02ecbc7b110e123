"""Reconcile on the fakes: overdue tasks polled, results stored through the idempotent path, old ones
expired."""

from __future__ import annotations

import time

import pytest

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


class _CountingPoller(FakeRunware):
    """Answers every poll with every asked task completed, after a pause, counting polls in flight."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_after = fail_after  # polls answered before Runware starts refusing

    def get_response(self, task_uuids: list[str], deadline: Deadline) -> PollOutcome:
        with self._lock:
            self.asked.append(list(task_uuids))
            failing = self.fail_after is not None and len(self.asked) > self.fail_after
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(0.02)
            if failing:
                raise TransientRunwareError(503, [], "busy")
            return PollOutcome(results=[InferenceResult(taskUUID=uuid, text="late") for uuid in task_uuids])
        finally:
            with self._lock:
                self.in_flight -= 1


def _open_tasks(tasks: FakeTaskRepository, count: int) -> list[str]:
    return [open_task(tasks, f"many:{i}") for i in range(count)]


def test_batches_after_the_first_are_polled_several_at_once(tasks: FakeTaskRepository) -> None:
    uuids = _open_tasks(tasks, 100)
    runware = _CountingPoller()
    config = ReconcileConfig(overdue_after_seconds=0, poll_batch_size=10, polls_in_flight=4)
    report = ReconcileService(tasks, runware, config).run(Deadline.after(30), now=time.time() + 10)
    assert (report.checked, report.polls, report.completed, report.results_stored) == (100, 10, 100, 100)
    assert report.outcomes == {"completed": 100}
    assert runware.most_in_flight == 4
    assert len(runware.asked[0]) == 10  # the first batch went alone: nothing else was asked before it
    assert sorted(uuid for asked in runware.asked for uuid in asked) == sorted(uuids)
    assert all(tasks.get_task(uuid).status == TaskStatus.COMPLETED for uuid in uuids)  # type: ignore[union-attr]


def test_runware_trouble_on_the_first_poll_sends_no_other(tasks: FakeTaskRepository) -> None:
    _open_tasks(tasks, 100)
    runware = _CountingPoller(fail_after=0)
    config = ReconcileConfig(overdue_after_seconds=0, poll_batch_size=10, polls_in_flight=4)
    report = ReconcileService(tasks, runware, config).run(Deadline.after(30), now=time.time() + 10)
    assert (len(runware.asked), report.polls, report.completed) == (1, 0, 0)


def test_runware_trouble_midway_stops_new_polls_and_keeps_what_was_stored(tasks: FakeTaskRepository) -> None:
    uuids = _open_tasks(tasks, 200)
    runware = _CountingPoller(fail_after=3)
    config = ReconcileConfig(overdue_after_seconds=0, poll_batch_size=10, polls_in_flight=4)
    report = ReconcileService(tasks, runware, config).run(Deadline.after(30), now=time.time() + 10)
    # The three answered polls stored their tasks; at most the polls already in flight met the refusal.
    assert (report.polls, report.completed) == (3, 30)
    assert 4 <= len(runware.asked) <= 3 + config.polls_in_flight
    completed = [uuid for uuid in uuids if tasks.get_task(uuid).status == TaskStatus.COMPLETED]  # type: ignore[union-attr]
    assert len(completed) == 30


def test_a_short_deadline_starts_no_poll(tasks: FakeTaskRepository) -> None:
    _open_tasks(tasks, 30)
    runware = _CountingPoller()
    config = ReconcileConfig(overdue_after_seconds=0, poll_batch_size=10, reserve_seconds=5.0)
    report = ReconcileService(tasks, runware, config).run(Deadline.after(4), now=time.time() + 10)
    assert (report.checked, report.polls, runware.asked) == (30, 0, [])


def test_a_broken_batch_is_raised_and_stops_the_others(tasks: FakeTaskRepository) -> None:
    _open_tasks(tasks, 100)
    runware = _CountingPoller()
    broken = RuntimeError("DynamoDB is gone")
    original = tasks.tasks_in_order
    calls = 0

    def failing_read(task_uuids: list[str], **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise broken
        return original(task_uuids, **kwargs)  # type: ignore[arg-type]

    tasks.tasks_in_order = failing_read  # type: ignore[method-assign,assignment]
    config = ReconcileConfig(overdue_after_seconds=0, poll_batch_size=10, polls_in_flight=2)
    with pytest.raises(RuntimeError, match="DynamoDB is gone"):
        ReconcileService(tasks, runware, config).run(Deadline.after(30), now=time.time() + 10)
    assert len(runware.asked) < 10  # the batches still queued were not polled


def test_a_task_that_cannot_be_written_is_skipped_and_the_others_are_healed(
    tasks: FakeTaskRepository, caplog: pytest.LogCaptureFixture
) -> None:
    # Before, its write's exception ended the run; runs take tasks oldest first, so every run ended there.
    poison, first, last = open_task(tasks, "poison"), open_task(tasks, "first"), open_task(tasks, "last")
    outcome = PollOutcome(
        results=[InferenceResult(taskUUID=uuid, text="t") for uuid in (first, poison, last)]
    )
    original = tasks.store_result

    def store_result(result: object) -> object:
        if getattr(result, "taskUUID", None) == poison:
            raise RuntimeError("ValidationException: Item size has exceeded the maximum allowed size")
        return original(result)  # type: ignore[arg-type]

    tasks.store_result = store_result  # type: ignore[method-assign,assignment]
    service = ReconcileService(tasks, poller(outcome), ReconcileConfig(overdue_after_seconds=0))
    report = service.run(Deadline.after(30), now=time.time() + 10)
    assert (report.completed, report.skipped) == (2, 1)
    assert tasks.get_task(first).status == TaskStatus.COMPLETED  # type: ignore[union-attr]
    assert tasks.get_task(last).status == TaskStatus.COMPLETED  # type: ignore[union-attr]
    assert tasks.get_task(poison).status == TaskStatus.PENDING  # type: ignore[union-attr]
    assert f"task {poison} could not be written" in caplog.text


def test_two_tasks_failing_in_a_row_stop_the_run(tasks: FakeTaskRepository) -> None:
    # Two in a row is the store in trouble, not a task: the run stops, as before, and the next one retries.
    uuids = [open_task(tasks, f"t{i}") for i in range(4)]
    outcome = PollOutcome(results=[InferenceResult(taskUUID=uuid, text="t") for uuid in uuids])

    def store_result(result: object) -> object:
        raise RuntimeError("DynamoDB is gone")

    tasks.store_result = store_result  # type: ignore[method-assign,assignment]
    service = ReconcileService(tasks, poller(outcome), ReconcileConfig(overdue_after_seconds=0))
    with pytest.raises(RuntimeError, match="DynamoDB is gone"):
        service.run(Deadline.after(30), now=time.time() + 10)
