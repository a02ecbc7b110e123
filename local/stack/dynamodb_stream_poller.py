"""Lambda's DynamoDB Streams event source, reproduced on DynamoDB Local's dynamodbstreams API.

Per shard, in order: batches of up to `batch_size` records (after the mapping's FilterCriteria, with
EventBridge pattern semantics taken from moto), the event Lambda builds, ReportBatchItemFailures
(retry from the reported sequence number), BisectBatchOnFunctionError (a batch whose invocation failed
as a whole is split in two and each half retried), retries with a growing delay until
`maximum_retry_attempts` (-1: no limit, Lambda's default) or `maximum_record_age_seconds` (-1: the
stream's retention) is reached; then the failed records go to the on-failure SQS destination as Lambda's
invocation record and the shard moves on. Child shards wait until their parent is drained, as Lambda
keeps per-item order across shard splits.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.stack.background import BackgroundWorker
from runrelay.adapters.dynamodb.stream import repaired_image

log = logging.getLogger(__name__)

_IDLE_SLEEP_SECONDS = 0.1
_DISCOVERY_PERIOD_SECONDS = 2.0  # new shards are rare (splits, roll-over); DescribeStream is not free
_MAX_RETRY_DELAY_SECONDS = 5.0  # Lambda backs off between stream retries; locally capped low


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    # Shards there when the poller starts are read from the mapping's StartingPosition; shards found
    # later (splits) from their beginning.
    initial_position: str = "TRIM_HORIZON"
    iterator: str | None = None
    done: bool = False


@dataclass
class StreamPollerStats:
    batches: int = 0
    records: int = 0
    filtered_out: int = 0
    retries: int = 0
    sent_to_destination: int = 0
    errors: list[str] = field(default_factory=list)


class DynamoDBStreamPoller(BackgroundWorker):
    """Drives `handler(event) -> response` from one table stream on a background thread."""

    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        handler: Callable[[dict[str, Any]], Any],
        *,
        region: str = "us-east-1",
        batch_size: int = 100,
        starting_position: str = "TRIM_HORIZON",
        report_batch_item_failures: bool = False,
        maximum_retry_attempts: int = -1,
        maximum_record_age_seconds: int = -1,
        bisect_batch_on_function_error: bool = False,
        filter_patterns: Sequence[str] = (),
        on_failure: Callable[[dict[str, Any]], None] | None = None,
        retry_delay_seconds: float = 0.2,
        name: str = "stream-poller",
    ) -> None:
        self._streams = streams
        self._stream_arn = stream_arn
        self._handler = handler
        self._region = region
        self._batch_size = batch_size
        self._starting_position = starting_position
        self._report_failures = report_batch_item_failures
        self._max_retries = maximum_retry_attempts
        self._max_age = maximum_record_age_seconds
        self._bisect = bisect_batch_on_function_error
        self._filters = [_pattern(raw) for raw in filter_patterns]
        self._on_failure = on_failure
        self._retry_delay = retry_delay_seconds
        self._name = name
        self._shards: dict[str, _Shard] = {}
        self._shard_in_hand: str | None = None  # whose records are being delivered
        super().__init__(name)
        self.stats = StreamPollerStats()

    def _before_start(self) -> None:
        self._discover_shards()

    def _run(self) -> None:
        discovered = time.monotonic()
        while not self._stop.is_set():
            try:
                if time.monotonic() - discovered > _DISCOVERY_PERIOD_SECONDS:
                    self._discover_shards()
                    discovered = time.monotonic()
                worked = any(self._poll(shard) for shard in self._ready_shards())
            except Exception as error:
                log.exception("%s: polling %s failed; retrying", self._name, self._stream_arn)
                self.stats.errors.append(repr(error))
                worked = False
            if not worked:
                self._stop.wait(_IDLE_SLEEP_SECONDS)

    def _discover_shards(self) -> None:
        start: str | None = None
        while True:
            kwargs = {"StreamArn": self._stream_arn, **({"ExclusiveStartShardId": start} if start else {})}
            description = self._streams.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards", []):
                shard_id = shard["ShardId"]
                if shard_id not in self._shards:
                    position = self._starting_position if self._thread is None else "TRIM_HORIZON"
                    self._shards[shard_id] = _Shard(shard_id, shard.get("ParentShardId"), position)
            start = description.get("LastEvaluatedShardId")
            if not start:
                return

    def _ready_shards(self) -> list[_Shard]:
        def parent_drained(shard: _Shard) -> bool:
            parent = self._shards.get(shard.parent_id or "")
            return parent is None or parent.done

        return [s for s in self._shards.values() if not s.done and parent_drained(s)]

    def _poll(self, shard: _Shard) -> bool:
        if shard.iterator is None:
            shard.iterator = self._streams.get_shard_iterator(
                StreamArn=self._stream_arn, ShardId=shard.shard_id, ShardIteratorType=shard.initial_position
            )["ShardIterator"]
        answer = self._streams.get_records(ShardIterator=shard.iterator, Limit=self._batch_size)
        shard.iterator = answer.get("NextShardIterator")
        if shard.iterator is None:
            shard.done = True
        records = [self._lambda_record(raw) for raw in answer.get("Records", [])]
        selected = [r for r in records if self._matches(r)]
        self.stats.filtered_out += len(records) - len(selected)
        if selected:
            self._shard_in_hand = shard.shard_id
            self._deliver(selected)
        return bool(records)

    def _matches(self, record: dict[str, Any]) -> bool:
        return not self._filters or any(pattern.matches_event(record) for pattern in self._filters)

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        """Invoke until the batch succeeds, retrying from the first failed record (or each half of a
        batch that failed as a whole, with bisection on); give up on records past the retry budget or
        the maximum record age (they go to the on-failure destination) as Lambda does."""
        attempts = 0
        delay = self._retry_delay
        while records and not self._stop.is_set():
            expired = self._expired_prefix(records)
            if expired:
                self._give_up(records[:expired], "MaximumRecordAgeExceeded")
                records = records[expired:]
                continue
            self.stats.batches += 1
            self.stats.records += len(records)
            failed_from, whole_batch = self._invoke(records)
            if failed_from is None:
                return
            if whole_batch and self._bisect and len(records) > 1:
                self.stats.retries += 1
                half = len(records) // 2
                self._deliver(records[:half])
                self._deliver(records[half:])
                return
            records = records[failed_from:]
            attempts += 1
            if 0 <= self._max_retries < attempts:
                self._give_up(records, "RetryAttemptsExhausted")
                return
            self.stats.retries += 1
            self._stop.wait(delay)
            delay = min(delay * 2, _MAX_RETRY_DELAY_SECONDS)

    def _expired_prefix(self, records: list[dict[str, Any]]) -> int:
        """How many leading records are older than the maximum record age (records are in order)."""
        if self._max_age < 0:
            return 0
        oldest_allowed = time.time() - self._max_age
        count = 0
        for record in records:
            if float(record["dynamodb"].get("ApproximateCreationDateTime", time.time())) >= oldest_allowed:
                break
            count += 1
        return count

    def _invoke(self, records: list[dict[str, Any]]) -> tuple[int | None, bool]:
        """(None, False) on success, else the index of the first record to retry and whether the
        invocation failed as a whole."""
        try:
            response = self._handler({"Records": records})
        except Exception as error:
            log.warning("%s: handler raised %r; the batch will be retried", self._name, error)
            return 0, True
        if not self._report_failures or not isinstance(response, Mapping):
            return None, False
        failures = response.get("batchItemFailures") or []
        if not failures:
            return None, False
        sequence_numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
        indexes = [
            sequence_numbers.index(f.get("itemIdentifier"))
            for f in failures
            if f.get("itemIdentifier") in sequence_numbers
        ]
        # An unknown identifier fails the whole batch in Lambda.
        return (min(indexes), False) if indexes else (0, True)

    def _give_up(self, records: list[dict[str, Any]], condition: str) -> None:
        self.stats.sent_to_destination += len(records)
        log.error("%s: %d records given up (%s)", self._name, len(records), condition)
        if self._on_failure is None:
            return
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        self._on_failure(
            {
                "requestContext": {"condition": condition, "approximateInvokeCount": 1},
                "DDBStreamBatchInfo": {
                    "shardId": self._shard_in_hand,
                    "startSequenceNumber": first["SequenceNumber"],
                    "endSequenceNumber": last["SequenceNumber"],
                    "batchSize": len(records),
                    "streamArn": self._stream_arn,
                },
            }
        )

    def _lambda_record(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """A dynamodbstreams record as Lambda hands it over (epoch seconds, the stream's ARN)."""
        change = lambda_change(raw["dynamodb"])
        return {
            "eventID": raw["eventID"],
            "eventName": raw["eventName"],
            "eventVersion": raw.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": raw.get("awsRegion", self._region),
            "dynamodb": change,
            "eventSourceARN": self._stream_arn,
        }


def lambda_change(change: Mapping[str, Any]) -> dict[str, Any]:
    """A dynamodbstreams record's `dynamodb` part as Lambda hands it over: images repaired, the creation
    time in epoch seconds."""
    change = dict(change)
    for image in ("NewImage", "OldImage"):
        if image in change:
            change[image] = repaired_image(change[image])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = int(created.astimezone(UTC).timestamp())
    return change


def _pattern(raw: str) -> Any:
    from moto.events.models import EventPattern, EventPatternParser  # EventBridge's matching rules

    return EventPattern(raw, EventPatternParser(raw).parse())


def sqs_destination(sqs: Any, queue_url: str) -> Callable[[dict[str, Any]], None]:
    """An on-failure destination that sends Lambda's invocation record to an SQS queue."""

    def send(record: dict[str, Any]) -> None:
        record = {**record, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))

    return send
