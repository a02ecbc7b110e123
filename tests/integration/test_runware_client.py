"""The Runware client over real HTTP against the strict emulator: every error class, retries, streaming."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.runware_emulator import EmulatorServer, FaultConfig
from runrelay.back_pressure import AdaptiveWindow, SharedBackPressure
from runrelay.contract import Message, TextInferenceTask
from runrelay.deadline import Deadline
from runrelay.runware_client import RetryPolicy, RunwareClient
from runrelay.runware_errors import (
    AuthenticationError,
    TransientRunwareError,
)
from runrelay.task_ids import task_uuid_for
from tests.support.fakes import FakeThrottleStore
from tests.support.webhook_sink import WebhookSink

FAST = RetryPolicy(base_seconds=0.01, cap_seconds=0.05, read_timeout=5.0, min_attempt_seconds=0.05)


def task(key: str, **fields: Any) -> TextInferenceTask:
    return TextInferenceTask(
        taskUUID=task_uuid_for(key),
        messages=[Message(role="user", content=f"prompt {key}")],
        **fields,
    )


def client_for(emulator: EmulatorServer, **options: Any) -> RunwareClient:
    options.setdefault("retry", FAST)
    return RunwareClient(emulator.url, options.pop("api_key", "key"), **options)


def test_sync_results_with_usage_and_cost(emulator: EmulatorServer) -> None:
    outcome = client_for(emulator).submit(
        [task("a", numberResults=2, includeUsage=True, includeCost=True)], Deadline.after(10)
    )
    assert len(outcome.results) == 2
    first = outcome.results[0]
    assert first.text
    assert first.usage is not None
    assert first.usage.totalTokens
    assert first.cost is not None
    assert outcome.results[0].text != outcome.results[1].text


def test_async_batch_acknowledged_then_webhooks_per_result(
    emulator: EmulatorServer, webhook_sink: WebhookSink
) -> None:
    tasks = [
        task(f"async-{i}", deliveryMethod="async", numberResults=3, webhookURL=webhook_sink.url())
        for i in range(3)
    ]
    outcome = client_for(emulator).submit(tasks, Deadline.after(10))
    assert sorted(outcome.accepted) == sorted(str(t.taskUUID) for t in tasks)
    assert outcome.http_requests == 1
    assert len(webhook_sink.wait_for(9)) == 9


def test_key_in_body_as_authentication_task(emulator_factory: Callable[..., EmulatorServer]) -> None:
    emulator = emulator_factory(api_key="right")
    outcome = client_for(emulator, api_key="right", key_in_body=True).submit(
        [task("auth")], Deadline.after(10)
    )
    assert len(outcome.results) == 1


def test_wrong_key_is_a_typed_permanent_error(emulator_factory: Callable[..., EmulatorServer]) -> None:
    emulator = emulator_factory(api_key="right")
    with pytest.raises(AuthenticationError) as raised:
        client_for(emulator, api_key="wrong").submit([task("x")], Deadline.after(10))
    assert raised.value.status == 401
    assert raised.value.code == "invalidApiKey"


def test_resubmit_is_a_conflict_counted_as_accepted(
    emulator: EmulatorServer, webhook_sink: WebhookSink
) -> None:
    client = client_for(emulator)
    first = task("dup", deliveryMethod="async", webhookURL=webhook_sink.url())
    client.submit([first], Deadline.after(10))
    again = client.submit(
        [first, task("fresh", deliveryMethod="async", webhookURL=webhook_sink.url())], Deadline.after(10)
    )
    assert again.conflicts == [str(first.taskUUID)]
    assert set(again.accepted) == {str(first.taskUUID), str(task_uuid_for("fresh"))}
    assert emulator.stats()["max_executions"] == 1


def test_bad_task_in_a_batch_is_isolated(emulator: EmulatorServer) -> None:
    # model_construct skips our own validation, so the emulator's is what refuses it.
    bad = TextInferenceTask.model_construct(
        taskType="textInference",
        taskUUID=task_uuid_for("bad"),
        model="minimax:m2.7@0",
        messages=[Message(role="user", content="x")],
        seed=-1,
    )
    good = task("good")
    outcome = client_for(emulator).submit([bad, good], Deadline.after(10))
    assert set(outcome.rejected) == {str(bad.taskUUID)}
    assert outcome.rejected[str(bad.taskUUID)].parameter == "seed"
    assert [r.taskUUID for r in outcome.results] == [str(good.taskUUID)]


def test_single_invalid_task_raises_nothing_but_is_rejected(emulator: EmulatorServer) -> None:
    bad = TextInferenceTask.model_construct(
        taskType="textInference",
        taskUUID=task_uuid_for("bad2"),
        model="minimax:m2.7@0",
        messages=[],
    )
    outcome = client_for(emulator).submit([bad], Deadline.after(10))
    assert outcome.rejected[str(bad.taskUUID)].parameter == "messages"


@pytest.mark.parametrize("fault", ["rate_429", "rate_500", "rate_503"])
def test_transient_errors_are_retried_until_success(
    emulator_factory: Callable[..., EmulatorServer], fault: str
) -> None:
    emulator = emulator_factory(faults=FaultConfig(**{fault: 0.6, "retry_after": 0}), seed=3)
    client = client_for(emulator)
    outcomes = [client.submit([task(f"{fault}-{i}")], Deadline.after(20)) for i in range(5)]
    assert all(len(o.results) == 1 for o in outcomes)
    assert sum(o.retries for o in outcomes) > 0
    assert emulator.stats()["max_executions"] == 1


def test_retries_stop_at_the_deadline(emulator_factory: Callable[..., EmulatorServer]) -> None:
    emulator = emulator_factory(faults=FaultConfig(rate_503=1.0))
    started = time.monotonic()
    with pytest.raises(TransientRunwareError) as raised:
        client_for(emulator).submit([task("never")], Deadline.after(1.0))
    assert time.monotonic() - started < 3.0
    assert raised.value.status == 503


def test_retry_after_is_honoured(emulator_factory: Callable[..., EmulatorServer]) -> None:
    emulator = emulator_factory(faults=FaultConfig(rate_429=1.0, retry_after=1))
    sleeps: list[float] = []
    with pytest.raises(TransientRunwareError):
        client_for(emulator, sleep=sleeps.append).submit([task("slow")], Deadline.after(3.0))
    assert sleeps
    assert all(s >= 1.0 for s in sleeps)


def test_dropped_response_then_resubmit_is_a_conflict(
    emulator_factory: Callable[..., EmulatorServer], webhook_sink: WebhookSink
) -> None:
    emulator = emulator_factory(faults=FaultConfig(drop_response_rate=1.0))
    client = client_for(emulator)
    sent = task("lost-answer", deliveryMethod="async", webhookURL=webhook_sink.url())
    with pytest.raises(TransientRunwareError):
        client.submit([sent], Deadline.after(1.5))
    emulator.set_faults(drop_response_rate=0.0)
    outcome = client.submit([sent], Deadline.after(5))
    assert outcome.conflicts == [str(sent.taskUUID)]
    assert emulator.stats()["max_executions"] == 1


def test_get_response_reports_success_processing_and_errors(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    failing = task("fails", deliveryMethod="async")
    emulator = emulator_factory(faults=FaultConfig(fail_task_uuids=frozenset({str(failing.taskUUID)})))
    client = client_for(emulator)
    ok = task("polled", deliveryMethod="async", numberResults=2)
    client.submit([ok, failing], Deadline.after(5))
    deadline = time.monotonic() + 5
    while True:
        polled = client.get_response([str(ok.taskUUID), str(failing.taskUUID)], Deadline.after(5))
        if len(polled.results) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {r.taskUUID for r in polled.results} == {str(ok.taskUUID)}
    assert str(failing.taskUUID) in polled.errors
    unknown = client.get_response([str(task_uuid_for("never-sent").__str__())], Deadline.after(5))
    assert unknown.errors


def test_stream_yields_text_then_final_fields(emulator: EmulatorServer) -> None:
    events = list(
        client_for(emulator).stream(task("stream", includeUsage=True, includeCost=True), Deadline.after(10))
    )
    text = "".join(e.text for e in events)
    assert text
    assert any(e.finish_reason for e in events)
    assert any(e.usage for e in events)
    assert any(e.cost is not None for e in events)


def test_connection_refused_is_transient() -> None:
    client = RunwareClient("http://127.0.0.1:9/v1", "k", retry=FAST)
    with pytest.raises(TransientRunwareError):
        client.submit([task("nowhere")], Deadline.after(0.5))


def test_repr_never_shows_the_key() -> None:
    assert "secret-key" not in repr(RunwareClient("http://127.0.0.1:9/v1", "secret-key"))


# -- shared back-pressure under Runware's rate limit ------------------------------------------------


def _concurrent_submitters(
    emulator: EmulatorServer, store: FakeThrottleStore | None, *, submitters: int, posts: int
) -> float:
    """`submitters` environments (each its own client and window) POSTing `posts` async tasks each;
    the seconds until all are accepted."""

    def one(n: int) -> None:
        pacing = None if store is None else SharedBackPressure(store, AdaptiveWindow(4))
        client = client_for(emulator, pacing=pacing, retry=RetryPolicy(base_seconds=0.05, cap_seconds=1.0))
        for i in range(posts):
            hook = {"deliveryMethod": "async", "webhookURL": "https://example.com/hook"}
            outcome = client.submit([task(f"{id(store)}-{n}-{i}", **hook)], Deadline.after(120))
            assert len(outcome.accepted) == 1

    started = time.monotonic()
    with ThreadPoolExecutor(submitters) as pool:
        list(pool.map(one, range(submitters)))
    return time.monotonic() - started


def test_shared_back_pressure_makes_every_submitter_slow_down_under_a_rate_limit(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    # The same work twice on an emulator allowing 8 POSTs a second: each environment backing off alone
    # (today's behaviour without the shared record), then all of them reading one throttle record.
    rate_limited = {"faults": FaultConfig(rate_limit=8), "webhook_shape": "bare"}
    alone = emulator_factory(**rate_limited)
    _concurrent_submitters(alone, None, submitters=4, posts=12)
    shared = emulator_factory(**rate_limited)
    store = FakeThrottleStore()
    _concurrent_submitters(shared, store, submitters=4, posts=12)

    refused_alone = alone.stats()["faults"].get("rate_limited", 0)
    refused_shared = shared.stats()["faults"].get("rate_limited", 0)
    assert refused_alone > 0
    assert refused_shared * 2 <= refused_alone, (refused_shared, refused_alone)
    assert store.writes >= 1  # a throttle was recorded and read by every submitter
    assert alone.stats()["max_executions"] == shared.stats()["max_executions"] == 1


def test_an_attempt_gives_its_place_back_however_it_ends(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    window = AdaptiveWindow(2)
    wrong_key = emulator_factory(api_key="right")
    client = client_for(wrong_key, api_key="wrong", pacing=SharedBackPressure(FakeThrottleStore(), window))
    with pytest.raises(AuthenticationError):
        client.submit([task("denied")], Deadline.after(5))
    assert window.in_flight == 0
    refused = RunwareClient(
        "http://127.0.0.1:9", "key", retry=FAST, pacing=SharedBackPressure(FakeThrottleStore(), window)
    )
    with pytest.raises(TransientRunwareError):
        refused.submit([task("nobody")], Deadline.after(0.5))
    assert window.in_flight == 0
    assert window.limit == 2.0  # connection errors are not Runware asking to slow down
