"""Lambda's SQS event source, reproduced: batches, batching window, ReportBatchItemFailures, retries.

Per batch the handler gets the exact event Lambda builds. Afterwards the poller deletes what
succeeded; failed messages stay on the queue, become visible again after the visibility timeout
(or `retry_delay_seconds`, for tests) and move to the dead-letter queue after the queue's
maxReceiveCount (the queue itself does that on receive, as SQS does).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from local.stack.background import BackgroundWorker

log = logging.getLogger(__name__)

SQS_MAX_RECEIVE = 10  # per ReceiveMessage call
SYSTEM_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
)
FIFO_ATTRIBUTES = ("SequenceNumber", "MessageGroupId", "MessageDeduplicationId")
_WINDOW_POLL_SECONDS = 0.05


class BatchFailed(Exception):
    """The invocation counts as failed for the whole batch (as Lambda would judge it)."""


@dataclass(frozen=True)
class PollerStats:
    batches: int = 0  # handler invocations
    messages: int = 0  # records handed to the handler
    failures: int = 0  # invocations that failed as a whole
    failed_messages: int = 0  # records left for a retry (whole-batch and partial failures)
    deleted_messages: int = 0


class SqsPoller(BackgroundWorker):
    """Drives `handler(event) -> response` from one queue on a background thread."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Callable[[dict[str, Any]], Any],
        *,
        queue_arn: str | None = None,
        region: str = "us-east-1",
        batch_size: int = 10,
        batching_window_seconds: float = 0.0,
        report_batch_item_failures: bool = False,
        retry_delay_seconds: int | None = None,
        poll_wait_seconds: int = 1,
        name: str = "sqs-poller",
        concurrency: int = 1,
    ) -> None:
        if not 1 <= batch_size <= 10_000:
            raise ValueError("batch_size must be within 1..10000")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if batch_size > SQS_MAX_RECEIVE and batching_window_seconds <= 0:
            raise ValueError("a batch_size over 10 needs a batching window, as in Lambda")
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = (
            queue_arn
            or sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        )
        self._handler = handler
        self._region = region
        self._batch_size = batch_size
        self._window = batching_window_seconds
        self._report_failures = report_batch_item_failures
        self._retry_delay = retry_delay_seconds
        self._poll_wait = poll_wait_seconds
        self._name = name
        super().__init__(name)
        self._lock = threading.Lock()
        self._stats = PollerStats()
        self._concurrency = concurrency
        self._slots = threading.Semaphore(concurrency)
        self._busy = 0  # batches received and not yet deleted or released

    # ------------------------------------------------------------------ lifecycle
    # start() / stop() come from BackgroundWorker: stop() finishes the batches in hand (their messages
    # are deleted or released), then stops polling.

    @property
    def stats(self) -> PollerStats:
        with self._lock:
            return self._stats

    def wait_until_idle(self, timeout: float) -> bool:
        """True once the queue holds no message (visible, in flight or delayed) and no invocation
        runs; False when `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._busy and self._queue_is_empty() and not self._busy:
                return True
            time.sleep(0.05)
        return False

    def _queue_is_empty(self) -> bool:
        counts = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return all(int(value) == 0 for value in counts.values())

    # ------------------------------------------------------------------ polling
    def _run(self) -> None:
        """One thread receives; up to `concurrency` batches are handled at once, as Lambda's SQS
        pollers invoke up to the event source's MaximumConcurrency."""
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix=self._name) as batches:
            while not self._stop.is_set():
                if not self._slots.acquire(timeout=0.1):
                    continue
                try:
                    batch = self._collect_batch()
                except Exception:
                    self._slots.release()
                    log.exception("%s: polling %s failed; retrying", self._name, self._queue_url)
                    self._stop.wait(1.0)
                    continue
                if batch:
                    batches.submit(self._process_then_free_slot, batch)
                else:
                    self._slots.release()

    def _process_then_free_slot(self, batch: list[dict[str, Any]]) -> None:
        try:
            self._process(batch)
        except Exception:
            log.exception(
                "%s: could not finish a batch; its messages return after the visibility timeout", self._name
            )
        finally:
            with self._lock:
                self._busy -= 1
            self._slots.release()

    def _receive(self, limit: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(limit, SQS_MAX_RECEIVE),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _collect_batch(self) -> list[dict[str, Any]]:
        """Up to batch_size messages: the first receive long-polls; then, within the batching
        window, more are gathered until the batch is full or the window closes."""
        batch = self._receive(self._batch_size, self._poll_wait)
        if not batch:
            if self._poll_wait == 0:
                self._stop.wait(_WINDOW_POLL_SECONDS)
            return batch
        with self._lock:
            self._busy += 1
        window_closes = time.monotonic() + self._window
        while len(batch) < self._batch_size and time.monotonic() < window_closes:
            try:
                more = self._receive(self._batch_size - len(batch), 0)
            except Exception:
                log.warning("%s: a receive within the batching window failed", self._name, exc_info=True)
                break  # hand over what we hold
            if more:
                batch.extend(more)
            elif self._stop.wait(_WINDOW_POLL_SECONDS):
                break  # stopping: hand over what we hold rather than sit out the window
        return batch

    def _process(self, batch: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(message) for message in batch]}
        try:
            response = self._handler(event)
            failed_ids = self._failed_message_ids(response, batch)
            whole_batch_failed = False
        except Exception as error:
            if not isinstance(error, BatchFailed):
                log.warning("%s: handler raised %r; the whole batch will be retried", self._name, error)
            else:
                log.warning("%s: %s; the whole batch will be retried", self._name, error)
            failed_ids = {message["MessageId"] for message in batch}
            whole_batch_failed = True
        succeeded = [m for m in batch if m["MessageId"] not in failed_ids]
        failed = [m for m in batch if m["MessageId"] in failed_ids]
        self._delete(succeeded)
        self._release(failed)
        with self._lock:
            stats = self._stats
            self._stats = PollerStats(
                batches=stats.batches + 1,
                messages=stats.messages + len(batch),
                failures=stats.failures + int(whole_batch_failed),
                failed_messages=stats.failed_messages + len(failed),
                deleted_messages=stats.deleted_messages + len(succeeded),
            )

    def _failed_message_ids(self, response: Any, batch: Sequence[dict[str, Any]]) -> set[str]:
        """Lambda's reading of a ReportBatchItemFailures response (raises BatchFailed for the cases
        Lambda treats as a failure of the whole batch)."""
        if not self._report_failures or response is None:
            return set()
        try:
            json.dumps(response)
        except (TypeError, ValueError):
            raise BatchFailed("the response is not valid JSON") from None
        if not isinstance(response, dict):
            raise BatchFailed(f"the response is not an object: {response!r}")
        failures = response.get("batchItemFailures")
        if failures is None:
            return set()
        if not isinstance(failures, list):
            raise BatchFailed("batchItemFailures is not a list")
        in_batch = {message["MessageId"] for message in batch}
        failed_ids = set()
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not isinstance(identifier, str) or not identifier or identifier not in in_batch:
                raise BatchFailed(f"invalid batchItemFailures entry {failure!r}")
            failed_ids.add(identifier)
        return failed_ids

    def _delete(self, messages: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(messages), SQS_MAX_RECEIVE):
            chunk = messages[start : start + SQS_MAX_RECEIVE]
            response = self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                log.warning("%s: could not delete a message: %s", self._name, failure)

    def _release(self, messages: Sequence[dict[str, Any]]) -> None:
        """Failed messages wait out their visibility timeout, or `retry_delay_seconds` if set."""
        if self._retry_delay is None:
            return
        for start in range(0, len(messages), SQS_MAX_RECEIVE):
            chunk = messages[start : start + SQS_MAX_RECEIVE]
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": self._retry_delay,
                    }
                    for i, m in enumerate(chunk)
                ],
            )

    # ------------------------------------------------------------------ the event
    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        system = message.get("Attributes", {})
        attributes = {name: system[name] for name in (*SYSTEM_ATTRIBUTES, *FIFO_ATTRIBUTES) if name in system}
        if "AWSTraceHeader" in system:
            attributes["AWSTraceHeader"] = system["AWSTraceHeader"]
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": attributes,
            "messageAttributes": {
                name: _lambda_message_attribute(value)
                for name, value in message.get("MessageAttributes", {}).items()
            },
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        record["md5OfBody"] = message["MD5OfBody"]
        record.update(eventSource="aws:sqs", eventSourceARN=self._queue_arn, awsRegion=self._region)
        return record


def _lambda_message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """SQS's MessageAttributeValue in the camelCase shape Lambda events use (binary as base64)."""
    converted: dict[str, Any] = {}
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    converted["stringListValues"] = list(value.get("StringListValues", []))
    converted["binaryListValues"] = [
        base64.b64encode(item).decode("ascii") for item in value.get("BinaryListValues", [])
    ]
    converted["dataType"] = value["DataType"]
    return converted
