"""The local DynamoDB Streams event source: retries until the fault clears, bisection, record age."""

from __future__ import annotations

import time
from typing import Any

from local.stack.dynamodb_stream_poller import DynamoDBStreamPoller

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026"


class OneShardStream:
    """dynamodbstreams with one open shard holding `records` (served once, in order)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def describe_stream(self, **_: Any) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-1"}]}}

    def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": "0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        start = int(ShardIterator)
        batch = self.records[start : start + Limit]
        return {"Records": batch, "NextShardIterator": str(start + len(batch))}


def _record(number: int, created: float | None = None) -> dict[str, Any]:
    return {
        "eventID": str(number),
        "eventName": "MODIFY",
        "dynamodb": {
            "Keys": {"pk": {"S": f"ROW#{number}"}},
            "SequenceNumber": f"{number:021d}",
            "ApproximateCreationDateTime": created if created is not None else time.time(),
        },
    }


def _poller(
    stream: OneShardStream, handler: Any, sent: list[dict[str, Any]], **options: Any
) -> DynamoDBStreamPoller:
    return DynamoDBStreamPoller(
        stream,
        ARN,
        handler,
        on_failure=sent.append,
        retry_delay_seconds=0.01,
        report_batch_item_failures=True,
        **options,
    )


def _keys(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]


def test_an_outage_is_retried_until_it_clears_with_no_retry_limit() -> None:
    seen: list[list[str]] = []
    outage_ends = time.monotonic() + 0.5

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        seen.append(_keys(event))
        if time.monotonic() < outage_ends:
            raise RuntimeError("ProvisionedThroughputExceededException")
        return {"batchItemFailures": []}

    sent: list[dict[str, Any]] = []
    poller = _poller(OneShardStream([_record(i) for i in range(3)]), handler, sent)
    poller._discover_shards()
    assert poller._poll(poller._ready_shards()[0])
    assert sent == []
    assert len(seen) > 3  # more attempts than the old fixed budget, and the last one succeeded
    assert seen[-1] == ["ROW#0", "ROW#1", "ROW#2"]


def test_bisection_isolates_a_poison_record_and_delivers_the_rest() -> None:
    delivered: list[str] = []

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        if "ROW#2" in _keys(event):
            raise ValueError("a bug")
        delivered.extend(_keys(event))
        return {"batchItemFailures": []}

    sent: list[dict[str, Any]] = []
    poller = _poller(
        OneShardStream([_record(i) for i in range(5)]),
        handler,
        sent,
        maximum_retry_attempts=2,
        bisect_batch_on_function_error=True,
    )
    poller._discover_shards()
    poller._poll(poller._ready_shards()[0])
    assert delivered == ["ROW#0", "ROW#1", "ROW#3", "ROW#4"]
    ((info,),) = [[s["DDBStreamBatchInfo"]] for s in sent]
    assert (info["startSequenceNumber"], info["batchSize"]) == (f"{2:021d}", 1)
    assert sent[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"


def test_records_past_the_maximum_age_go_to_the_destination() -> None:
    def handler(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("still failing")

    sent: list[dict[str, Any]] = []
    old = time.time() - 120
    poller = _poller(OneShardStream([_record(1, created=old)]), handler, sent, maximum_record_age_seconds=60)
    poller._discover_shards()
    poller._poll(poller._ready_shards()[0])
    assert [s["requestContext"]["condition"] for s in sent] == ["MaximumRecordAgeExceeded"]
