"""The product end to end on the local stack: S3/SQS → submit → emulator → webhook → DynamoDB."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from local.runware_emulator import FaultConfig
from runrelay.domain.tasks import TaskStatus
from runrelay.task_ids import task_uuid_for

from .conftest import Pipeline

ROOT = Path(__file__).resolve().parents[2]


def test_make_demo_path_exits_zero() -> None:
    """What `make demo` runs, as a user runs it: its own servers, exit status 0, every task shown."""
    done = subprocess.run(
        [sys.executable, "-m", "local.tools.demo", "--timeout", "120"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Every valid task COMPLETED" in done.stdout
    assert done.stdout.count("COMPLETED") >= 8
    assert "REJECTED" in done.stdout


def test_s3_and_sqs_inputs_complete_with_every_result(pipeline_factory: Callable[..., Pipeline]) -> None:
    pipeline = pipeline_factory()
    lines = [{"prompt": f"question {i}", "numberResults": 1 + i % 4} for i in range(8)]
    jsonl = pipeline.upload("batch.jsonl", "\n".join(json.dumps(line) for line in lines).encode())
    text = pipeline.upload("note.txt", b"Summarise this note.")
    message = pipeline.send([{"id": "e2e-a", "prompt": "hi"}, {"prompt": "yo", "numberResults": 2}])
    found = pipeline.wait_settled({jsonl: 8, text: 1, message: 2})
    for views in found.values():
        for view in views:
            assert view.status == TaskStatus.COMPLETED
            assert len(view.results) == view.number_results
            assert all(r["text"] and r["usage"]["totalTokens"] and r["cost"] for r in view.results)
    assert pipeline.emulator.stats()["max_executions"] == 1
    assert pipeline.dlq_depth() == 0


def test_duplicate_webhooks_are_stored_once(pipeline_factory: Callable[..., Pipeline]) -> None:
    pipeline = pipeline_factory(
        emulator={"faults": FaultConfig(webhook_duplicate_rate=1.0), "webhook_shape": "bare"}
    )
    source = pipeline.send([{"prompt": f"dup {i}", "numberResults": 3} for i in range(4)])
    found = pipeline.wait_settled({source: 4})
    assert pipeline.emulator.wait_for_deliveries(20)
    for view in found[source]:
        fresh = pipeline.store.get_task(view.task_uuid)
        assert fresh is not None
        assert fresh.result_count == 3
        assert len(fresh.results) == 3
    stats = pipeline.emulator.stats()
    assert stats["max_executions"] == 1
    assert stats["faults"].get("webhook_duplicate", 0) >= 12


@pytest.mark.parametrize("delivery", ["webhooks, each sent twice", "getResponse, webhooks lost"])
def test_identical_results_without_seeds_are_all_stored(
    pipeline_factory: Callable[..., Pipeline], delivery: str
) -> None:
    """Short deterministic answers: every result of a prompt is the same text with no seed. Each is its
    own Runware task, so N identical results complete the task and a redelivery is still a duplicate."""
    faults = (
        FaultConfig(identical_results=True, webhook_duplicate_rate=1.0)
        if delivery.startswith("webhooks")
        else FaultConfig(identical_results=True, webhook_drop_rate=1.0)
    )
    pipeline = pipeline_factory(emulator={"faults": faults})
    wanted = [4, 2, 1]
    source = pipeline.send([{"prompt": "What is 2 + 2?", "numberResults": n} for n in wanted])
    found = pipeline.wait_settled({source: 3}, timeout=60)
    assert pipeline.emulator.wait_for_deliveries(20)
    answers = set()
    for view, n in zip(found[source], wanted, strict=True):
        fresh = pipeline.store.get_task(view.task_uuid)
        assert fresh is not None
        assert (fresh.status, fresh.result_count, len(fresh.results)) == (TaskStatus.COMPLETED, n, n)
        assert all("seed" not in r for r in fresh.results)
        answers |= {r["text"] for r in fresh.results}
    assert len(answers) == 1  # the same text everywhere
    stats = pipeline.emulator.stats()
    assert stats["max_executions"] == 1
    assert len(stats["executions"]) == sum(wanted)  # one Runware task per result, each run once


def test_failed_tasks_become_failed_with_the_error(pipeline_factory: Callable[..., Pipeline]) -> None:
    doomed = str(task_uuid_for("id:doomed"))
    pipeline = pipeline_factory(emulator={"faults": FaultConfig(fail_task_uuids=frozenset({doomed}))})
    source = pipeline.send([{"id": "doomed", "prompt": "fail"}, {"id": "fine", "prompt": "ok"}])
    found = pipeline.wait_settled({source: 2})
    statuses = {view.task_uuid: view for view in found[source]}
    assert statuses[doomed].status == TaskStatus.FAILED
    error = statuses[doomed].error
    assert error
    assert error["code"]
    assert statuses[str(task_uuid_for("id:fine"))].status == TaskStatus.COMPLETED


def test_dropped_webhooks_are_healed_by_reconcile(pipeline_factory: Callable[..., Pipeline]) -> None:
    pipeline = pipeline_factory(emulator={"faults": FaultConfig(webhook_drop_rate=1.0)})
    source = pipeline.send([{"prompt": f"lost {i}", "numberResults": 2} for i in range(3)])
    found = pipeline.wait_settled({source: 3}, timeout=60)
    assert all(view.status == TaskStatus.COMPLETED and len(view.results) == 2 for view in found[source])
    assert pipeline.emulator.stats()["webhooks"]["dropped"] >= 6


def test_forged_and_malformed_webhooks_write_nothing(pipeline_factory: Callable[..., Pipeline]) -> None:
    pipeline = pipeline_factory()
    target = str(task_uuid_for("id:victim"))
    url = pipeline.stack.endpoints.webhook_url
    body = {"data": [{"taskUUID": target, "text": "forged"}]}
    attempts = [
        requests.post(url, json=body, timeout=10),
        requests.post(url, params={"token": "0" * 64}, json=body, timeout=10),
        requests.post(url, params={"token": "x"}, data=b"{not json", timeout=10),
        requests.post(url, params={"token": "x"}, data=b"[" * 50 + b"]" * 50, timeout=10),
        requests.post(url, params={"token": "x"}, data=b"x" * (2 * 1024 * 1024), timeout=10),
    ]
    assert [r.status_code for r in attempts] == [401, 403, 400, 400, 413]
    assert all(r.json()["error"] for r in attempts)
    assert pipeline.store.get_task(target) is None
