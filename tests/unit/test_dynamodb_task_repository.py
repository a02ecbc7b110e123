"""TaskStore semantics: conditional creation, monotonic lifecycle, each result stored exactly once."""

from __future__ import annotations

from typing import Any

from runrelay.contract import InferenceResult
from runrelay.task_ids import task_uuid_for
from runrelay.task_store import (
    INLINE_RESULT_LIMIT,
    SOLE_RESULT_DUE,
    NewTask,
    StoreOutcome,
    TaskStatus,
    TaskStore,
    task_key,
)

from .conftest import BUCKET


def new_task(key: str = "k", number_results: int = 1, seq: int = 0, source: str = "src") -> NewTask:
    return NewTask(str(task_uuid_for(key)), key, source, seq, number_results, caller_id=f"caller-{key}")


def result(task: NewTask, text: str = "hello", seed: int = 1) -> InferenceResult:
    return InferenceResult(
        taskUUID=task.task_uuid, taskType="textInference", text=text, seed=seed, cost=0.001
    )


def test_create_pending_is_conditional(store: TaskStore) -> None:
    task = new_task()
    assert store.create_pending(task) is None
    assert store.create_pending(task) is TaskStatus.PENDING
    store.mark_submitted(task.task_uuid)
    assert store.create_pending(task) is TaskStatus.SUBMITTED


def test_single_result_completes_and_duplicate_is_ignored(store: TaskStore) -> None:
    task = new_task()
    store.create_pending(task)
    store.mark_submitted(task.task_uuid)
    assert store.store_result(result(task)) is StoreOutcome.COMPLETED
    assert store.store_result(result(task)) is StoreOutcome.DUPLICATE
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert view.status == TaskStatus.COMPLETED
    assert [r["text"] for r in view.results] == ["hello"]
    assert "openShard" not in view.item


def test_three_results_complete_only_after_the_third(store: TaskStore) -> None:
    task = new_task(number_results=3)
    store.create_pending(task)
    outcomes = [store.store_result(result(task, f"text {i}", seed=i)) for i in range(3)]
    assert outcomes == [StoreOutcome.STORED, StoreOutcome.STORED, StoreOutcome.COMPLETED]
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert view.item["resultCount"] == 3
    assert len(view.results) == 3


def test_webhook_before_submitted_is_kept_and_submit_does_not_move_back(store: TaskStore) -> None:
    task = new_task()
    store.create_pending(task)
    assert store.store_result(result(task)) is StoreOutcome.COMPLETED
    assert store.mark_submitted(task.task_uuid) is False
    assert store.mark_failed(task.task_uuid, {"code": "late"}) is False
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert view.status == TaskStatus.COMPLETED


def test_failed_and_rejected_are_final(store: TaskStore) -> None:
    task = new_task()
    store.create_pending(task)
    assert store.mark_failed(task.task_uuid, {"code": "timeoutProvider", "message": "slow"})
    assert store.mark_rejected(task.task_uuid, {"code": "x"}) is False
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert view.status == TaskStatus.FAILED
    assert view.error == {"code": "timeoutProvider", "message": "slow"}


def test_large_result_goes_to_s3_and_reads_back(store: TaskStore, aws: dict[str, Any]) -> None:
    task = new_task()
    store.create_pending(task)
    big = "x" * (INLINE_RESULT_LIMIT + 10)
    store.store_result(result(task, big))
    raw = aws["dynamodb"].get_item(
        TableName=store.table_name, Key={"pk": {"S": f"TASK#{task.task_uuid}"}, "sk": {"S": "TASK"}}
    )
    entry = next(iter(raw["Item"]["results"]["M"].values()))["M"]
    assert entry["payloadRef"]["S"].startswith(f"s3://{BUCKET}/completions/")
    assert "text" not in entry
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert view.results[0]["text"] == big


def test_result_for_unknown_task_is_kept(store: TaskStore) -> None:
    orphan = new_task("never-created")
    assert store.store_result(result(orphan)) is StoreOutcome.COMPLETED
    view = store.get_task(orphan.task_uuid)
    assert view is not None
    assert view.results[0]["text"] == "hello"


