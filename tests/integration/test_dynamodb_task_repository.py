"""The DynamoDB task repository on Amazon DynamoDB Local: real conditional writes under concurrency, real
capacity numbers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from runrelay.adapters.dynamodb.inspection import TableInspector
from runrelay.adapters.dynamodb.jobs import DynamoJobRepository
from runrelay.adapters.dynamodb.schema import task_key
from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.adapters.s3 import S3PayloadStore
from runrelay.contract import InferenceResult
from runrelay.domain.jobs import FinalLine
from runrelay.domain.tasks import NewTask, SlotResult, StoreOutcome, TaskStatus
from runrelay.task_ids import task_uuid_for


def store_for(stack: Any, clients: Any) -> DynamoTaskRepository:
    payloads = S3PayloadStore(stack.bucket_name, s3=clients.s3)
    return DynamoTaskRepository(stack.table_name, payloads=payloads, dynamodb=clients.dynamodb)


def test_concurrent_deliveries_store_each_result_once(provisioned_stack: Any, aws_clients: Any) -> None:
    store = store_for(provisioned_stack, aws_clients)
    tasks = [NewTask(str(task_uuid_for(f"c{i}")), f"c{i}", "src", i, number_results=4) for i in range(5)]
    for task in tasks:
        store.create_pending(task)
    deliveries = [
        SlotResult(task.task_uuid, n, {"text": f"{task.task_uuid} result {n}", "seed": n})
        for task in tasks
        for n in range(4)
    ] * 3  # every result delivered three times, all at once
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(store.store_result, deliveries))
    assert outcomes.count(StoreOutcome.COMPLETED) == 5
    assert outcomes.count(StoreOutcome.DUPLICATE) == 40
    for task in tasks:
        view = store.get_task(task.task_uuid)
        assert view is not None
        assert view.status == TaskStatus.COMPLETED
        assert view.result_count == 4
        assert len(view.results) == 4


def test_overdue_tasks_come_from_the_index(provisioned_stack: Any, aws_clients: Any) -> None:
    store = store_for(provisioned_stack, aws_clients)
    open_task = NewTask(str(task_uuid_for("open")), "open", "src", 0)
    done_task = NewTask(str(task_uuid_for("done")), "done", "src", 1)
    for task in (open_task, done_task):
        store.create_pending(task)
    store.store_result(InferenceResult(taskUUID=done_task.task_uuid, text="t"))
    jobs = DynamoJobRepository(provisioned_stack.table_name, dynamodb=aws_clients.dynamodb)
    jobs.record_finals([FinalLine(done_task.task_uuid, "src", 1)])
    assert list(store.open_tasks_since_before(2**31)) == [open_task.task_uuid]


def test_rows_written_before_tallies_leave_the_index_once_final(
    provisioned_stack: Any, aws_clients: Any
) -> None:
    """Earlier versions listed each open task row in OpenTasks itself. The usual completion leaves its
    index attributes; the reconciler's next listing takes the final row out and still lists an open one."""
    store = store_for(provisioned_stack, aws_clients)
    done, still_open = (
        NewTask(str(task_uuid_for(f"legacy-{n}")), f"legacy-{n}", "legacy", i) for i, n in enumerate("ab")
    )
    for task in (done, still_open):
        row = store._new_item(task, TaskStatus.PENDING, 1_700_000_000.0)
        row |= {"openShard": {"S": "OPEN#0"}, "openSince": {"N": "1700000000"}}
        aws_clients.dynamodb.put_item(TableName=provisioned_stack.table_name, Item=row)
    assert store.store_result(InferenceResult(taskUUID=done.task_uuid, text="t")) is StoreOutcome.COMPLETED
    inspector = TableInspector(provisioned_stack.table_name, dynamodb=aws_clients.dynamodb)
    assert inspector.count_open() == 1  # the final row is still in the index, but not open
    mine = {done.task_uuid, still_open.task_uuid}

    def listed() -> set[str]:
        return set(store.open_tasks_since_before(2**31, limit=100_000)) & mine

    assert listed() == {still_open.task_uuid}
    closed = aws_clients.dynamodb.get_item(
        TableName=provisioned_stack.table_name, Key=task_key(done.task_uuid)
    )
    assert "openShard" not in closed["Item"]
    assert closed["Item"]["status"]["S"] == TaskStatus.COMPLETED.value
    assert listed() == {still_open.task_uuid}


def test_a_small_completion_costs_at_most_two_write_units(provisioned_stack: Any, aws_clients: Any) -> None:
    store = store_for(provisioned_stack, aws_clients)
    task = NewTask(str(task_uuid_for("wcu")), "wcu", "src", 0)
    store.create_pending(task)
    consumed: list[float] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        params["ReturnConsumedCapacity"] = "TOTAL"

    def collect(parsed: dict[str, Any], **_: Any) -> None:
        if "ConsumedCapacity" in parsed:
            consumed.append(parsed["ConsumedCapacity"].get("WriteCapacityUnits") or 0.0)

    events = aws_clients.dynamodb.meta.events
    events.register("provide-client-params.dynamodb.UpdateItem", record)
    events.register("after-call.dynamodb.UpdateItem", collect)
    try:
        store.store_result(InferenceResult(taskUUID=task.task_uuid, text="short answer", seed=1, cost=0.0001))
    finally:
        events.unregister("provide-client-params.dynamodb.UpdateItem", record)
        events.unregister("after-call.dynamodb.UpdateItem", collect)
    assert consumed
    assert sum(consumed) <= 2.0


def test_chunk_writes_keep_the_single_write_conditions(provisioned_stack: Any, aws_clients: Any) -> None:
    """A chunk's rows written in parallel: rows that exist keep their status and are answered with it."""
    store = store_for(provisioned_stack, aws_clients)
    tasks = [NewTask(str(task_uuid_for(f"chunk{i}")), f"chunk{i}", "chunk-src", i) for i in range(150)]
    assert store.create_many([(t, None) for t in tasks[:40:2]]) == [None] * 20  # every other of the first 40
    store.store_result(InferenceResult(taskUUID=tasks[2].task_uuid, text="early webhook"))

    rows = [(t, {"code": "bad", "message": "refused"} if i == 149 else None) for i, t in enumerate(tasks)]
    statuses = store.create_many(rows)
    assert statuses[2] is TaskStatus.COMPLETED
    assert all(statuses[i] is TaskStatus.PENDING for i in range(0, 40, 2) if i != 2)
    assert all(statuses[i] is None for i in range(1, 150, 2))
    assert all(statuses[i] is None for i in range(40, 150))
    views = {v.task_uuid: v.status for v in store.tasks_of_source("chunk-src")}
    assert views[tasks[2].task_uuid] == TaskStatus.COMPLETED
    assert views[tasks[149].task_uuid] == TaskStatus.REJECTED
    assert sum(status == TaskStatus.PENDING for status in views.values()) == 148
