"""The table's stream records read as domain changes (`adapters.dynamodb.stream`), and the schema's
items read as records: what the results consumer gets from Lambda, including DynamoDB Local's quirks."""

from __future__ import annotations

from typing import Any

from runrelay.adapters.dynamodb.schema import job_key, task_key, task_record
from runrelay.adapters.dynamodb.stream import repaired_image, table_change, table_changes
from runrelay.domain.jobs import JobBecameComplete
from runrelay.domain.tasks import TaskBecameFinal, TaskStatus

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SOURCE = "s3://in/batch.jsonl#etag"


def task_image(status: str, *, results: Any = None, **extra: Any) -> dict[str, Any]:
    image: dict[str, Any] = {
        **task_key(UUID),
        "taskUUID": {"S": UUID},
        "status": {"S": status},
        "sourceId": {"S": SOURCE},
        "sourceSeq": {"N": "3"},
        "idempotencyKey": {"S": f"{SOURCE}:3"},
        "numberResults": {"N": "1"},
        "resultCount": {"N": "1" if results else "0"},
        "results": results if results is not None else {"M": {}},
        "createdAt": {"N": "1700000000.5"},
        "updatedAt": {"N": "1700000010.25"},
        **extra,
    }
    return image


def job_image(expected: int | None, finals: int, **extra: Any) -> dict[str, Any]:
    image: dict[str, Any] = {**job_key(SOURCE), "finals": {"N": str(finals)}, **extra}
    if expected is not None:
        image.update(
            expected={"N": str(expected)},
            inputBucket={"S": "in"},
            inputKey={"S": "batch.jsonl"},
            inputEtag={"S": "etag"},
        )
    return image


