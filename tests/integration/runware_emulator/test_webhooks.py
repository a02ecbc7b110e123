"""The emulator's webhook deliveries: one POST per result, body shapes, failures, retries."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from local.runware_emulator import EmulatorServer, RetryPolicy
from tests.support.runware_requests import poll, post, text_task
from tests.support.webhook_sink import WebhookSink


def test_each_result_is_its_own_post_to_the_exact_webhook_url(
    emulator: EmulatorServer, webhook_sink: WebhookSink
) -> None:
    url = webhook_sink.url("/webhooks/runware", token="abc123", extra="x y")
    task = text_task(deliveryMethod="async", numberResults=3, webhookURL=url, includeUsage=True)

    ack = post(emulator.url, [task])
    received = webhook_sink.wait_for(3)

    assert ack.json() == {"data": [{"taskType": "textInference", "taskUUID": task["taskUUID"]}]}
    assert all(request.raw_path == url.removeprefix(webhook_sink.base_url) for request in received)
    assert all(request.headers["Content-Type"] == "application/json" for request in received)
    results = [request.json()["data"][0] for request in received]
    assert all(set(request.json()) == {"data"} and len(request.json()["data"]) == 1 for request in received)
    assert {result["taskUUID"] for result in results} == {task["taskUUID"]}
    assert len({result["seed"] for result in results}) == 3
    assert all("usage" in result for result in results)
    assert emulator.wait_for_deliveries(5)
    assert emulator.stats()["webhooks"]["succeeded"] == 3
    # The results delivered are exactly the ones getResponse reports.
    assert sorted(results, key=lambda r: r["seed"]) == poll(emulator.url, task["taskUUID"])["data"]


def test_bare_shape_posts_the_result_object_itself(
    emulator_factory: Callable[..., EmulatorServer], webhook_sink: WebhookSink
) -> None:
    emulator = emulator_factory(webhook_shape="bare")
    task = text_task(deliveryMethod="async", numberResults=2, webhookURL=webhook_sink.url())

    post(emulator.url, [task])
    bodies = [request.json() for request in webhook_sink.wait_for(2)]

    assert all(body["taskUUID"] == task["taskUUID"] and "text" in body for body in bodies)
    assert all("data" not in body for body in bodies)


def test_mixed_shape_alternates_between_wrapped_and_bare(
    emulator_factory: Callable[..., EmulatorServer], webhook_sink: WebhookSink
) -> None:
    emulator = emulator_factory(webhook_shape="mixed")
    task = text_task(deliveryMethod="async", numberResults=4, webhookURL=webhook_sink.url())

    post(emulator.url, [task])
    bodies = [request.json() for request in webhook_sink.wait_for(4)]

    wrapped = [body for body in bodies if "data" in body]
    assert len(wrapped) == 2
    assert len(bodies) - len(wrapped) == 2


def test_async_without_webhook_url_posts_nothing(emulator: EmulatorServer, webhook_sink: WebhookSink) -> None:
    task = text_task(deliveryMethod="async")

    post(emulator.url, [task])
    assert emulator.wait_for_deliveries(5)

    assert webhook_sink.requests == []
    assert emulator.stats()["webhooks"]["attempted"] == 0


def test_sync_task_with_webhook_url_answers_inline_and_posts_nothing(
    emulator: EmulatorServer, webhook_sink: WebhookSink
) -> None:
    task = text_task(webhookURL=webhook_sink.url())

    response = post(emulator.url, [task])
    assert emulator.wait_for_deliveries(5)

    assert response.json()["data"][0]["text"]
    assert webhook_sink.requests == []


def test_failed_delivery_is_retried_until_accepted(
    emulator: EmulatorServer, webhook_sink: WebhookSink
) -> None:
    webhook_sink.fail_first(3)
    task = text_task(deliveryMethod="async", webhookURL=webhook_sink.url())

    post(emulator.url, [task])
    accepted = webhook_sink.wait_for(1)
    assert emulator.wait_for_deliveries(5)

    assert [request.answered for request in webhook_sink.requests] == [500, 500, 500, 200]
    assert len({request.body for request in webhook_sink.requests}) == 1
    assert accepted[0].json()["data"][0]["taskUUID"] == task["taskUUID"]
    webhooks = emulator.stats()["webhooks"]
    assert (webhooks["attempted"], webhooks["failed_attempts"], webhooks["succeeded"]) == (4, 3, 1)


def test_connection_errors_are_retried_too(emulator: EmulatorServer, unused_port_url: str) -> None:
    task = text_task(deliveryMethod="async", webhookURL=unused_port_url)

    post(emulator.url, [task])
    assert emulator.wait_for_deliveries(10)

    webhooks = emulator.stats()["webhooks"]
    assert webhooks["attempted"] == 8
    assert webhooks["gave_up"] == 1


def test_delivery_gives_up_after_max_attempts(
    emulator_factory: Callable[..., EmulatorServer], webhook_sink: WebhookSink
) -> None:
    emulator = emulator_factory(retry=RetryPolicy(max_attempts=3))
    webhook_sink.fail_first(100, status=503)

    post(emulator.url, [text_task(deliveryMethod="async", webhookURL=webhook_sink.url())])
    assert emulator.wait_for_deliveries(5)

    assert len(webhook_sink.requests) == 3
    assert emulator.stats()["webhooks"]["gave_up"] == 1


@pytest.mark.parametrize("shape", ["wrapped", "bare"])
def test_failed_task_is_delivered_as_an_error(
    emulator_factory: Callable[..., EmulatorServer], webhook_sink: WebhookSink, shape: str
) -> None:
    task = text_task(deliveryMethod="async", numberResults=3, webhookURL=webhook_sink.url())
    emulator = emulator_factory(webhook_shape=shape)
    emulator.set_faults(fail_task_uuids=[task["taskUUID"]])

    post(emulator.url, [task])
    received = webhook_sink.wait_for(1)
    assert emulator.wait_for_deliveries(5)

    assert len(webhook_sink.requests) == 1  # one failure, not one per result
    body = received[0].json()
    if shape == "wrapped":
        assert set(body) == {"errors"}
        error = body["errors"][0]
        assert (error["taskUUID"], error["status"]) == (task["taskUUID"], "error")
        assert error["code"]
        assert error["message"]
    else:
        assert (body["taskUUID"], body["status"]) == (task["taskUUID"], "error")
        assert body["error"]["code"]
        assert body["error"]["message"]


@pytest.fixture
def unused_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the port is bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
