"""The DynamoDB task repository on moto: conditional creation, monotonic lifecycle, each result stored
exactly once, the item's own attributes (open-index keys, the sole-result marker, offloaded texts) and
the number of calls. What every TaskRepository must do is in tests/contract/test_ports.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runrelay.adapters.dynamodb.codec import from_dynamo
from runrelay.adapters.dynamodb.jobs import DynamoJobRepository
from runrelay.adapters.dynamodb.schema import tally_key, task_key
from runrelay.adapters.dynamodb.tasks import INLINE_RESULT_LIMIT, SOLE_RESULT_DUE, DynamoTaskRepository
from runrelay.contract import InferenceResult
from runrelay.domain.jobs import FinalLine
from runrelay.domain.tasks import NewTask, SlotResult, StorableResult, StoreOutcome, TaskStatus
from runrelay.task_ids import line_key, task_uuid_for
from runrelay.webhook_logic import WebhookReceiver
from runrelay.webhook_token import token_for

from .conftest import BUCKET


def item(store: DynamoTaskRepository, task_uuid: str) -> dict[str, Any]:
    """The task's item as stored, plain values."""
    answer = store.dynamodb.get_item(TableName=store.table_name, Key=task_key(task_uuid), ConsistentRead=True)
    return from_dynamo(answer["Item"])


def new_task(key: str = "k", number_results: int = 1, seq: int = 0, source: str = "src") -> NewTask:
    return NewTask(str(task_uuid_for(key)), key, source, seq, number_results, caller_id=f"caller-{key}")


def result(task: NewTask, text: str = "hello", seed: int = 1, slot: int = 0) -> StorableResult:
    polled = InferenceResult(
        taskUUID=task.task_uuid, taskType="textInference", text=text, seed=seed, cost=0.001
    )
    return SlotResult(task.task_uuid, slot, polled.as_document()) if slot else polled


def submitted_by_an_earlier_version(store: DynamoTaskRepository, task_uuid: str) -> None:
    """What earlier versions wrote once Runware had taken a task: still read, and completed, as open."""
    store.dynamodb.update_item(
        TableName=store.table_name,
        Key=task_key(task_uuid),
        UpdateExpression="SET #s = :submitted, submittedAt = :now",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":submitted": {"S": "SUBMITTED"}, ":now": {"N": "1700000000"}},
    )


def test_create_pending_is_conditional(store: DynamoTaskRepository) -> None:
    task = new_task()
    assert store.create_pending(task) is None
    assert store.create_pending(task) is TaskStatus.PENDING
    submitted_by_an_earlier_version(store, task.task_uuid)
    assert store.create_pending(task) is TaskStatus.SUBMITTED


def test_a_chunk_creates_only_the_rows_not_there_and_reports_the_others_status(
    store: DynamoTaskRepository,
) -> None:
    tasks = [new_task(f"k{seq}", seq=seq) for seq in range(60)]  # three BatchExecuteStatement calls
    assert store.create_pending(tasks[7]) is None
    assert store.create_rejected(tasks[33], {"code": "invalidLine", "message": "m"}) is None
    store.mark_failed(tasks[7].task_uuid, {"code": "x", "message": "m"})
    statuses = store.create_many([(task, None) for task in tasks])
    assert statuses == [
        TaskStatus.FAILED if seq == 7 else TaskStatus.REJECTED if seq == 33 else None for seq in range(60)
    ]
    assert item(store, tasks[7].task_uuid)["status"] == "FAILED"  # never overwritten
    assert item(store, tasks[59].task_uuid)["status"] == "PENDING"
    assert store.create_many([(task, None) for task in tasks[:3]]) == [TaskStatus.PENDING] * 3


@pytest.mark.parametrize("earlier_version", [False, True], ids=["pending", "submitted-row"])
def test_single_result_completes_and_duplicate_is_ignored(
    store: DynamoTaskRepository, earlier_version: bool
) -> None:
    task = new_task()
    store.create_pending(task)
    if earlier_version:
        submitted_by_an_earlier_version(store, task.task_uuid)
    assert store.store_result(result(task)) is StoreOutcome.COMPLETED
    assert store.store_result(result(task)) is StoreOutcome.DUPLICATE
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert view.status == TaskStatus.COMPLETED
    assert [r["text"] for r in view.results] == ["hello"]
    assert "openShard" not in item(store, task.task_uuid)


def test_three_results_complete_only_after_the_third(store: DynamoTaskRepository) -> None:
    task = new_task(number_results=3)
    store.create_pending(task)
    outcomes = [store.store_result(result(task, f"text {i}", seed=i, slot=i)) for i in range(3)]
    assert outcomes == [StoreOutcome.STORED, StoreOutcome.STORED, StoreOutcome.COMPLETED]
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert view.result_count == 3
    assert len(view.results) == 3


