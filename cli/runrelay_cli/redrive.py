"""`runrelay redrive`: what ended in a dead-letter queue runs again, exactly once.

- ingest: messages of the ingest DLQ go back to the ingest queue. SQS gives a re-sent message a new
  message id, and a task spec without an `id` is keyed on its message id, so the first id travels
  along as the `runrelayMessageId` attribute, which the submitter prefers
  (`sqs_records.idempotency_message_id`): a redriven message makes the same taskUUIDs, so nothing
  accepted before runs again.
- results: each message of the results DLQ is Lambda's record of a stream batch given up
  (`DDBStreamBatchInfo`: stream, shard, first and last sequence number). Those stream records are read
  again (the stream keeps them 24 hours) and handed to the same `ResultsService` the ResultsFunction
  runs; it skips whatever was done (tally marks, job markers), so the redrive writes exactly the missing
  marks, events and results files. A message is deleted only once its batch went through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from runrelay.adapters.dynamodb.jobs import DynamoJobRepository
from runrelay.adapters.dynamodb.stream import table_changes
from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.adapters.eventbridge import EventBridgePublisher
from runrelay.adapters.s3_uploads import S3ObjectWriter
from runrelay.results_file import ResultsWriter
from runrelay.results_logic import ResultsService
from runrelay.sqs_records import REDRIVE_MESSAGE_ID_ATTRIBUTE
from runrelay_cli.errors import CliError

_SQS_BATCH = 10


@dataclass
class RedriveReport:
    moved: int = 0  # ingest messages sent back to the ingest queue
    batches: int = 0  # results DLQ messages whose stream batch went through
    records: int = 0
    tasks_final: int = 0
    jobs_completed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # why a results DLQ message stayed


def redrive_ingest(sqs: Any, dead_letter_queue_url: str, queue_url: str) -> int:
    """Move every message of the ingest DLQ back to the ingest queue; how many were moved."""
    moved = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=dead_letter_queue_url,
            MaxNumberOfMessages=_SQS_BATCH,
            WaitTimeSeconds=0,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return moved
        entries = []
        for number, message in enumerate(messages):
            attributes = dict(message.get("MessageAttributes") or {})
            attributes.setdefault(
                REDRIVE_MESSAGE_ID_ATTRIBUTE, {"DataType": "String", "StringValue": message["MessageId"]}
            )
            entries.append(
                {"Id": str(number), "MessageBody": message["Body"], "MessageAttributes": attributes}
            )
        sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if sent.get("Failed"):
            raise CliError(f"the ingest queue refused redriven messages (left in the DLQ): {sent['Failed']}")
        # Deleted only after the send: a crash in between sends a message twice, which its keys make harmless.
        sqs.delete_message_batch(
            QueueUrl=dead_letter_queue_url,
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
        )
        moved += len(messages)


class ResultsRedrive:
    def __init__(
        self, *, sqs: Any, streams: Any, dynamodb: Any, s3: Any, events: Any, table_name: str, bus_name: str
    ) -> None:
        self.sqs = sqs
        self.streams = streams
        self.service = ResultsService(
            DynamoJobRepository(table_name, dynamodb=dynamodb),
            ResultsWriter(DynamoTaskRepository(table_name, dynamodb=dynamodb), S3ObjectWriter(s3=s3)),
            EventBridgePublisher(bus_name, events_client=events),
        )

    def run(self, dead_letter_queue_url: str, report: RedriveReport) -> None:
        seen: set[str] = set()
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=dead_letter_queue_url,
                MaxNumberOfMessages=_SQS_BATCH,
                WaitTimeSeconds=0,
                VisibilityTimeout=300,
            ).get("Messages", [])
            fresh = [m for m in messages if m["MessageId"] not in seen]
            if not fresh:
                return
            for message in fresh:
                seen.add(message["MessageId"])
                if self._replay(message["Body"], report):
                    self.sqs.delete_message(
                        QueueUrl=dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )
                    report.batches += 1

    def _replay(self, body: str, report: RedriveReport) -> bool:
        try:
            info = json.loads(body)["DDBStreamBatchInfo"]
            records = list(self._records(info))
        except (KeyError, TypeError, ValueError) as error:
            report.left.append(f"not a stream batch record: {error!r}")
            return False
        except self.streams.exceptions.TrimmedDataAccessException:
            report.left.append(
                f"records {info['startSequenceNumber']}.. are past the stream's 24 h retention"
            )
            return False
        outcome = self.service.process(table_changes(records))
        report.records += len(records)
        report.tasks_final += outcome.tasks_final
        report.jobs_completed.extend(outcome.jobs_completed)
        if outcome.failed_sequence_number is not None:
            report.left.append(f"record {outcome.failed_sequence_number} failed again (see the error above)")
            return False
        return True

    def _records(self, info: dict[str, Any]) -> Any:
        """The batch's stream records, from its first to its last sequence number, in Lambda's shape."""
        first, last = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
        iterator = self.streams.get_shard_iterator(
            StreamArn=info["streamArn"],
            ShardId=info["shardId"],
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=info["startSequenceNumber"],
        )["ShardIterator"]
        while iterator:
            answer = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            for raw in answer.get("Records", []):
                number = int(raw["dynamodb"]["SequenceNumber"])
                if number > last:
                    return
                if number >= first:
                    yield raw
            if not answer.get("Records"):
                return
            iterator = answer.get("NextShardIterator")
