"""Values DynamoDB refuses (found by the webhook fuzz) are stored as text, never failing the write."""

from __future__ import annotations

import json
from typing import Any

from runrelay.adapters.dynamodb.codec import MAX_STORED_DEPTH
from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.adapters.s3 import S3PayloadStore
from runrelay.contract import InferenceResult
from runrelay.domain.tasks import NewTask, StoreOutcome, TaskStatus
from runrelay.task_ids import task_uuid_for


def store_for(stack: Any, clients: Any) -> DynamoTaskRepository:
    payloads = S3PayloadStore(stack.bucket_name, s3=clients.s3)
    return DynamoTaskRepository(stack.table_name, payloads=payloads, dynamodb=clients.dynamodb)


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"a": value}
    return value


HOSTILE_FIELDS = {
    "huge": 1e300,
    "tiny": 5e-324,
    "longInteger": 10**40,
    "notANumber": float("nan"),
    "infinite": float("inf"),
    "loneSurrogate": "a\ud800b",
    "emptyKey": {"": 1},
    "deep": _deep(40),
}


def test_a_result_with_unstorable_fields_is_stored_once_with_them_as_text(
    provisioned_stack: Any, aws_clients: Any
) -> None:
    store = store_for(provisioned_stack, aws_clients)
    task_uuid = str(task_uuid_for("unstorable"))
    store.create_pending(NewTask(task_uuid, "unstorable", "src", 0))
    result = InferenceResult.model_validate({"taskUUID": task_uuid, "text": "ok\ud800", **HOSTILE_FIELDS})

    assert store.store_result(result) == StoreOutcome.COMPLETED
    assert store.store_result(result) == StoreOutcome.DUPLICATE
    view = store.get_task(task_uuid)
    assert view is not None
    assert view.status == TaskStatus.COMPLETED
    [stored] = view.results
    assert stored["huge"] == "1E+300"
    assert stored["longInteger"] == str(10**40)
    assert stored["notANumber"] is None  # pydantic's JSON mode writes NaN/Infinity as null
    assert stored["loneSurrogate"] == "a?b"
    assert stored["emptyKey"] == {"(empty)": 1}
    kept_as_text = stored["deep"]
    for _ in range(MAX_STORED_DEPTH - 1):
        kept_as_text = kept_as_text["a"]
    assert json.loads(kept_as_text) == _deep(40 - MAX_STORED_DEPTH + 1)


def test_an_error_with_an_unstorable_number_still_fails_the_task(
    provisioned_stack: Any, aws_clients: Any
) -> None:
    store = store_for(provisioned_stack, aws_clients)
    task_uuid = str(task_uuid_for("unstorable-error"))
    store.create_pending(NewTask(task_uuid, "unstorable-error", "src", 0))
    assert store.mark_failed(task_uuid, {"code": "boom", "detail": 1e200, "odd": float("nan")})
    view = store.get_task(task_uuid)
    assert view is not None
    assert view.status == TaskStatus.FAILED
    assert view.error == {"code": "boom", "detail": "1E+200", "odd": "NaN"}
