"""A file with a spend cap on the local stack: what fits the budget is sent and completes, the rest ends
CANCELLED (budgetExceeded) without reaching Runware, the job still closes, and once every task is final
the budget holds exactly the costs Runware reported."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

import pytest

from local.runware_emulator import FaultConfig
from runrelay.adapters.dynamodb.budgets import DynamoSpendLedger
from runrelay.domain.tasks import summed_cost
from runrelay.inputs import BUDGET_METADATA

from .conftest import Pipeline
from .test_results_and_events import EventTap

LINES = 40
BUDGET = 0.0125  # two chunks of five results at the reckoned 0.001 each, not three


def test_a_file_stops_at_its_budget_and_the_budget_ends_with_the_real_costs(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    pipeline = pipeline_factory(
        emulator={
            "faults": FaultConfig(latency=20.0)
        },  # POSTs answered after 1 s: every chunk reserves first
        parameters={"MaxTasksPerRequest": "5", "EstimatedCostPerResultUSD": "0.001"},
    )
    tap = EventTap(pipeline)
    endpoints = pipeline.stack.endpoints
    key = f"{endpoints.input_prefix}capped.jsonl"
    data = "".join(json.dumps({"prompt": f"question {n}"}) + "\n" for n in range(LINES)).encode()
    put = pipeline.clients.s3.put_object(
        Bucket=endpoints.bucket_name, Key=key, Body=data, Metadata={BUDGET_METADATA: str(BUDGET)}
    )
    source = f"s3://{endpoints.bucket_name}/{key}#{put['ETag'].strip(chr(34))}"

    tasks = pipeline.wait_settled({source: LINES}, timeout=90)[source]
    by_status = Counter(t.status.value for t in tasks)
    assert by_status == {"COMPLETED": 10, "CANCELLED": 30}
    executions = pipeline.emulator.stats()["executions"]
    for task in tasks:
        if task.status == "CANCELLED":
            assert task.error is not None
            assert (task.error["code"], task.error["budgetUSD"]) == ("budgetExceeded", BUDGET)
            assert task.task_uuid not in executions  # never sent
        else:
            assert executions[task.task_uuid] == 1

    tap.wait_for(lambda events: any(e["detail-type"] == "JobCompleted" for e in events), timeout=60)
    job = next(e["detail"] for e in tap.drain() if e["detail-type"] == "JobCompleted")
    assert job["counts"] == {"total": LINES, **by_status}

    ledger = DynamoSpendLedger(endpoints.table_name, dynamodb=pipeline.clients.dynamodb)
    real = sum(summed_cost(t.results) or 0.0 for t in tasks)
    assert 0 < real <= BUDGET
    deadline = time.monotonic() + 30
    while ledger.committed("source", source)[1] < real - 1e-9 and time.monotonic() < deadline:
        time.sleep(0.25)  # the stream settles the last tasks a moment after the job's event
    committed, spent = ledger.committed("source", source)
    assert (committed, spent) == (pytest.approx(real), pytest.approx(real))  # no estimate left behind