def test_a_completed_task_is_not_failed_afterwards(store: DynamoTaskRepository) -> None:
    task = new_task()
    store.create_pending(task)
    assert store.store_result(result(task)) is StoreOutcome.COMPLETED
    assert store.mark_failed(task.task_uuid, {"code": "late"}) is False
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert view.status == TaskStatus.COMPLETED


def test_failed_and_rejected_are_final(store: DynamoTaskRepository) -> None:
    task = new_task()
    store.create_pending(task)
    assert store.mark_failed(task.task_uuid, {"code": "timeoutProvider", "message": "slow"})
    assert store.mark_rejected(task.task_uuid, {"code": "x"}) is False
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert view.status == TaskStatus.FAILED
    assert view.error == {"code": "timeoutProvider", "message": "slow"}


def test_large_result_goes_to_s3_and_reads_back(store: DynamoTaskRepository, aws: dict[str, Any]) -> None:
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


def test_result_for_unknown_task_is_kept(store: DynamoTaskRepository) -> None:
    orphan = new_task("never-created")
    assert store.store_result(result(orphan)) is StoreOutcome.COMPLETED
    view = store.get_task(orphan.task_uuid)
    assert view is not None
    assert view.results[0]["text"] == "hello"


def test_open_tasks_come_from_open_tallies_and_source_order(store: DynamoTaskRepository) -> None:
    """A task is listed as maybe open until its final is recorded in its tally; a tally whose lines are
    all recorded leaves the index (no task item is in it)."""
    source = "s3://b/k#e"
    tasks = [new_task(f"k{i}", seq=i, source=source) for i in (2, 0, 1, 150)]
    for task in tasks:
        store.create_pending(task)
    assert set(store.open_tasks_since_before(cutoff_epoch=2**31)) == {t.task_uuid for t in tasks}
    assert set(store.open_tasks_since_before(cutoff_epoch=0)) == set()
    jobs = DynamoJobRepository(store.table_name, dynamodb=store.dynamodb)
    store.store_result(result(tasks[0]))
    jobs.record_finals([FinalLine(tasks[0].task_uuid, source, 2)])
    assert set(store.open_tasks_since_before(cutoff_epoch=2**31)) == {t.task_uuid for t in tasks[1:]}
    for task in tasks[1:]:
        store.store_result(result(task))
    jobs.record_finals([FinalLine(t.task_uuid, source, t.source_seq) for t in tasks[1:]])
    assert list(store.open_tasks_since_before(cutoff_epoch=2**31)) == []
    index = store.dynamodb.scan(TableName=store.table_name, IndexName="OpenTasks")["Items"]
    assert [item["pk"]["S"] for item in index if source in item["pk"]["S"]] == []
    assert all("openShard" not in item(store, t.task_uuid) for t in tasks)
    assert [v.source_seq for v in store.tasks_of_source(source)] == [0, 1, 2, 150]


def line_task(source: str, seq: int, key: str | None = None) -> NewTask:
    """A task as the submitter makes it: keyed by its line unless the caller gave it a key of its own."""
    key = key or line_key(source, seq)
    return NewTask(str(task_uuid_for(key)), key, source, seq, 1)


def by_source(store: DynamoTaskRepository, source: str) -> list[tuple[str, int]]:
    """BySource's entries of a source: their pk and sourceSeq, in index order."""
    answer = store.dynamodb.query(
        TableName=store.table_name,
        IndexName="BySource",
        KeyConditionExpression="sourceId = :v",
        ExpressionAttributeValues={":v": {"S": source}},
    )
    return [(entry["pk"]["S"], int(entry["sourceSeq"]["N"])) for entry in answer["Items"]]


