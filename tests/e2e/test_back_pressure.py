"""Shared back-pressure on the local stack: under Runware's rate limit, the environment told to slow down
records one throttle in the table, and every task still runs exactly once."""

from __future__ import annotations

import json
from collections.abc import Callable

from local.runware_emulator import FaultConfig
from runrelay.adapters.dynamodb.throttle import DynamoThrottleStore

from .conftest import Pipeline

FILES = 3
LINES = 40


def _run(pipeline_factory: Callable[..., Pipeline], mode: str) -> tuple[Pipeline, int]:
    """Three files at once, each in its own submit environment, in POSTs of 5 tasks, on an emulator
    allowing 2 POSTs a second (the local stack sends a few a second at most)."""
    pipeline = pipeline_factory(
        emulator={"faults": FaultConfig(rate_limit=2)},
        parameters={"MaxTasksPerRequest": "5"},
        concurrency_cap=FILES,
        extra_environment={"RUNWARE_BACK_PRESSURE": mode},
        event_source_overrides={"SubmitFunction.Ingest": {"BatchSize": 1}},
    )
    sources = {
        pipeline.upload(
            f"paced-{n}.jsonl",
            "".join(json.dumps({"prompt": f"file {n} line {i}"}) + "\n" for i in range(LINES)).encode(),
        ): LINES
        for n in range(FILES)
    }
    settled = pipeline.wait_settled(sources, timeout=180)
    assert {task.status for tasks in settled.values() for task in tasks} == {"COMPLETED"}
    stats = pipeline.emulator.stats()
    assert stats["max_executions"] == 1
    return pipeline, int(stats["faults"].get("rate_limited", 0))


def test_under_a_rate_limit_every_task_runs_once_and_the_throttle_is_shared(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    # How many fewer 429s this buys is measured in tests/integration/test_runware_client.py (same work,
    # alone vs shared); on the local stack the count depends too much on scheduling to compare.
    shared, refused = _run(pipeline_factory, "shared")
    assert refused > 0
    endpoints = shared.stack.endpoints
    record = DynamoThrottleStore(endpoints.table_name, dynamodb=shared.clients.dynamodb).current()
    assert record is not None  # written by the environment that was told, read by all of them
    assert record.interval > 0
