"""The local stack runs each function as Lambda does: own processes, own module state, one event at a
time per environment, killed past its Timeout and replaced by a fresh (cold) one."""

from __future__ import annotations

import io
import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.net import wait_for
from local.stack.local_stack import LocalStack

PROBE = "tests.support.runtime_probe.handler"


def _calls(path: Path) -> list[dict[str, Any]]:
    return (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    )


@pytest.fixture
def calls_file(tmp_path: Path) -> Path:
    return tmp_path / "calls.jsonl"


@pytest.fixture
def function_log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def stack(
    dynamodb_local: str, moto_server: str, local_stack_name: str, calls_file: Path, function_log: io.StringIO
) -> Iterator[LocalStack]:
    with LocalStack(
        stack_name=local_stack_name,
        parameter_overrides={"RunwareApiKeySecretName": f"{local_stack_name}/runware-api-key"},
        runware_api_url="http://127.0.0.1:9/v1",
        handler_overrides=dict.fromkeys(("SubmitFunction", "WebhookFunction", "ReconcileFunction"), PROBE),
        extra_environment={"RUNRELAY_TEST_CALLS": str(calls_file)},
        function_timeouts={"SubmitFunction": 2},
        concurrency_cap=2,
        retry_delay_seconds=0,
        batching_window_cap_seconds=0.1,
        poll_wait_seconds=0,
        state_file=None,
        dynamodb_url=dynamodb_local,
        moto_url=moto_server,
        function_log=function_log,
    ) as local_stack:
        yield local_stack


def test_two_functions_share_no_module_state_metrics_or_parameter_cache(stack: LocalStack) -> None:
    assert stack.resources is not None
    secret = stack.resources.webhook_secret_arn
    first = stack.invoke("WebhookFunction", {"secretId": secret})
    second = stack.invoke("WebhookFunction", {})
    other = stack.invoke("ReconcileFunction", {})

    assert (first["counter"], second["counter"]) == (1, 2)  # one warm environment kept its state
    assert first["pid"] == second["pid"]
    assert second["metricsBefore"] == [f"Probe{first['functionName'][-6:]}"]
    assert second["cachedSecrets"] == [secret]
    # The other function: its own process, a fresh counter, no metric and no secret of the webhook's.
    assert other["pid"] != first["pid"]
    assert (other["counter"], other["metricsBefore"], other["cachedSecrets"]) == (1, [], [])
    assert other["functionName"] == f"{stack.stack_name}-ReconcileFunction"


def test_one_event_at_a_time_reaches_an_environment(stack: LocalStack) -> None:
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def call() -> None:
        answer = stack.invoke("WebhookFunction", {"hold": 0.2})
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(answers) == 6
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for answer in answers:
        by_pid.setdefault(answer["pid"], []).append((answer["started"], answer["ended"]))
    assert len(by_pid) == 2  # concurrency_cap: two environments served six events
    for spans in by_pid.values():
        spans.sort()
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))


def test_a_timed_out_invocation_is_killed_its_record_retried_in_a_fresh_environment(
    stack: LocalStack, calls_file: Path, function_log: io.StringIO
) -> None:
    assert stack.clients is not None
    stack.clients.sqs.send_message(
        QueueUrl=stack.endpoints.ingest_queue_url, MessageBody=json.dumps({"sleep": 30})
    )

    def sleepers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [
            (call, record)
            for call in _calls(calls_file)
            for record in call["event"].get("Records", [])
            if "sleep" in record["body"]
        ]

    wait_for(lambda: bool(sleepers()), 60, "the retried record")
    ((call, record),) = sleepers()
    assert record["attributes"]["ApproximateReceiveCount"] == "2"  # the record went back to the queue
    (killed,) = [c["sleeping"] for c in _calls(calls_file) if "sleeping" in c]
    assert call["pid"] != killed  # a new cold start in a new process; the killed one is gone
    assert not Path(f"/proc/{killed}").exists() or "State:\tZ" in Path(f"/proc/{killed}/status").read_text()
    assert stack.functions["SubmitFunction"].cold_starts >= 2
    log = function_log.getvalue()
    name = f"{stack.stack_name}-SubmitFunction"
    assert f"{name} | " in log
    assert "Task timed out after 2.00 seconds" in log
    assert stack.wait_until_idle(10)
