"""The SQS poller reproduces Lambda's SQS event source against a real (moto) queue."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.net import wait_for
from local.stack.aws_credentials import LOCAL_CREDENTIALS
from local.stack.sqs_poller import SqsPoller

SAMPLE_EVENT = json.loads((Path(__file__).parents[2] / "fixtures" / "sqs_lambda_event.json").read_text())


class Recorder:
    """A handler that records each batch and answers with whatever `respond(event)` says."""

    def __init__(self, respond: Callable[[dict[str, Any]], Any] = lambda event: None) -> None:
        self.events: list[dict[str, Any]] = []
        self.respond = respond
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> Any:
        with self._lock:
            self.events.append(json.loads(json.dumps(event)))
        return self.respond(event)

    def bodies(self) -> list[list[str]]:
        return [[record["body"] for record in event["Records"]] for event in self.events]


@pytest.fixture(scope="module")
def sqs(moto_server: str) -> Any:
    return boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1", **LOCAL_CREDENTIALS)


@pytest.fixture
def queues(sqs: Any) -> Callable[..., tuple[str, str]]:
    """Make (queue URL, DLQ URL) with the given visibility timeout and maxReceiveCount."""

    def make(*, visibility_timeout: int = 30, max_receive_count: int = 3) -> tuple[str, str]:
        name = f"poller-{uuid.uuid4().hex[:10]}"
        dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)})
        queue = sqs.create_queue(
            QueueName=name,
            Attributes={"VisibilityTimeout": str(visibility_timeout), "RedrivePolicy": redrive},
        )["QueueUrl"]
        return queue, dlq

    return make


@pytest.fixture
def start_poller(sqs: Any) -> Iterator[Callable[..., SqsPoller]]:
    started: list[SqsPoller] = []

    def start(queue_url: str, handler: Callable[[dict[str, Any]], Any], **options: Any) -> SqsPoller:
        options.setdefault("poll_wait_seconds", 0)
        poller = SqsPoller(sqs, queue_url, handler, **options).start()
        started.append(poller)
        return poller

    yield start
    for poller in started:
        poller.stop()


def _send(sqs: Any, queue_url: str, *bodies: str) -> None:
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)


def _fail(*bodies: str, max_count: int = 99) -> Callable[[dict[str, Any]], Any]:
    """A ReportBatchItemFailures response failing the given bodies while their receive count <= max_count."""

    def respond(event: dict[str, Any]) -> Any:
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]}
                for r in event["Records"]
                if r["body"] in bodies and int(r["attributes"]["ApproximateReceiveCount"]) <= max_count
            ]
        }

    return respond


def test_records_have_the_lambda_sqs_event_shape(sqs: Any, queues: Any, start_poller: Any) -> None:
    queue, _ = queues()
    sqs.send_message(
        QueueUrl=queue,
        MessageBody="test",
        MessageAttributes={
            "myAttribute": {"DataType": "String", "StringValue": "myValue"},
            "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    recorder = Recorder()
    poller = start_poller(
        queue, recorder, queue_arn="arn:aws:sqs:us-east-1:123456789012:q", region="us-east-1"
    )
    assert poller.wait_until_idle(10)

    (record,) = recorder.events[0]["Records"]
    sample = SAMPLE_EVENT["Records"][0]
    assert list(record) == list(sample)
    assert set(record["attributes"]) == set(sample["attributes"])
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["myAttribute"] == sample["messageAttributes"]["myAttribute"]
    assert record["messageAttributes"]["raw"] == {
        "binaryValue": "AAE=",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "Binary",
    }
    assert record["md5OfBody"] == hashlib.md5(b"test").hexdigest()  # noqa: S324 - SQS's checksum
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs",
        "arn:aws:sqs:us-east-1:123456789012:q",
        "us-east-1",
    )


def test_partial_batch_failure_retries_only_the_failed_message(
    sqs: Any, queues: Any, start_poller: Any
) -> None:
    queue, dlq = queues()
    _send(sqs, queue, "a", "b", "c")
    recorder = Recorder(_fail("b", max_count=1))
    poller = start_poller(
        queue, recorder, batching_window_seconds=0.5, report_batch_item_failures=True, retry_delay_seconds=0
    )
    assert poller.wait_until_idle(10)

    assert sorted(recorder.bodies()[0]) == ["a", "b", "c"]
    assert recorder.bodies()[1:] == [["b"]]
    retried = recorder.events[1]["Records"][0]
    assert retried["attributes"]["ApproximateReceiveCount"] == "2"
    stats = poller.stats
    assert (stats.batches, stats.messages, stats.failures, stats.failed_messages, stats.deleted_messages) == (
        2,
        4,
        0,
        1,
        3,
    )
    assert sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages") is None


def test_a_message_failing_max_receive_count_times_moves_to_the_dlq(
    sqs: Any, queues: Any, start_poller: Any
) -> None:
    queue, dlq = queues(max_receive_count=2)
    _send(sqs, queue, "poison", "fine")
    recorder = Recorder(_fail("poison"))
    start_poller(
        queue, recorder, batching_window_seconds=0.3, report_batch_item_failures=True, retry_delay_seconds=0
    )

    dead: list[dict[str, Any]] = []

    def dead_lettered() -> bool:
        dead.extend(sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages", []))
        return bool(dead)

    wait_for(dead_lettered, 10, "the poison message in the DLQ")
    assert [m["Body"] for m in dead] == ["poison"]
    deliveries = [body for bodies in recorder.bodies() for body in bodies]
    assert deliveries.count("poison") == 2
    assert deliveries.count("fine") == 1


@pytest.mark.parametrize(
    "response",
    [
        pytest.param({"batchItemFailures": [{"itemIdentifier": ""}]}, id="empty-identifier"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": None}]}, id="null-identifier"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}, id="unknown-identifier"),
        pytest.param({"batchItemFailures": [{"messageId": "x"}]}, id="bad-key"),
        pytest.param({"batchItemFailures": "all"}, id="not-a-list"),
        pytest.param("RAISE", id="handler-raises"),
    ],
)
def test_invalid_responses_and_exceptions_fail_the_whole_batch(
    sqs: Any, queues: Any, start_poller: Any, response: Any
) -> None:
    queue, _ = queues()
    _send(sqs, queue, "a", "b")
    calls = []

    def respond(event: dict[str, Any]) -> Any:
        calls.append(event)
        if len(calls) > 1:
            return None  # the retry succeeds
        if response == "RAISE":
            raise RuntimeError("boom")
        return response

    recorder = Recorder(respond)
    poller = start_poller(
        queue, recorder, batching_window_seconds=0.2, report_batch_item_failures=True, retry_delay_seconds=0
    )
    assert poller.wait_until_idle(10)

    assert [sorted(bodies) for bodies in recorder.bodies()] == [["a", "b"], ["a", "b"]]
    assert (poller.stats.failures, poller.stats.failed_messages, poller.stats.deleted_messages) == (1, 2, 2)


def test_without_report_batch_item_failures_a_returned_failure_list_is_ignored(
    sqs: Any, queues: Any, start_poller: Any
) -> None:
    queue, _ = queues()
    _send(sqs, queue, "a")
    recorder = Recorder(_fail("a"))
    poller = start_poller(queue, recorder, report_batch_item_failures=False, retry_delay_seconds=0)
    assert poller.wait_until_idle(10)
    assert recorder.bodies() == [["a"]]


def test_failed_messages_wait_out_the_visibility_timeout(sqs: Any, queues: Any, start_poller: Any) -> None:
    queue, _ = queues(visibility_timeout=1)
    _send(sqs, queue, "slow-retry")
    seen_at: list[float] = []

    def respond(event: dict[str, Any]) -> Any:
        seen_at.append(time.monotonic())
        return _fail("slow-retry", max_count=1)(event)

    poller = start_poller(queue, Recorder(respond), report_batch_item_failures=True)
    assert poller.wait_until_idle(10)
    assert len(seen_at) == 2
    assert seen_at[1] - seen_at[0] >= 0.9


def test_the_batching_window_gathers_messages_sent_later(sqs: Any, queues: Any, start_poller: Any) -> None:
    queue, _ = queues()
    recorder = Recorder()
    poller = start_poller(queue, recorder, batch_size=10, batching_window_seconds=1.5)
    _send(sqs, queue, "first")
    time.sleep(0.4)
    _send(sqs, queue, "second")
    assert poller.wait_until_idle(10)
    assert recorder.bodies() == [["first", "second"]]


def test_a_full_batch_is_invoked_before_the_window_closes(sqs: Any, queues: Any, start_poller: Any) -> None:
    queue, _ = queues()
    _send(sqs, queue, "1", "2", "3")
    recorder = Recorder()
    started = time.monotonic()
    poller = start_poller(queue, recorder, batch_size=2, batching_window_seconds=20)
    wait_for(lambda: len(recorder.events) >= 1, 5, "the first full batch")
    assert time.monotonic() - started < 5
    assert len(recorder.bodies()[0]) == 2
    poller.stop()


def test_batch_size_over_ten_requires_a_window(sqs: Any, queues: Any) -> None:
    queue, _ = queues()
    with pytest.raises(ValueError, match="batching window"):
        SqsPoller(sqs, queue, Recorder(), batch_size=11)
