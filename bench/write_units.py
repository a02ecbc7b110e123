"""Benchmark 8: DynamoDB write and read units per task, end to end, on the local stack.

Every DynamoDB call of every function's worker asks for its consumed capacity (`ReturnConsumedCapacity:
INDEXES`, through `local/stack/aws_call_log.py` preloaded into the workers) while 1,000 small tasks go
from submit to final: the PENDING rows, Runware's webhooks, the results function's counting, results
file and events, and whatever the reconciler reads meanwhile. The sum over table and indexes, divided
by the tasks, is the figure; its split by function and operation is printed. Then the same for 1,000
tasks sent as 100 SQS messages of 10 (information: an SQS source has no job to count in).

DynamoDB Local reports a transaction's table writes at one unit per KB; AWS charges two (prepare and
commit), so they are doubled here (index writes are standard writes either way). DynamoDB reports
nothing for a call it refuses (a failed condition, a cancelled transaction), though it
charges it: those calls are counted and shown, and add one unit each to the figure (what a refused
write of an item under 1 KB costs). DynamoDB Local reports no capacity at all for BatchExecuteStatement
(the submitter's PartiQL INSERTs of task rows); AWS charges each INSERT as the PutItem of the same item,
so each item it wrote is put again into an empty copy of the table with its capacity asked, and those
units are the call's (a refused INSERT counts one unit, as above). Stream reads are not DynamoDB read
units (Lambda's stream polling is free) and are not counted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench import harness
from bench.stats import Check, Report

TASKS = 1_000
MESSAGE_SIZE = 10
_REFUSED = {"ConditionalCheckFailedException", "TransactionCanceledException"}
RECORDER = harness.ROOT / "local" / "stack" / "aws_call_log.py"
_TIMEOUT = 600.0  # seconds for a run's tasks to become final


def _clear(folder: Path) -> None:
    for path in folder.glob("*.jsonl"):
        path.unlink()


def _calls(folder: Path) -> list[dict[str, Any]]:
    from local.stack.aws_call_log import read_calls

    return [call for call in read_calls(folder) if call["service"] == "dynamodb"]


class PutItemMeter:
    """What DynamoDB charges to put an item, measured on an empty copy of the table it was written to."""

    def __init__(self, dynamodb: Any, copies: dict[str, str]) -> None:
        self.dynamodb = dynamodb
        self.copies = copies  # table name -> its empty copy

    def units(self, table_name: str, item: dict[str, Any]) -> float:
        from local.stack.aws_call_log import consumed_units

        answer = self.dynamodb.put_item(
            TableName=self.copies[table_name], Item=item, ReturnConsumedCapacity="INDEXES"
        )
        return consumed_units("PutItem", answer)["write"]


class Tally:
    """Units per (function, operation) over one run's calls."""

    def __init__(
        self, calls: list[dict[str, Any]], tasks: int, prefix: str, meter: PutItemMeter | None = None
    ) -> None:
        self.tasks = tasks
        self.write: dict[str, float] = defaultdict(float)
        self.read: dict[str, float] = defaultdict(float)
        self.count: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        for call in calls:
            name = f"{call['function'].removeprefix(prefix)} {call['operation']}"
            self.count[name] += 1
            capacity = call.get("capacity") or {}
            write = capacity.get("write", 0.0)
            if call["operation"] == "TransactWriteItems":
                write += write - capacity.get("index_write", 0.0)
            unmetered = call.get("unmetered")
            if unmetered:
                if meter is None:
                    raise RuntimeError(f"{name}: DynamoDB reported no units and there is no meter")
                write += sum(meter.units(item["TableName"], item["Item"]) for item in unmetered["items"])
                self.refused[name] += unmetered["refused"]
            self.write[name] += write
            self.read[name] += capacity.get("read", 0.0)
            if call.get("error") in _REFUSED:
                self.refused[name] += 1

    @property
    def write_per_task(self) -> float:
        return (sum(self.write.values()) + sum(self.refused.values())) / self.tasks

    @property
    def read_per_task(self) -> float:
        return sum(self.read.values()) / self.tasks

    def lines(self) -> dict[str, str]:
        return {
            name: (
                f"{self.count[name]} calls, {self.write[name] / self.tasks:.3f} WCU and "
                f"{self.read[name] / self.tasks:.3f} RCU per task"
                + (f", {self.refused[name]} refused" if self.refused[name] else "")
            )
            for name in sorted(self.count, key=lambda n: -(self.write[n] + self.read[n]))
        }


def empty_copy(dynamodb: Any, table_name: str) -> str:
    """A new table with the same keys and indexes as `table_name` (template.yaml's TasksTable)."""
    from local.stack.template_model import load_template, table_create_kwargs

    copy = f"{table_name}-meter"
    dynamodb.create_table(**table_create_kwargs(load_template(), "TasksTable", copy))
    return copy