def test_a_task_its_line_leads_to_has_no_index_entry_and_is_found_through_its_tally(
    store: DynamoTaskRepository,
) -> None:
    """One write unit a task less: a file's rows are in no index; BySource lists the file's tallies, and
    only the tasks whose taskUUID does not follow from their line (an SQS spec's `id`)."""
    file, message = "s3://in/big.jsonl#e", "sqs:m"
    lines = [line_task(file, seq) for seq in (250, 1, 2, 99, 100)]
    by_id = line_task(message, 2, key="id:mine")
    by_place = line_task(message, 1)
    store.create_many([(task, None) for task in lines])
    store.create_many([(by_id, None), (by_place, None)])

    assert {"sourceLine", "sourceSeq"} & set(item(store, lines[0].task_uuid)) == {"sourceLine"}
    assert {"sourceLine", "sourceSeq"} & set(item(store, by_id.task_uuid)) == {"sourceSeq"}
    assert sorted(by_source(store, file)) == [(f"TALLY#{file}#{n}", -1 - n) for n in (0, 1, 2)]
    assert sorted(by_source(store, message)) == [(f"TALLY#{message}#0", -1), (f"TASK#{by_id.task_uuid}", 2)]

    in_order = sorted(lines, key=lambda task: task.source_seq)
    assert store.task_uuids_of_source(file) == [task.task_uuid for task in in_order]
    assert store.task_uuids_of_source(message) == [by_place.task_uuid, by_id.task_uuid]
    assert [task.source_seq for task in store.tasks_of_source(file)] == [1, 2, 99, 100, 250]
    everything = {task.task_uuid for task in [*lines, by_id, by_place]}
    assert set(store.open_tasks_since_before(cutoff_epoch=2**31, limit=100)) == everything
    assert store.source_has_tasks(file)
    assert not store.source_has_tasks("s3://in/other.jsonl#e")


def test_rows_written_before_lines_led_to_tasks_are_still_found_and_only_once(
    store: DynamoTaskRepository,
) -> None:
    """Rows and tallies of the earlier layout (every row in BySource, no tally there) next to new ones."""
    file = "s3://in/old.jsonl#e"
    old, new = line_task(file, 1), line_task(file, 2)
    store.create_pending(old)
    store.dynamodb.update_item(  # the row and its tally as earlier versions wrote them
        TableName=store.table_name,
        Key=task_key(old.task_uuid),
        UpdateExpression="SET sourceSeq = sourceLine REMOVE sourceLine",
    )
    store.dynamodb.update_item(
        TableName=store.table_name, Key=tally_key(file, 0), UpdateExpression="REMOVE sourceId, sourceSeq"
    )
    assert by_source(store, file) == [(f"TASK#{old.task_uuid}", 1)]
    assert store.task_uuids_of_source(file) == [old.task_uuid]
    assert list(store.open_tasks_since_before(cutoff_epoch=2**31)) == [old.task_uuid]

    store.create_pending(new)
    assert store.task_uuids_of_source(file) == [old.task_uuid, new.task_uuid]
    assert list(store.open_tasks_since_before(cutoff_epoch=2**31)) == [old.task_uuid, new.task_uuid]
    assert [task.source_seq for task in store.tasks_of_source(file)] == [1, 2]


def test_a_line_whose_row_was_never_written_names_a_task_that_is_not_read(
    store: DynamoTaskRepository,
) -> None:
    """A crash between a tally's write and its rows' leaves a line with no row: listed, read as nothing."""
    file = "s3://in/crash.jsonl#e"
    written, lost = line_task(file, 1), line_task(file, 2)
    store.create_pending(written)
    store.dynamodb.update_item(  # the tally lists line 2; its row is never written
        TableName=store.table_name,
        Key=tally_key(file, 0),
        UpdateExpression="ADD #lines :two",
        ExpressionAttributeNames={"#lines": "lines"},
        ExpressionAttributeValues={":two": {"NS": ["2"]}},
    )
    assert store.task_uuids_of_source(file) == [written.task_uuid, lost.task_uuid]
    assert [task.task_uuid for task in store.tasks_of_source(file)] == [written.task_uuid]
    assert [task.task_uuid for task in store.tasks_in_order(store.task_uuids_of_source(file))] == [
        written.task_uuid
    ]


def test_a_tally_expires_no_sooner_than_the_last_row_it_lists(store: DynamoTaskRepository) -> None:
    """Rows are found through their tally, so under TTL it must not go before them: a row written later
    (a redelivery, a continuation) moves the tally's expiry with it."""
    file = "s3://in/ttl.jsonl#e"
    # Each row expires later than the one before, as rows written later do (a longer retention stands in
    # for the time between them).
    for seq, days in ((1, 30), (2, 60), (3, 90)):
        writer = DynamoTaskRepository(store.table_name, retention_days=days, dynamodb=store.dynamodb)
        writer.create_pending(line_task(file, seq))
    rows = [item(store, line_task(file, seq).task_uuid)["expiresAt"] for seq in (1, 2, 3)]
    tally = store.dynamodb.get_item(TableName=store.table_name, Key=tally_key(file, 0), ConsistentRead=True)
    assert int(tally["Item"]["expiresAt"]["N"]) >= max(rows) > min(rows)