def test_open_tasks_and_source_order(store: TaskStore) -> None:
    tasks = [new_task(f"k{i}", seq=i, source="s3://b/k#e") for i in (2, 0, 1)]
    for task in tasks:
        store.create_pending(task)
    store.store_result(result(tasks[0]))
    open_uuids = set(store.open_tasks_since_before(cutoff_epoch=2**31))
    assert open_uuids == {tasks[1].task_uuid, tasks[2].task_uuid}
    assert [v.item["sourceSeq"] for v in store.tasks_of_source("s3://b/k#e")] == [0, 1, 2]


def test_unknown_result_fields_are_kept(store: TaskStore) -> None:
    task = new_task()
    store.create_pending(task)
    store.store_result(
        InferenceResult.model_validate({"taskUUID": task.task_uuid, "text": "t", "newField": {"a": 1.5}})
    )
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert view.results[0]["newField"] == {"a": 1.5}


def _calls(store: TaskStore) -> list[str]:
    """The DynamoDB operations `store` makes from now on, in order."""
    seen: list[str] = []
    store.dynamodb.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: seen.append(model.name), unique_id="count-calls"
    )
    return seen


def test_the_usual_completion_is_one_update_and_leaves_no_marker(store: TaskStore) -> None:
    task = new_task()
    store.create_pending(task)
    store.mark_submitted(task.task_uuid)
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert view.item[SOLE_RESULT_DUE] is True
    calls = _calls(store)
    assert store.store_result(result(task)) is StoreOutcome.COMPLETED
    assert calls == ["UpdateItem"]
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert SOLE_RESULT_DUE not in view.item


def test_no_marker_where_more_than_one_result_is_wanted_or_the_task_is_final(store: TaskStore) -> None:
    multi, failed = new_task("multi", number_results=2), new_task("failed")
    store.create_pending(multi)
    store.create_pending(failed)
    store.mark_failed(failed.task_uuid, {"code": "boom"})
    for task in (multi, failed):
        view = store.get_task(task.task_uuid)
        assert view is not None
        assert SOLE_RESULT_DUE not in view.item
    # A late result for a FAILED task is kept, and the task stays FAILED.
    assert store.store_result(result(failed)) is StoreOutcome.STORED
    view = store.get_task(failed.task_uuid)
    assert view is not None
    assert (view.status, len(view.results)) == (TaskStatus.FAILED, 1)


def test_a_row_without_the_marker_still_completes_once(store: TaskStore, aws: dict[str, Any]) -> None:
    """Rows written before the marker existed: the guess is refused, the locked write completes."""
    task = new_task("legacy")
    store.create_pending(task)
    aws["dynamodb"].update_item(
        TableName=store.table_name, Key=task_key(task.task_uuid), UpdateExpression=f"REMOVE {SOLE_RESULT_DUE}"
    )
    calls = _calls(store)
    assert store.store_result(result(task)) is StoreOutcome.COMPLETED
    assert calls == ["UpdateItem", "UpdateItem"]  # the refused guess returned the item: no read
    assert store.store_result(result(task)) is StoreOutcome.DUPLICATE
    assert store.store_result(result(task, "another")) is StoreOutcome.STORED
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert (view.status, view.item["resultCount"]) == (TaskStatus.COMPLETED, 2)


def test_an_orphan_completes_once_and_a_second_result_does_not_complete_it_again(store: TaskStore) -> None:
    orphan = new_task("orphan")
    assert store.store_result(result(orphan)) is StoreOutcome.COMPLETED
    assert store.store_result(result(orphan, "second")) is StoreOutcome.STORED
    view = store.get_task(orphan.task_uuid)
    assert view is not None
    assert (view.status, view.item["resultCount"], len(view.results)) == (TaskStatus.COMPLETED, 2, 2)
    assert SOLE_RESULT_DUE not in view.item
    assert "openShard" not in view.item
