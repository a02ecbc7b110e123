"""The table's real stream on DynamoDB Local, read as domain changes: the same changes the fakes record
for the same writes (tests/support/fakes.py stands in for the stream in the results' unit tests)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from runrelay.adapters.dynamodb.jobs import DynamoJobRepository
from runrelay.adapters.dynamodb.stream import table_changes
from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.domain.jobs import JobBecameComplete
from runrelay.domain.tasks import NewTask, TaskBecameFinal, TaskStatus
from runrelay.ports import JobRepository, TaskRepository
from runrelay.task_ids import task_uuid_for
from runrelay.webhook_results import WebhookResult
from tests.support.fakes import FakeJobRepository, FakeTaskRepository
from tests.support.finals import record_final

SOURCE = "s3://in/stream.jsonl#etag"


def _task(seq: int, number_results: int = 1) -> NewTask:
    key = f"{SOURCE}:{seq}"
    return NewTask(str(task_uuid_for(key)), key, SOURCE, seq, number_results=number_results, metadata={})


def _writes(tasks: TaskRepository, jobs: JobRepository) -> None:
    """A small file's life: rows written, one refused, results in (one duplicated), a failure, a late
    result, every final counted, the total last."""
    one, two, three, four = _task(1), _task(2, number_results=2), _task(3), _task(4)
    tasks.create_many([(one, None), (two, None), (three, {"code": "bad", "message": "no"}), (four, None)])
    for task_uuid, text in ((one.task_uuid, "a"), (one.task_uuid, "a"), (two.task_uuid, "b1")):
        tasks.store_result(WebhookResult.parse({"taskUUID": task_uuid, "text": text, "usage": {}}, task_uuid))
    second = WebhookResult.parse({"taskUUID": two.task_uuid, "text": "b2"}, two.task_uuid)
    tasks.store_result(replace(second, slot=1))
    tasks.mark_failed(four.task_uuid, {"code": "boom", "message": "x"})
    tasks.store_result(WebhookResult.parse({"taskUUID": four.task_uuid, "text": "late"}, four.task_uuid))
    for task in (one, two, three, four):
        record_final(jobs, task.task_uuid, SOURCE, seq=task.source_seq)
    jobs.record_total(SOURCE, 4, bucket="in", key="stream.jsonl", etag="etag")
    jobs.mark_results_written(SOURCE, "s3://in/results/stream.jsonl", {"COMPLETED": 2})


def _stream_records(clients: Any, stream_arn: str) -> list[dict[str, Any]]:
    streams = clients.dynamodbstreams
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    records: list[dict[str, Any]] = []
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            records.extend(answer["Records"])
            if not answer["Records"]:
                break
            iterator = answer.get("NextShardIterator")
    return sorted(records, key=lambda record: int(record["dynamodb"]["SequenceNumber"]))


def _summary(changes: list[Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for change in changes:
        if isinstance(change, TaskBecameFinal):
            task = change.task
            texts = sorted(str(r.get("text")) for r in task.results)
            out.append(
                ("task", task.task_uuid, task.status, task.source_seq, task.result_count, texts, task.error)
            )
        else:
            assert isinstance(change, JobBecameComplete)
            job = change.job
            out.append(("job", job.source_id, job.expected, job.finals, job.results_location))
    return out


def test_the_real_stream_makes_the_changes_the_fakes_record(provisioned_stack: Any, aws_clients: Any) -> None:
    table = provisioned_stack.table_name
    _writes(
        DynamoTaskRepository(table, dynamodb=aws_clients.dynamodb),
        DynamoJobRepository(table, dynamodb=aws_clients.dynamodb),
    )
    stream_arn = provisioned_stack.attribute("TasksTable", "StreamArn")
    changes = table_changes(_stream_records(aws_clients, stream_arn))

    fake_tasks, fake_jobs = FakeTaskRepository(), FakeJobRepository()
    _writes(fake_tasks, fake_jobs)
    recorded: list[TaskBecameFinal | JobBecameComplete] = [*fake_tasks.changes, *fake_jobs.changes]
    fake_changes = sorted(recorded, key=lambda change: change.sequence_number)

    assert _summary(changes) == _summary(fake_changes)
    assert [kind for kind, *_ in _summary(changes)] == ["task", "task", "task", "task", "job"]
    statuses = {row[1]: row[2] for row in _summary(changes) if row[0] == "task"}
    assert sorted(statuses.values()) == sorted(
        [TaskStatus.REJECTED, TaskStatus.COMPLETED, TaskStatus.COMPLETED, TaskStatus.FAILED]
    )