def test_unknown_result_fields_are_kept(store: DynamoTaskRepository) -> None:
    task = new_task()
    store.create_pending(task)
    store.store_result(
        InferenceResult.model_validate({"taskUUID": task.task_uuid, "text": "t", "newField": {"a": 1.5}})
    )
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert view.results[0]["newField"] == {"a": 1.5}


def _calls(store: DynamoTaskRepository) -> list[str]:
    """The DynamoDB operations `store` makes from now on, in order."""
    seen: list[str] = []
    store.dynamodb.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: seen.append(model.name), unique_id="count-calls"
    )
    return seen


def test_the_usual_completion_is_one_update_and_leaves_no_marker(store: DynamoTaskRepository) -> None:
    task = new_task()
    store.create_pending(task)
    assert item(store, task.task_uuid)[SOLE_RESULT_DUE] == 0  # due for the first attempt
    calls = _calls(store)
    assert store.store_result(result(task)) is StoreOutcome.COMPLETED
    assert calls == ["UpdateItem"]
    assert SOLE_RESULT_DUE not in item(store, task.task_uuid)


def test_no_marker_where_more_than_one_result_is_wanted_or_the_task_is_final(
    store: DynamoTaskRepository,
) -> None:
    multi, failed = new_task("multi", number_results=2), new_task("failed")
    store.create_pending(multi)
    store.create_pending(failed)
    store.mark_failed(failed.task_uuid, {"code": "boom"})
    for task in (multi, failed):
        assert SOLE_RESULT_DUE not in item(store, task.task_uuid)
    # A late result for a FAILED task is kept, and the task stays FAILED.
    assert store.store_result(result(failed)) is StoreOutcome.STORED
    view = store.get_task(failed.task_uuid)
    assert view is not None
    assert (view.status, len(view.results)) == (TaskStatus.FAILED, 1)


def test_a_row_without_the_marker_still_completes_once(
    store: DynamoTaskRepository, aws: dict[str, Any]
) -> None:
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
    assert store.store_result(result(task, "another", slot=1)) is StoreOutcome.STORED
    view = store.get_task(task.task_uuid)
    assert view is not None
    assert (view.status, view.result_count) == (TaskStatus.COMPLETED, 2)


def test_an_orphan_completes_once_and_a_second_result_does_not_complete_it_again(
    store: DynamoTaskRepository,
) -> None:
    orphan = new_task("orphan")
    assert store.store_result(result(orphan)) is StoreOutcome.COMPLETED
    assert store.store_result(result(orphan, "second", slot=1)) is StoreOutcome.STORED
    view = store.get_task(orphan.task_uuid)
    assert view is not None
    assert (view.status, view.result_count, len(view.results)) == (TaskStatus.COMPLETED, 2, 2)
    assert SOLE_RESULT_DUE not in item(store, orphan.task_uuid)
    assert "openShard" not in item(store, orphan.task_uuid)


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
def test_webhook_integers_beyond_dynamodb_are_kept_as_text_not_answered_5xx(
    store: DynamoTaskRepository, extra: dict[str, Any], stored: tuple[str, Any]
) -> None:
    # JSON allows any integer; DynamoDB holds 38 digits. A 5xx would make Runware redeliver it forever.
    task_uuid = str(task_uuid_for("webhook-task"))
    store.create_pending(NewTask(task_uuid, "webhook-task", "src", 0, number_results=2))
    receiver = WebhookReceiver(store, lambda: ["secret"])
    body = {"taskType": "textInference", "taskUUID": task_uuid, "text": "x", "finishReason": "stop", **extra}
    reply, _ = receiver.receive(json.dumps({"data": [body]}), token_for("secret", task_uuid))
    assert reply.status == 200
    view = store.get_task(task_uuid)
    assert view is not None
    name, value = stored
    assert view.results[0][name] == value


def test_a_batch_over_many_tallies_of_a_file_writes_its_job_once_per_32_tallies(
    store: DynamoTaskRepository,
) -> None:
    jobs = DynamoJobRepository(store.table_name, dynamodb=store.dynamodb)
    source = "s3://b/many.jsonl#e1"
    # 40 tallies, two lines each, and a second attempt of line 0 (its tally then has three marks).
    lines = [FinalLine(str(task_uuid_for(f"many:{seq}")), source, seq) for seq in range(0, 4000, 50)]
    lines.append(FinalLine(lines[0].task_uuid, source, 0, attempt=1))
    calls = _calls(store)
    assert sorted(jobs.record_finals(lines), key=lambda line: line.mark) == sorted(
        lines, key=lambda line: line.mark
    )
    assert calls.count("TransactWriteItems") == 2  # 32 tallies with the job, then the other 8 with it
    progress = jobs.get(source)
    assert progress is not None
    assert progress.finals == 81
    # The same batch again (a redelivered stream batch): nothing recorded, nothing counted twice.
    assert jobs.record_finals(lines) == []
    # Half of it new: only that half is recorded and counted.
    more = [FinalLine(str(task_uuid_for(f"more:{seq}")), source, seq) for seq in range(25, 4000, 50)]
    assert len(jobs.record_finals([*lines[:40], *more])) == len(more)
    progress = jobs.get(source)
    assert progress is not None
    assert progress.finals == 81 + len(more)


