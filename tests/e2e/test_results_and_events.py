"""Results files and EventBridge events on the local stack: written and published exactly once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from local.runware_emulator import FaultConfig
from local.stack.event_tap import EventTap as LocalEventTap
from runrelay.results_file import results_key

from .conftest import Pipeline


class EventTap(LocalEventTap):
    """The stack's bus copied into a fresh SQS queue (moto delivers it)."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(
            pipeline.clients.sqs, pipeline.clients.events, pipeline.stack.endpoints.event_bus_name
        )


def _versions(pipeline: Pipeline, key: str) -> list[dict[str, Any]]:
    answer = pipeline.clients.s3.list_object_versions(Bucket=pipeline.stack.endpoints.bucket_name, Prefix=key)
    return [v for v in answer.get("Versions", []) if v["Key"] == key]


def test_a_file_gets_one_results_file_and_one_event_per_task_and_job(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    pipeline = pipeline_factory(
        emulator={"faults": FaultConfig(webhook_duplicate_rate=1.0), "webhook_shape": "bare"}
    )
    tap = EventTap(pipeline)
    lines = [
        json.dumps({"id": "first", "prompt": "one", "numberResults": 3}),
        "{not json",
        "",  # blank lines are not tasks
        json.dumps({"id": "second", "prompt": "two", "numberResults": 5}),  # over the maximum of 4
        json.dumps({"id": "third", "prompt": "three", "metadata": {"team": "a"}}),
        json.dumps({"prompt": "no id", "numberResults": 2}),
    ]
    source = pipeline.upload("mixed.jsonl", ("\n".join(lines) + "\n").encode())
    pipeline.wait_settled({source: 5})
    key = results_key(f"{pipeline.stack.endpoints.input_prefix}mixed.jsonl")

    tap.wait_for(lambda events: any(e["detail-type"] == "JobCompleted" for e in events))
    assert pipeline.emulator.wait_for_deliveries(20)  # every duplicate webhook has been delivered
    tap.wait_for(lambda events: sum(e["detail-type"] == "TaskCompleted" for e in events) >= 5)

    body = pipeline.clients.s3.get_object(Bucket=pipeline.stack.endpoints.bucket_name, Key=key)["Body"]
    rows = [json.loads(line) for line in body.read().decode().splitlines()]
    assert [(r["line"], r["callerId"], r["status"]) for r in rows] == [
        (1, "first", "COMPLETED"),
        (2, None, "REJECTED"),
        (4, "second", "REJECTED"),  # a refused spec keeps its id
        (5, "third", "COMPLETED"),
        (6, None, "COMPLETED"),
    ]
    first, bad_json, too_many, third, no_id = rows
    assert len(first["results"]) == 3
    assert all(r["text"] for r in first["results"])
    assert first["text"] is None  # several results: read them from "results"
    assert first["usage"]["totalTokens"] == sum(r["usage"]["totalTokens"] for r in first["results"])
    assert third["text"] == third["results"][0]["text"]
    assert third["metadata"] == {"team": "a"}
    assert len(no_id["results"]) == 2
    assert bad_json["error"]["code"] == "malformedLine"
    assert "numberResults" in too_many["error"]["message"]
    assert too_many["results"] == []

    events = tap.drain()
    by_type = Counter(e["detail-type"] for e in events)
    assert by_type == {"TaskCompleted": 5, "JobCompleted": 1}
    task_details = [e["detail"] for e in events if e["detail-type"] == "TaskCompleted"]
    assert sorted(d["taskUUID"] for d in task_details) == sorted(r["taskUUID"] for r in rows)
    assert Counter(d["status"] for d in task_details) == {"COMPLETED": 3, "REJECTED": 2}
    job = next(e for e in events if e["detail-type"] == "JobCompleted")
    assert job["source"] == "runrelay"
    assert job["detail"]["sourceId"] == source
    assert job["detail"]["counts"] == {"total": 5, "COMPLETED": 3, "REJECTED": 2}
    assert job["detail"]["results"]["uri"] == f"s3://{pipeline.stack.endpoints.bucket_name}/{key}"
    assert len(_versions(pipeline, key)) == 1  # written once: the bucket is versioned


def test_sqs_tasks_get_task_events_but_no_results_file(pipeline_factory: Callable[..., Pipeline]) -> None:
    pipeline = pipeline_factory()
    tap = EventTap(pipeline)
    source = pipeline.send([{"id": "sqs-a", "prompt": "hi"}, {"prompt": "yo", "numberResults": 2}])
    pipeline.wait_settled({source: 2})
    tap.wait_for(lambda events: len(events) >= 2)
    assert {e["detail"]["callerId"] for e in tap.drain()} == {"sqs-a", None}
    listed = pipeline.clients.s3.list_objects_v2(
        Bucket=pipeline.stack.endpoints.bucket_name, Prefix="results/"
    )
    assert listed.get("KeyCount", 0) == 0


def test_a_big_file_fans_out_and_still_gets_one_results_file_in_line_order(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    # Ranges of ~1.5 KB: a 300-line file (~13 KB) becomes ~9 range messages on the real queue, read
    # from the moto server with byte-range GETs, submitted by concurrent invocations.
    pipeline = pipeline_factory(own_dynamodb_local=True, parameters={"FanOutRangeBytes": "1500"})
    tap = EventTap(pipeline)
    lines = [json.dumps({"prompt": f"fan-out question {i}", "metadata": {"n": i}}) for i in range(300)]
    lines[150] = ""  # a blank line still counts as a line, not as a task
    source = pipeline.upload("fanned.jsonl", ("\n".join(lines) + "\n").encode())
    found = pipeline.wait_settled({source: 299}, timeout=120)
    assert {v.status for v in found[source]} == {"COMPLETED"}
    stats = pipeline.emulator.stats()
    assert stats["max_executions"] == 1
    # One run would have sent 3 POSTs of up to 100 tasks; each ~35-line range sends its own.
    assert sum(int(n) for n in stats["requests_by_status"].values()) >= 8
    tap.wait_for(lambda events: any(e["detail-type"] == "JobCompleted" for e in events), timeout=60)
    job = next(e for e in tap.drain() if e["detail-type"] == "JobCompleted")
    assert job["detail"]["counts"] == {"total": 299, "COMPLETED": 299}
    key = results_key(f"{pipeline.stack.endpoints.input_prefix}fanned.jsonl")
    body = pipeline.clients.s3.get_object(Bucket=pipeline.stack.endpoints.bucket_name, Key=key)["Body"]
    rows = [json.loads(line) for line in body.read().decode().splitlines()]
    assert [r["line"] for r in rows] == [n for n in range(1, 301) if n != 151]
    assert [r["metadata"]["n"] for r in rows] == [n - 1 for n in range(1, 301) if n != 151]