def run(args: argparse.Namespace) -> Report:
    from local.net import wait_for
    from local.stack.aws_call_log import CAPACITY_ENV_VAR
    from local.stack.aws_call_log import ENV_VAR as CALL_LOG_ENV_VAR
    from local.stack.local_stack import LocalStack
    from local.stack.services import DynamoDBLocal, MotoServer
    from runrelay.adapters.dynamodb.inspection import TableInspector
    from runrelay.adapters.dynamodb.jobs import DynamoJobRepository
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository

    tasks = 200 if args.quick else TASKS
    with (
        tempfile.TemporaryDirectory() as scratch,
        DynamoDBLocal(jvm_options=()) as dynamodb,
        MotoServer() as moto,
        open(Path(scratch) / "functions.log", "w") as function_log,
    ):
        calls = Path(scratch) / "calls"
        stack = LocalStack(
            stack_name=f"units{uuid.uuid4().hex[:6]}",
            dynamodb_url=dynamodb.endpoint_url,
            moto_url=moto.endpoint_url,
            emulator_options={"time_scale": 0.01},
            state_file=None,
            function_log=function_log,
            extra_environment={
                "RUNRELAY_LOCAL_PRELOAD": str(RECORDER),
                CALL_LOG_ENV_VAR: str(calls),
                CAPACITY_ENV_VAR: "1",
            },
        )
        with stack:
            assert stack.clients is not None
            client = stack.clients.dynamodb
            endpoints = stack.endpoints
            store = DynamoTaskRepository(endpoints.table_name, dynamodb=client)
            jobs = DynamoJobRepository(endpoints.table_name, dynamodb=client)
            inspector = TableInspector(endpoints.table_name, dynamodb=client)
            prefix = f"{stack.stack_name}-"

            # A file of small one-result lines, as most files are: no `id`, so no ByCaller entry.
            _clear(calls)
            lines = "".join(
                json.dumps({"prompt": f"Summarise item {i} in one word."}) + "\n" for i in range(tasks)
            )
            key = f"{endpoints.input_prefix}units.jsonl"
            put = stack.clients.s3.put_object(Bucket=endpoints.bucket_name, Key=key, Body=lines.encode())
            source = f"s3://{endpoints.bucket_name}/{key}#{put['ETag'].strip(chr(34))}"

            def announced() -> bool:
                job = jobs.get(source)
                return job is not None and job.announced

            wait_for(announced, _TIMEOUT, "the file's job to be announced", interval=0.5)
            file_calls = _calls(calls)

            # The same number of tasks as SQS messages of 10 (no job: each final task is marked alone).
            _clear(calls)
            sent = []
            for start in range(0, tasks, MESSAGE_SIZE):
                body = [
                    {"prompt": f"Summarise message item {i}."} for i in range(start, start + MESSAGE_SIZE)
                ]
                answer = stack.clients.sqs.send_message(
                    QueueUrl=endpoints.ingest_queue_url, MessageBody=json.dumps(body)
                )
                sent.append(f"sqs:{answer['MessageId']}")

            def messages_done() -> bool:
                found = [task for source_id in sent for task in store.tasks_of_source(source_id)]
                if len(found) < tasks or not all(task.is_final for task in found):
                    return False
                return len(inspector.final_recorded([task.task_uuid for task in found])) == tasks

            wait_for(messages_done, _TIMEOUT, "every message's tasks to be final and marked", interval=0.5)
            time.sleep(2)  # the last stream batch's marks
            message_calls = _calls(calls)
            # Made only now: a new table while the stack runs would be one more stream on DynamoDB Local.
            meter = PutItemMeter(client, {endpoints.table_name: empty_copy(client, endpoints.table_name)})
            file_run = Tally(file_calls, tasks, prefix, meter)
            message_run = Tally(message_calls, tasks, prefix, meter)

    notes = {f"file: {name}": line for name, line in file_run.lines().items()}
    notes |= {f"messages: {name}": line for name, line in message_run.lines().items()}
    return Report(
        f"DynamoDB units per task, end to end ({tasks} small tasks, ReturnConsumedCapacity INDEXES)",
        [
            Check("WCU per small task of a file, end to end", file_run.write_per_task, 4.0, unit=" WCU",
                  subject=file_run.write_per_task),
            Check("RCU per small task of a file, end to end", file_run.read_per_task, 1.0, unit=" RCU",
                  subject=file_run.read_per_task),
            Check("WCU per small task of SQS messages of 10", message_run.write_per_task, 4.0, unit=" WCU",
                  subject=message_run.write_per_task, informational=True),
            Check("RCU per small task of SQS messages of 10", message_run.read_per_task, 1.0, unit=" RCU",
                  subject=message_run.read_per_task, informational=True),
        ],
        notes=notes,
        figures={"write_units_per_task": file_run.write_per_task,
                 "read_units_per_task": file_run.read_per_task},
    )  # fmt: skip


if __name__ == "__main__":
    harness.main(run)
