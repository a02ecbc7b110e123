"""Job counting, results files and events (moto in-process): each happens once per task / job."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from runrelay.contract import InferenceResult
from runrelay.deadline import Deadline
from runrelay.events import EventPublisher
from runrelay.job_store import JobStore, TotalMismatch, job_key
from runrelay.results_file import ResultsWriter, result_line, results_key
from runrelay.results_logic import ResultsService
from runrelay.submit_logic import SubmitConfig, SubmitService
from runrelay.task_ids import task_uuid_for
from runrelay.task_store import NewTask, TaskStore, task_key

from .conftest import BUCKET, TABLE
from .test_submit_logic import FakeRunware

SOURCE = f"s3://{BUCKET}/incoming/batch.jsonl#etag1"
BUS = "unit-bus"


class FlakyPublisher(EventPublisher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures_left = 0

    def publish(self, events: Any) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("EventBridge unavailable")
        super().publish(events)


class Harness:
    """The service on moto, a rule copying every event to a queue, and stream records made by hand."""

    def __init__(self, aws: dict[str, Any], store: TaskStore) -> None:
        self.aws = aws
        self.store = store
        self.ddb = aws["dynamodb"]
        self.s3 = aws["s3"]
        events = boto3.client("events", region_name="us-east-1")
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        events.create_event_bus(Name=BUS)
        self.queue_url = self.sqs.create_queue(QueueName="tap")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(Name="tap", EventBusName=BUS, EventPattern=json.dumps({"source": ["runrelay"]}))
        events.put_targets(Rule="tap", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
        self.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        self.jobs = JobStore(TABLE, dynamodb=self.ddb)
        self.publisher = FlakyPublisher(BUS, events_client=events)
        self.service = ResultsService(
            self.jobs, ResultsWriter(TABLE, dynamodb=self.ddb, s3=self.s3), self.publisher
        )
        self._sequence = 0

    def raw(self, key: dict[str, Any]) -> dict[str, Any] | None:
        return self.ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item")

    def change(self, key: dict[str, Any], write: Callable[[], object]) -> dict[str, Any]:
        """Run `write` and return the stream record (NEW_AND_OLD_IMAGES) it would make."""
        old = self.raw(key)
        write()
        new = self.raw(key)
        self._sequence += 1
        change: dict[str, Any] = {"Keys": key, "SequenceNumber": f"{self._sequence:021d}"}
        if old:
            change["OldImage"] = old
        if new:
            change["NewImage"] = new
        return {"eventName": "MODIFY" if old else "INSERT", "dynamodb": change}

    def job_change(self, write: Callable[[], object]) -> dict[str, Any]:
        return self.change(job_key(SOURCE), write)

    def events(self) -> list[dict[str, Any]]:
        out = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                out.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return out

    def results_versions(self) -> list[dict[str, Any]]:
        key = results_key("incoming/batch.jsonl")
        answer = self.s3.list_object_versions(Bucket=BUCKET, Prefix=key)
        return [v for v in answer.get("Versions", []) if v["Key"] == key]


@pytest.fixture
def harness(aws: dict[str, Any], store: TaskStore) -> Harness:
    return Harness(aws, store)


def _task(seq: int, number_results: int = 1, caller_id: str | None = None) -> NewTask:
    uuid = str(task_uuid_for(f"{SOURCE}:{seq}"))
    return NewTask(uuid, f"{SOURCE}:{seq}", SOURCE, seq, number_results=number_results, caller_id=caller_id)


def _result(task: NewTask, n: int) -> InferenceResult:
    return InferenceResult.model_validate(
        {
            "taskType": "textInference",
            "taskUUID": task.task_uuid,
            "text": f"answer {n} of line {task.source_seq}",
            "finishReason": "stop",
            "seed": n,
            "cost": 0.001,
            "usage": {"promptTokens": 3, "completionTokens": 5, "totalTokens": 8},
        }
    )


def _final_records(harness: Harness) -> tuple[list[NewTask], list[dict[str, Any]]]:
    """Three tasks of one file made final the ways the stack does it; their final stream records."""
    store = harness.store
    two_results, rejected, failed = _task(1, 2, "a"), _task(3, caller_id="c"), _task(4)
    records = []
    store.create_pending(two_results)
    store.mark_submitted(two_results.task_uuid)
    store.store_result(_result(two_results, 1))
    records.append(
        harness.change(task_key(two_results.task_uuid), lambda: store.store_result(_result(two_results, 2)))
    )
    records.append(
        harness.change(
            task_key(rejected.task_uuid),
            lambda: store.create_rejected(rejected, {"code": "bad", "message": "line 3: no"}),
        )
    )
    store.create_pending(failed)
    records.append(
        harness.change(
            task_key(failed.task_uuid),
            lambda: store.mark_failed(failed.task_uuid, {"code": "boom", "message": "x"}),
        )
    )
    return [two_results, rejected, failed], records


def test_a_task_is_counted_once_however_often_it_is_recorded(harness: Harness) -> None:
    task = _task(1)
    harness.store.create_rejected(task, {"code": "bad", "message": "no"})
    outcomes = [harness.jobs.record_final(task.task_uuid, SOURCE) for _ in range(3)]
    assert outcomes == [True, False, False]
    job = harness.jobs.get(SOURCE)
    assert job is not None
    assert (job.finals, job.expected, job.complete) == (1, None, False)


def test_the_total_is_recorded_once_and_a_different_one_is_refused(harness: Harness) -> None:
    harness.jobs.record_total(SOURCE, 3, bucket=BUCKET, key="incoming/batch.jsonl", etag="etag1")
    harness.jobs.record_total(SOURCE, 3, bucket=BUCKET, key="incoming/batch.jsonl", etag="etag1")
    with pytest.raises(TotalMismatch):
        harness.jobs.record_total(SOURCE, 4, bucket=BUCKET, key="incoming/batch.jsonl", etag="etag1")
    job = harness.jobs.get(SOURCE)
    assert job is not None
    assert job.expected == 3


def test_duplicate_deliveries_write_one_file_and_one_event_each(harness: Harness) -> None:
    tasks, finals = _final_records(harness)
    total = harness.job_change(
        lambda: harness.jobs.record_total(SOURCE, 3, bucket=BUCKET, key="incoming/batch.jsonl", etag="etag1")
    )
    assert harness.service.process([total]).jobs_completed == []  # nothing is final yet
    reports = []
    counted = harness.job_change(lambda: reports.append(harness.service.process(finals)))
    counted_report = reports[0]
    for _ in range(2):  # Lambda may deliver any record again
        report = harness.service.process([*finals, counted, total])
        assert report.task_events == 0
        assert (report.prompt_tokens, report.cost_usd) == (0, 0)  # tokens counted once per task
    assert harness.service.process([counted]).jobs_completed == [SOURCE]  # a retried batch

    assert len(harness.results_versions()) == 1
    events = harness.events()
    assert Counter(e["detail-type"] for e in events) == {"TaskCompleted": 3, "JobCompleted": 1}
    job_event = next(e["detail"] for e in events if e["detail-type"] == "JobCompleted")
    assert job_event["counts"] == {"total": 3, "COMPLETED": 1, "REJECTED": 1, "FAILED": 1}
    assert job_event["results"]["key"] == "results/incoming/batch.jsonl"
    body = harness.s3.get_object(Bucket=BUCKET, Key=results_key("incoming/batch.jsonl"))["Body"].read()
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert [(r["line"], r["taskUUID"], r["status"]) for r in rows] == [
        (1, tasks[0].task_uuid, "COMPLETED"),
        (3, tasks[1].task_uuid, "REJECTED"),
        (4, tasks[2].task_uuid, "FAILED"),
    ]
    assert [r["text"] for r in rows[0]["results"]] == ["answer 1 of line 1", "answer 2 of line 1"]
    assert (counted_report.prompt_tokens, counted_report.completion_tokens) == (6, 10)
    assert counted_report.cost_usd == pytest.approx(0.002)
    assert rows[0]["usage"] == {"promptTokens": 6, "completionTokens": 10, "totalTokens": 16}
    assert rows[1]["error"] == {"code": "bad", "message": "line 3: no"}


def test_the_job_completes_when_the_total_comes_last(harness: Harness) -> None:
    _tasks, finals = _final_records(harness)
    counted = harness.job_change(lambda: harness.service.process(finals))
    assert harness.service.process([counted]).jobs_completed == []  # expected unknown yet
    total = harness.job_change(
        lambda: harness.jobs.record_total(SOURCE, 3, bucket=BUCKET, key="incoming/batch.jsonl", etag="etag1")
    )
    assert harness.service.process([counted, total]).jobs_completed == [SOURCE]
    assert len(harness.results_versions()) == 1


def test_a_failed_publish_retries_from_the_first_unsent_record_without_repeats(harness: Harness) -> None:
    _tasks, finals = _final_records(harness)
    harness.publisher.failures_left = 1
    report = harness.service.process(finals)
    assert report.failed_sequence_number == finals[0]["dynamodb"]["SequenceNumber"]
    assert harness.events() == []
    job = harness.jobs.get(SOURCE)
    assert job is None  # nothing counted: the retry will count
    retry = harness.service.process(finals)
    assert retry.failed_sequence_number is None
    assert retry.tasks_counted == 3
    assert len(harness.events()) == 3


def test_a_line_carries_pointers_for_offloaded_results() -> None:
    item = {
        "taskUUID": "u",
        "status": "COMPLETED",
        "sourceSeq": 7,
        "results": {
            "r2": {
                "payloadRef": "s3://b/completions/u/r2.json",
                "payloadBytes": 60000,
                "receivedAt": 2,
                "cost": 0.5,
            },
            "r1": {"text": "hi", "receivedAt": 1, "cost": 0.25, "usage": {"totalTokens": 4}},
        },
    }
    line = result_line(item)
    assert line["results"] == [
        {"text": "hi", "cost": 0.25, "usage": {"totalTokens": 4}},
        {"payloadRef": "s3://b/completions/u/r2.json", "payloadBytes": 60000, "cost": 0.5},
    ]
    assert (line["text"], line["cost"], line["usage"], line["callerId"]) == (
        None,
        0.75,
        {"totalTokens": 4},
        None,
    )


def test_submit_records_the_total_only_at_the_end_of_the_file(store: TaskStore, aws: dict[str, Any]) -> None:
    data = b"".join(json.dumps({"prompt": f"p{i}"}).encode() + b"\n\n" for i in range(25))  # blank lines too
    jobs = JobStore(TABLE, dynamodb=aws["dynamodb"])
    queue: list[str] = []
    svc = SubmitService(
        store,
        FakeRunware(),
        SubmitConfig(
            "https://hooks.example/", "s", max_tasks_per_request=10, continuation_reserve_seconds=3600
        ),
        open_object=lambda ref: io.BytesIO(data[ref.start_byte :]),
        enqueue=queue.append,
        jobs=jobs,
    )
    notification = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "b"},
                    "object": {"key": "big.jsonl", "eTag": "e", "size": len(data)},
                },
            }
        ]
    }
    assert svc.process_record("m", json.dumps(notification), Deadline.after(60)).continued
    assert jobs.get("s3://b/big.jsonl#e") is None  # the count is not known before the end
    while queue:
        svc.process_record("c", queue.pop(0), Deadline.after(60))
    job = jobs.get("s3://b/big.jsonl#e")
    assert job is not None
    assert (job.expected, job.bucket, job.key) == (25, "b", "big.jsonl")


def test_results_keys_mirror_input_keys_one_to_one() -> None:
    inputs = ["incoming/batch.jsonl", "incoming/story.txt", "incoming/story", "incoming/a.json"]
    keys = [results_key(key) for key in inputs]
    assert keys[0] == "results/incoming/batch.jsonl"
    assert len(set(keys)) == len(inputs)
    assert not any(key.startswith("incoming/") for key in keys)
