"""The DynamoDB job repository on DynamoDB Local: real transactions under concurrency count every final
task exactly once, one at a time or a stream batch at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from runrelay.adapters.dynamodb.jobs import DynamoJobRepository
from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.domain.tasks import NewTask
from runrelay.task_ids import task_uuid_for
from tests.support.finals import record_final

SOURCE = "s3://bucket/incoming/many.jsonl#etag"


def test_concurrent_duplicate_finals_are_counted_exactly_once(
    provisioned_stack: Any, aws_clients: Any
) -> None:
    store = DynamoTaskRepository(provisioned_stack.table_name, dynamodb=aws_clients.dynamodb)
    jobs = DynamoJobRepository(provisioned_stack.table_name, dynamodb=aws_clients.dynamodb)
    tasks = [NewTask(str(task_uuid_for(f"{SOURCE}:{i}")), f"{SOURCE}:{i}", SOURCE, i) for i in range(1, 21)]
    for task in tasks:
        store.create_rejected(task, {"code": "bad", "message": "no"})
    jobs.record_total(SOURCE, len(tasks), bucket="bucket", key="incoming/many.jsonl", etag="etag")
    deliveries = tasks * 4  # every final seen four times, all at once
    with ThreadPoolExecutor(16) as pool:
        wins = list(
            pool.map(lambda task: record_final(jobs, task.task_uuid, SOURCE, seq=task.source_seq), deliveries)
        )
    assert wins.count(True) == len(tasks)
    job = jobs.get(SOURCE)
    assert job is not None
    assert (job.finals, job.expected, job.complete) == (len(tasks), len(tasks), True)