def record(
    name: str, keys: dict[str, Any], new: dict[str, Any] | None, old: dict[str, Any] | None, seq: str
) -> dict[str, Any]:
    change: dict[str, Any] = {"Keys": keys, "SequenceNumber": seq, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if new is not None:
        change["NewImage"] = new
    if old is not None:
        change["OldImage"] = old
    return {"eventID": seq, "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": change}


RESULT = {
    "M": {
        "text": {"S": "hello"},
        "seed": {"N": "7"},
        "cost": {"N": "0.0015"},
        "receivedAt": {"N": "1700000010.25"},
        "usage": {"M": {"promptTokens": {"N": "3"}, "completionTokens": {"N": "5"}}},
    }
}


def test_a_task_completed_by_a_webhook_is_one_change_with_its_record() -> None:
    new = task_image(
        "COMPLETED",
        results={"M": {"rid1": RESULT}},
        submittedAt={"N": "1700000001"},
        completedAt={"N": "1700000010.25"},
        callerId={"S": "caller"},
    )
    old = task_image("SUBMITTED", submittedAt={"N": "1700000001"}, openShard={"S": "OPEN#1"})
    [change] = table_changes([record("MODIFY", task_key(UUID), new, old, "100")])
    assert isinstance(change, TaskBecameFinal)
    assert change.sequence_number == "100"
    task = change.task
    assert (task.task_uuid, task.status, task.source_id, task.source_seq) == (
        UUID,
        TaskStatus.COMPLETED,
        SOURCE,
        3,
    )
    assert task.caller_id == "caller"
    assert task.results == [
        {
            "text": "hello",
            "seed": 7,
            "cost": 0.0015,
            "receivedAt": 1700000010.25,
            "usage": {"promptTokens": 3, "completionTokens": 5},
        }
    ]
    assert (task.started_at, task.completed_at) == (1700000001.0, 1700000010.25)


def test_a_task_inserted_as_rejected_is_final_at_once() -> None:
    new = task_image("REJECTED", error={"M": {"code": {"S": "bad"}, "message": {"S": "line 3: no"}}})
    [change] = table_changes([record("INSERT", task_key(UUID), new, None, "7")])
    assert isinstance(change, TaskBecameFinal)
    assert change.task.status == TaskStatus.REJECTED
    assert change.task.error == {"code": "bad", "message": "line 3: no"}
    assert change.task.started_at == 1700000000.5  # never submitted: from its creation


def test_writes_that_make_no_task_final_are_no_change() -> None:
    pending, submitted = task_image("PENDING"), task_image("SUBMITTED")
    completed = task_image("COMPLETED", results={"M": {"rid1": RESULT}})
    late = task_image("COMPLETED", results={"M": {"rid1": RESULT, "rid2": RESULT}})
    failed = task_image("FAILED")
    records = [
        record("INSERT", task_key(UUID), pending, None, "1"),  # created
        record("MODIFY", task_key(UUID), submitted, pending, "2"),  # submitted
        record("MODIFY", task_key(UUID), late, completed, "3"),  # a late result of a final task
        record("MODIFY", task_key(UUID), task_image("FAILED", results={"M": {"r": RESULT}}), failed, "4"),
        record("REMOVE", task_key(UUID), None, completed, "5"),  # expired under TTL
        record(
            "INSERT",
            {"pk": {"S": f"TALLY#{SOURCE}#0"}, "sk": {"S": "TALLY"}},
            {"pk": {"S": f"TALLY#{SOURCE}#0"}, "sk": {"S": "TALLY"}, "marks": {"NS": ["16"]}},
            None,
            "6",
        ),  # a tally of final tasks
    ]
    assert table_changes(records) == []


def test_a_job_completes_in_exactly_one_record() -> None:
    key = job_key(SOURCE)
    records = [
        record("INSERT", key, job_image(None, 1), None, "1"),  # counted, total unknown
        record("MODIFY", key, job_image(3, 1), job_image(None, 1), "2"),  # total recorded
        record("MODIFY", key, job_image(3, 2), job_image(3, 1), "3"),
        record("MODIFY", key, job_image(3, 3), job_image(3, 2), "4"),  # the completing count
        record(
            "MODIFY",
            key,
            job_image(3, 3, resultsWrittenAt={"N": "1"}, resultsLocation={"S": "s3://in/results/b"}),
            job_image(3, 3),
            "5",
        ),  # our own marker on a complete job
    ]
    [change] = table_changes(records)
    assert isinstance(change, JobBecameComplete)
    assert change.sequence_number == "4"
    job = change.job
    assert (job.source_id, job.expected, job.finals, job.bucket, job.key, job.etag) == (
        SOURCE,
        3,
        3,
        "in",
        "batch.jsonl",
        "etag",
    )
    assert job.complete
    assert not job.announced


def test_a_job_whose_total_comes_last_completes_on_that_record() -> None:
    key = job_key(SOURCE)
    change = table_change(record("MODIFY", key, job_image(2, 2), job_image(None, 2), "9"))
    assert isinstance(change, JobBecameComplete)
    assert change.job.expected == 2


def test_dynamodb_locals_empty_maps_are_repaired() -> None:
    """DynamoDB Local writes an empty map as `{}` in stream images (DynamoDB writes {"M": {}})."""
    result = {"M": {**RESULT["M"], "usage": {}, "extra": {"L": [{}, {"S": "x"}]}}}
    new = task_image("COMPLETED", results={"M": {"rid1": result}}, metadata={})
    old = task_image("SUBMITTED", results={})
    [change] = table_changes([record("MODIFY", task_key(UUID), new, old, "11")])
    assert isinstance(change, TaskBecameFinal)
    [stored] = change.task.results
    assert stored["usage"] == {}
    assert stored["extra"] == [{}, "x"]
    assert change.task.metadata is None
    assert repaired_image({"results": {}, "n": {"N": "1"}}) == {"results": {"M": {}}, "n": {"N": "1"}}


def test_a_record_read_from_an_item_lists_results_oldest_first() -> None:
    item = {
        "pk": f"TASK#{UUID}",
        "status": "COMPLETED",
        "sourceSeq": 7,
        "results": {
            "r2": {"payloadRef": "s3://b/completions/u/r2.json", "receivedAt": 2, "cost": 0.5},
            "r1": {"text": "hi", "receivedAt": 1, "cost": 0.25},
            "r0": {"text": "same instant, higher seed", "receivedAt": 2, "seed": 1},
        },
    }
    task = task_record(item)
    assert task.task_uuid == UUID  # from the key when the attribute is missing
    assert [entry.get("text") for entry in task.results] == ["hi", None, "same instant, higher seed"]
    assert (task.source_seq, task.result_count, task.number_results) == (7, 0, 1)


def test_a_seed_kept_as_text_does_not_break_the_order_of_one_instants_results() -> None:
    """A seed beyond DynamoDB's 38 digits is stored as text; comparing it with a number raised TypeError,
    which made the task unreadable (get_task, the results file) and its stream record a poison pill."""
    results = {
        "r1": {"text": "huge", "receivedAt": 5, "seed": str(10**400)},
        "r2": {"text": "small", "receivedAt": 5, "seed": 2},
        "r3": {"text": "older", "receivedAt": 4, "seed": 9},
    }
    task = task_record({"pk": f"TASK#{UUID}", "status": "COMPLETED", "results": results})
    assert [entry["text"] for entry in task.results] == ["older", "huge", "small"]
    new = task_image(
        "COMPLETED",
        results={
            "M": {
                "r1": {"M": {"text": {"S": "huge"}, "receivedAt": {"N": "5"}, "seed": {"S": str(10**400)}}},
                "r2": {"M": {"text": {"S": "small"}, "receivedAt": {"N": "5"}, "seed": {"N": "2"}}},
            }
        },
    )
    [change] = table_changes([record("MODIFY", task_key(UUID), new, task_image("SUBMITTED"), "12")])
    assert isinstance(change, TaskBecameFinal)
    assert [entry["text"] for entry in change.task.results] == ["huge", "small"]
