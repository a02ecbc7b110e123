"""Fault injection in the emulator: each kind, its counters, the admin endpoints, reproducibility."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from local.runware_emulator import EmulatorServer, FaultConfig, task_fails
from tests.support.runware_requests import poll, post, text_task
from tests.support.webhook_sink import WebhookSink


@pytest.mark.parametrize(("rate", "status"), [("rate_429", 429), ("rate_500", 500), ("rate_503", 503)])
def test_submit_status_fault_rejects_the_whole_request_and_runs_nothing(
    emulator_factory: Callable[..., EmulatorServer], rate: str, status: int
) -> None:
    certain: dict[str, Any] = {rate: 1.0}
    emulator = emulator_factory(faults=FaultConfig(**certain, retry_after=3))
    tasks = [text_task(), text_task(deliveryMethod="async")]

    response = post(emulator.url, tasks)

    assert response.status_code == status
    assert response.json()["errors"][0]["code"]
    assert (response.headers.get("Retry-After") == "3") == (status == 429)
    stats = emulator.stats()
    assert stats["executions"] == {}
    assert stats["faults"] == {f"http_{status}": 1}
    assert stats["requests_by_status"] == {str(status): 1}

    emulator.set_faults(**dict.fromkeys(certain, 0.0))
    retried = post(emulator.url, tasks)
    assert retried.status_code == 200
    assert "errors" not in retried.json()


def test_latency_delays_the_answer(emulator_factory: Callable[..., EmulatorServer]) -> None:
    emulator = emulator_factory(time_scale=1.0, faults=FaultConfig(latency=0.3))

    started = time.monotonic()
    response = post(emulator.url, [text_task()])

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    assert emulator.stats()["faults"] == {"latency": 1}


def test_dropped_response_still_runs_the_task_and_a_resubmit_conflicts(emulator: EmulatorServer) -> None:
    emulator.set_faults(drop_response_rate=1.0)
    task = text_task()

    with pytest.raises(requests.ConnectionError):
        post(emulator.url, [task])

    emulator.set_faults(drop_response_rate=0.0)
    resubmitted = post(emulator.url, [task]).json()
    assert resubmitted["errors"][0]["code"] == "conflictTaskUUID"
    assert poll(emulator.url, task["taskUUID"])["data"][0]["status"] == "success"
    stats = emulator.stats()
    assert stats["executions"] == {task["taskUUID"]: 1}
    assert stats["faults"]["dropped_response"] == 1
    assert stats["requests_by_status"]["dropped"] == 1


def test_duplicate_webhooks_send_the_same_body_twice(
    emulator: EmulatorServer, webhook_sink: WebhookSink
) -> None:
    emulator.set_faults(webhook_duplicate_rate=1.0)
    task = text_task(deliveryMethod="async", numberResults=2, webhookURL=webhook_sink.url())

    post(emulator.url, [task])
    received = webhook_sink.wait_for(4)
    assert emulator.wait_for_deliveries(5)

    bodies = [request.body for request in received]
    assert len(bodies) == 4
    assert len(set(bodies)) == 2
    assert all(bodies.count(body) == 2 for body in bodies)
    stats = emulator.stats()
    assert stats["webhooks"]["duplicated"] == 2
    assert stats["faults"]["webhook_duplicate"] == 2


def test_late_webhooks_arrive_after_the_configured_delay(
    emulator_factory: Callable[..., EmulatorServer], webhook_sink: WebhookSink
) -> None:
    emulator = emulator_factory(time_scale=1.0, faults=FaultConfig(webhook_late_rate=1.0, late_delay=0.4))
    task = text_task(deliveryMethod="async", webhookURL=webhook_sink.url())

    started = time.monotonic()
    post(emulator.url, [task])
    received = webhook_sink.wait_for(1)

    assert received[0].received_at - started >= 0.4
    assert emulator.stats()["faults"] == {"webhook_late": 1}


def test_late_webhook_result_is_already_visible_to_get_response(
    emulator_factory: Callable[..., EmulatorServer], webhook_sink: WebhookSink
) -> None:
    emulator = emulator_factory(time_scale=1.0, faults=FaultConfig(webhook_late_rate=1.0, late_delay=5.0))
    task = text_task(deliveryMethod="async", webhookURL=webhook_sink.url())
    post(emulator.url, [task])
    time.sleep(0.1)

    body = poll(emulator.url, task["taskUUID"])

    assert body["data"][0]["status"] == "success"
    assert webhook_sink.requests == []


def test_reordered_webhooks_deliver_results_out_of_order(
    emulator_factory: Callable[..., EmulatorServer], webhook_sink: WebhookSink
) -> None:
    emulator = emulator_factory(
        time_scale=1.0, result_delay=0.05, faults=FaultConfig(webhook_reorder_rate=1.0)
    )
    task = text_task(deliveryMethod="async", numberResults=4, seed=100, webhookURL=webhook_sink.url())

    post(emulator.url, [task])
    seeds = [request.json()["data"][0]["seed"] for request in webhook_sink.wait_for(4)]

    assert sorted(seeds) == [100, 101, 102, 103]
    assert seeds != [100, 101, 102, 103]
    assert emulator.stats()["faults"] == {"webhook_reordered": 1}


def test_dropped_webhooks_are_never_sent_but_get_response_has_the_results(
    emulator: EmulatorServer, webhook_sink: WebhookSink
) -> None:
    emulator.set_faults(webhook_drop_rate=1.0)
    task = text_task(deliveryMethod="async", numberResults=2, webhookURL=webhook_sink.url())

    post(emulator.url, [task])
    assert emulator.wait_for_deliveries(5)
    time.sleep(0.05)

    assert webhook_sink.requests == []
    assert [item["status"] for item in poll(emulator.url, task["taskUUID"])["data"]] == ["success", "success"]
    assert emulator.stats()["webhooks"]["dropped"] == 2


def test_listed_task_fails_in_a_sync_answer_beside_the_others(emulator: EmulatorServer) -> None:
    failing, fine = text_task(), text_task()
    emulator.set_faults(fail_task_uuids=[failing["taskUUID"]])

    response = post(emulator.url, [failing, fine])

    assert response.status_code == 200
    body = response.json()
    assert [item["taskUUID"] for item in body["data"]] == [fine["taskUUID"]]
    error = body["errors"][0]
    assert (error["taskUUID"], error["status"]) == (failing["taskUUID"], "error")
    assert emulator.stats()["executions"] == {failing["taskUUID"]: 1, fine["taskUUID"]: 1}


@pytest.mark.parametrize("error_style", ["errors", "data"])
def test_get_response_reports_a_failed_task_in_the_configured_place(
    emulator_factory: Callable[..., EmulatorServer], error_style: str
) -> None:
    task = text_task(deliveryMethod="async")
    emulator = emulator_factory(
        error_style=error_style, faults=FaultConfig(fail_task_uuids=frozenset({task["taskUUID"]}))
    )
    post(emulator.url, [task])
    time.sleep(0.05)

    body = poll(emulator.url, task["taskUUID"])

    if error_style == "errors":
        assert body["data"] == []
        assert body["errors"][0]["status"] == "error"
        assert body["errors"][0]["taskUUID"] == task["taskUUID"]
    else:
        assert "errors" not in body
        item = body["data"][0]
        assert (item["taskUUID"], item["status"]) == (task["taskUUID"], "error")
        assert item["error"]["code"]


def test_task_error_share_follows_the_predictable_uuid_hash(emulator: EmulatorServer) -> None:
    config = emulator.set_faults(task_error_rate=0.5)
    tasks = [text_task() for _ in range(40)]
    predicted = {task["taskUUID"] for task in tasks if task_fails(task["taskUUID"], config)}

    body = post(emulator.url, tasks).json()

    failed = {error["taskUUID"] for error in body.get("errors", [])}
    assert failed == predicted
    assert 0 < len(predicted) < 40
    assert emulator.stats()["faults"]["task_error"] == len(predicted)


def test_same_seed_gives_the_same_fault_sequence(emulator_factory: Callable[..., EmulatorServer]) -> None:
    def statuses(seed: int) -> list[int]:
        emulator = emulator_factory(seed=seed, faults=FaultConfig(rate_500=0.5))
        return [post(emulator.url, [text_task()]).status_code for _ in range(16)]

    first, again, other = statuses(1), statuses(1), statuses(2)

    assert first == again
    assert set(first) == {200, 500}
    assert first != other


# ---- admin endpoints -----------------------------------------------------------------------------------


def test_admin_faults_endpoint_changes_the_faults(emulator: EmulatorServer) -> None:
    changed = requests.post(f"{emulator.base_url}/admin/faults", json={"rate_429": 1.0}, timeout=5)

    assert changed.status_code == 200
    assert changed.json()["faults"]["rate_429"] == 1.0
    assert post(emulator.url, [text_task()]).status_code == 429
    current = requests.get(f"{emulator.base_url}/admin/faults", timeout=5).json()
    assert current["faults"]["rate_429"] == 1.0


@pytest.mark.parametrize(
    "body", [{"rate_430": 1.0}, {"rate_429": 2}, {"latency": -1}, {"fail_task_uuids": "abc"}, [1]]
)
def test_admin_faults_endpoint_refuses_bad_settings(emulator: EmulatorServer, body: object) -> None:
    response = requests.post(f"{emulator.base_url}/admin/faults", json=body, timeout=5)

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalidFaults"
    assert emulator.faults == FaultConfig()


def test_admin_stats_and_reset(emulator: EmulatorServer) -> None:
    task = text_task()
    post(emulator.url, [task])
    post(emulator.url, [task])

    stats = requests.get(f"{emulator.base_url}/admin/stats", timeout=5).json()
    assert stats["executions"] == {task["taskUUID"]: 1}
    assert stats["requests_by_status"] == {"200": 2}
    assert stats["tasks"] == 1

    stats_again = requests.get(f"{emulator.base_url}/admin/stats", timeout=5).json()
    assert stats_again["requests_by_status"] == {"200": 2}  # admin routes are not counted

    assert requests.post(f"{emulator.base_url}/admin/reset", timeout=5).status_code == 200
    after_reset = post(emulator.url, [task]).json()
    assert "errors" not in after_reset
    assert emulator.stats()["executions"] == {task["taskUUID"]: 1}


def test_unknown_route_is_404(emulator: EmulatorServer) -> None:
    assert requests.post(f"{emulator.base_url}/v2", json=[], timeout=5).status_code == 404
