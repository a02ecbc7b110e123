"""`runrelay redrive results`: stream batches the ResultsFunction gave up are replayed, and exactly the
missing tally marks, TaskCompleted/JobCompleted events and results file appear; a second redrive adds
nothing."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from local.stack.event_tap import EventTap
from runrelay.adapters.dynamodb.jobs import DynamoJobRepository
from runrelay.domain.jobs import FinalLine
from runrelay.domain.tasks import TaskRecord
from runrelay.results_file import results_key
from runrelay_cli import app

from ..conftest import Pipeline


def _depth(pipeline: Pipeline, queue_url: str) -> int:
    attributes = pipeline.clients.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def _line(task: TaskRecord) -> FinalLine:
    return FinalLine(task.task_uuid, task.source_id, task.source_seq, task.attempt)


def _redrive(state_file: Path) -> dict[str, object]:
    answer = CliRunner().invoke(app, ["redrive", "results", "--state-file", str(state_file), "--json"])
    assert answer.exit_code == 0, (answer.output, answer.exception)
    return json.loads(answer.output)


def test_a_results_dlq_redrive_makes_exactly_the_missing_marks_events_and_files(
    pipeline_factory: Callable[..., Pipeline], tmp_path: Path
) -> None:
    state_file = tmp_path / "local-stack.json"
    # ResultsFunction has a bug (every invocation fails) and gives a batch up after one retry.
    pipeline = pipeline_factory(
        handler_overrides={"ResultsFunction": "tests.support.failing_handler.handler"},
        event_source_overrides={"ResultsFunction.TaskChanges": {"MaximumRetryAttempts": 1}},
        state_file=state_file,
    )
    endpoints = pipeline.stack.endpoints
    tap = EventTap(pipeline.clients.sqs, pipeline.clients.events, endpoints.event_bus_name)
    lines = b'{"prompt": "one"}\n{"prompt": "two", "numberResults": 2}\n{"prompt": "three"}\nnot json\n'
    source = pipeline.upload("redrive.jsonl", lines)
    tasks = pipeline.wait_settled({source: 4})[source]
    dlq = endpoints.results_dead_letter_queue_url
    deadline = time.monotonic() + 60
    jobs = DynamoJobRepository(endpoints.table_name, dynamodb=pipeline.clients.dynamodb)
    # Given up: the final tasks' records and then the JOB record's (written once the total is known).
    while time.monotonic() < deadline and _depth(pipeline, dlq) == 0:
        time.sleep(0.5)
    time.sleep(3)  # later records of the same shard reach the DLQ too
    assert _depth(pipeline, dlq) >= 1
    assert jobs.unrecorded([_line(view) for view in tasks]) == [_line(view) for view in tasks]
    assert tap.drain() == []

    first = _redrive(state_file)

    assert first["left"] == []
    assert jobs.unrecorded([_line(view) for view in tasks]) == []
    task_events = [e for e in tap.drain() if e["detail-type"] == "TaskCompleted"]
    assert sorted(e["detail"]["taskUUID"] for e in task_events) == sorted(view.task_uuid for view in tasks)
    # Counting the finals completed the JOB item; its stream record fails in turn and is redriven too.
    while (
        not any(e["detail-type"] == "JobCompleted" for e in tap.drain()) and time.monotonic() < deadline + 60
    ):
        time.sleep(1)
        _redrive(state_file)
    key = results_key(f"{endpoints.input_prefix}redrive.jsonl")
    body = pipeline.clients.s3.get_object(Bucket=endpoints.bucket_name, Key=key)["Body"].read()
    assert len(body.decode().splitlines()) == 4
    assert Counter(e["detail-type"] for e in tap.drain()) == {"TaskCompleted": 4, "JobCompleted": 1}
    assert _depth(pipeline, dlq) == 0

    # The job's own markers (results written, announced) were given up too; replaying them does nothing.
    again = _redrive(state_file)
    assert (again["tasksMadeFinal"], again["jobsCompleted"], again["left"]) == (0, [], [])
    assert Counter(e["detail-type"] for e in tap.drain()) == {"TaskCompleted": 4, "JobCompleted": 1}
