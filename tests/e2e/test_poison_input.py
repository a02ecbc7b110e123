"""Poison input on the local stack: each bad input becomes one REJECTED task saying why; the rest runs.

The 10,000 good lines must all be accepted by Runware (executed once each). Their webhooks are dropped
on purpose: delivering 10,000 completions through the local stack takes minutes and proves nothing more
than tests/e2e/test_faults.py already does.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable

from local.runware_emulator import FaultConfig
from runrelay.domain.tasks import TaskRecord, TaskStatus

from .conftest import Pipeline

BIG_FILE_LINES = 10_000
BAD_LINE = 5_000


def _wait_until_processed(
    pipeline: Pipeline, expected_rows: int, expected_runs: int, timeout: float
) -> list[TaskRecord]:
    """Until every row exists and Runware has run every task sent (the webhooks are dropped: the rows stay
    PENDING). Counted cheaply while waiting (a full scan every few seconds would compete with the stack
    for the CPU)."""
    deadline = time.monotonic() + timeout
    rows = runs = 0
    while time.monotonic() < deadline:
        rows = pipeline.inspector.count_tasks()
        runs = len(pipeline.emulator.stats()["executions"])
        if rows >= expected_rows and runs >= expected_runs:
            return list(pipeline.inspector.all_tasks())
        time.sleep(2.0)
    raise AssertionError(f"{rows} of {expected_rows} rows, {runs} of {expected_runs} run, after {timeout}s")


def test_poison_inputs_are_rejected_one_by_one_and_everything_else_is_submitted(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    pipeline = pipeline_factory(
        own_dynamodb_local=True,
        parameters={"LogLevel": "WARNING", "OverdueAfterSeconds": "3600"},
        emulator={"faults": FaultConfig(webhook_drop_rate=1.0)},
        batching_window_cap_seconds=0.2,
    )
    lines = [json.dumps({"prompt": f"line {n}"}) for n in range(1, BIG_FILE_LINES + 1)]
    lines[BAD_LINE - 1] = '{"prompt": "cut off in the middle'
    sources = {
        "big": pipeline.upload("big.jsonl", ("\n".join(lines) + "\n").encode()),
        "not_utf8": pipeline.upload("latin1.txt", "Qu'est-ce qu'un café ?".encode("latin-1")),
        "empty_object": pipeline.upload("empty.jsonl", b""),
        "empty_prompt": pipeline.upload("empty.txt", b""),
        "empty_array": pipeline.upload("empty.json", b"[]"),
        "malformed_message": pipeline.send("{this is not json"),
    }
    expected_rows = BIG_FILE_LINES + len(sources) - 1
    by_source: dict[str, list[TaskRecord]] = defaultdict(list)
    for task in _wait_until_processed(pipeline, expected_rows, BIG_FILE_LINES - 1, timeout=300):
        by_source[task.source_id].append(task)
    big = by_source[sources["big"]]
    assert Counter(task.status for task in big) == {
        TaskStatus.PENDING: BIG_FILE_LINES - 1,  # sent, each run once (above); no webhook comes
        TaskStatus.REJECTED: 1,
    }
    [rejected_line] = [task for task in big if task.status == TaskStatus.REJECTED]
    assert rejected_line.source_seq == BAD_LINE
    assert rejected_line.error
    assert rejected_line.error["code"] == "malformedLine"
    assert rejected_line.error["message"].startswith(f"line {BAD_LINE} ")

    expected_codes = {
        "not_utf8": "notUtf8",
        "empty_object": "emptyObject",
        "empty_prompt": "emptyPrompt",
        "empty_array": "emptyObject",
        "malformed_message": "malformedMessage",
    }
    for name, code in expected_codes.items():
        [task] = by_source[sources[name]]
        assert task.error, name
        assert (task.status, task.error["code"]) == (TaskStatus.REJECTED, code), name
        assert task.error["message"], name
    stats = pipeline.emulator.stats()
    assert stats["tasks"] == BIG_FILE_LINES - 1  # nothing rejected was sent
    assert stats["max_executions"] == 1
    assert pipeline.dlq_depth() == 0