def test_write_groups_put_a_tally_once_in_each_write() -> None:
    from runrelay.adapters.dynamodb.jobs import _write_groups

    source = "s3://b/k#e"
    # Tally 0 has 150 marks (lines with several attempts), tally 1 has one: two writes, each tally at most
    # once in each (a transaction changes an item once).
    busy = {mark: FinalLine(f"t{mark}", source, mark % 100, mark // 100) for mark in range(150)}
    groups = _write_groups({0: busy, 1: {0: FinalLine("u", source, 100)}})
    assert [sorted(group) for group in groups] == [[0, 1], [0]]
    assert [len(group[0]) for group in groups] == [100, 50]
    # 70 tallies of one line: writes of 32, 32 and 6 tallies.
    many = _write_groups({tally: {0: FinalLine("x", source, tally * 100)} for tally in range(70)})
    assert [len(group) for group in many] == [32, 32, 6]


def test_an_error_too_large_for_an_item_is_stored_bounded(store: DynamoTaskRepository) -> None:
    # Unbounded, each of these writes failed with DynamoDB's item-size error on every try: a webhook was
    # answered 500 for ever, a file's chunk went to the dead-letter queue.
    huge = {"code": "providerError", "message": "m" * 500_000, "parameter": "p"}
    failed, rejected = new_task("huge-failed"), new_task("huge-rejected")
    store.create_pending(failed)
    assert store.mark_failed(failed.task_uuid, huge)
    assert store.create_rejected(rejected, huge) is None
    for task in (failed, rejected):
        error = item(store, task.task_uuid)["error"]
        assert error["code"] == "providerError"
        assert error["parameter"] == "p"
        assert error["message"].startswith("mmm")
        assert error["message"].endswith("(500000 characters in all)")


def test_a_webhook_error_too_large_for_an_item_fails_the_task_not_the_webhook(
    store: DynamoTaskRepository,
) -> None:
    # A 5xx would make Runware deliver the same error again until it gave up; the task would stay open.
    task_uuid = str(task_uuid_for("webhook-huge-error"))
    store.create_pending(NewTask(task_uuid, "webhook-huge-error", "src", 0))
    receiver = WebhookReceiver(store, lambda: ["secret"])
    error = {"taskUUID": task_uuid, "code": "providerError", "message": "e" * 600_000}
    reply, _ = receiver.receive(json.dumps({"errors": [error]}), token_for("secret", task_uuid))
    assert reply.status == 200
    view = store.get_task(task_uuid)
    assert view is not None
    assert view.status == TaskStatus.FAILED
    assert view.error is not None
    assert view.error["message"].endswith("(600000 characters in all)")


def test_an_sqs_spec_that_fills_its_room_still_leaves_room_for_every_result(
    store: DynamoTaskRepository,
) -> None:
    # The submitter refuses an SQS spec over `spec_room` (specTooLarge): at the limit, its row must still
    # take all its results inline, each just under INLINE_RESULT_LIMIT, within DynamoDB's item size.
    from runrelay.inputs import TaskSpec
    from runrelay.result_payloads import encoded_result, spec_room

    metadata = {"m": "k" * 4_000}
    spec = TaskSpec(prompt="p", numberResults=4, metadata=metadata).model_dump(mode="json", exclude_none=True)
    spec["prompt"] = "p" * (spec_room(4) - len(json.dumps(spec)) + 1)
    assert len(json.dumps(spec)) == spec_room(4)
    task = NewTask(str(task_uuid_for("sqs-full")), "sqs-full", "sqs:m", 1, 4, metadata=metadata, spec=spec)
    store.create_pending(task)
    for slot in range(4):
        text = "r" * (INLINE_RESULT_LIMIT - 400)
        slot_result = result(task, text, slot=slot)
        assert len(encoded_result(slot_result.as_document())) < INLINE_RESULT_LIMIT  # stays inline
        assert store.store_result(slot_result) in (StoreOutcome.STORED, StoreOutcome.COMPLETED)
    stored = item(store, task.task_uuid)
    assert stored["status"] == "COMPLETED"
    assert all("text" in entry for entry in stored["results"].values())
