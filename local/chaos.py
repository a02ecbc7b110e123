"""`make chaos`: many tasks through the local stack while the Runware emulator misbehaves, then the proof.

Tasks (numberResults 1-4) go in as S3 .jsonl files and SQS messages. The emulator throttles submits
(429/503), duplicates, delays, reorders and drops webhooks and fails a share of tasks chosen by taskUUID
hash; the reconciler runs every second with a small OverdueAfterSeconds. Afterwards every expected task
is read back and checked: lost (missing, not final, results missing), duplicated (a result stored twice),
re-run (the emulator executed a taskUUID more than once), wrong outcome (COMPLETED/FAILED not as the
emulator decided) and the DLQ depth. Exit status 0 only if all of those are zero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.runware_emulator import FaultConfig, task_fails
from local.stack import LocalStack
from runrelay.task_ids import task_uuid_for
from runrelay.task_store import FINAL_STATUSES, OPEN_TASKS_INDEX, TASK_SK, TaskStatus, from_dynamo

FUNCTION_LOG = Path(__file__).resolve().parent.parent / ".runrelay" / "chaos-functions.log"

# The mix: 5% 429/503 at submit, 10% duplicate, 10% late and 10% reordered webhooks, 2% dropped,
# 3% of tasks failing at Runware. Late webhooks arrive after OverdueAfterSeconds, so they race the reconciler.
CHAOS_FAULTS = FaultConfig(
    rate_429=0.025,
    rate_503=0.025,
    retry_after=0,  # Retry-After is whole seconds and never scaled; 0 keeps the run short
    task_error_rate=0.03,
    webhook_duplicate_rate=0.10,
    webhook_late_rate=0.10,
    late_delay=150.0,  # x time_scale 0.02 = 3 s, past the 2 s overdue threshold
    webhook_reorder_rate=0.10,
    webhook_drop_rate=0.02,
)


@dataclass(frozen=True)
class ChaosSettings:
    tasks: int = 10_000
    s3_share: float = 0.5  # share of tasks sent as .jsonl lines; the rest as SQS messages
    lines_per_file: int = 500
    max_specs_per_message: int = 10
    faults: FaultConfig = CHAOS_FAULTS
    time_scale: float = 0.02
    overdue_after_seconds: int = 2
    reconcile_period_seconds: float = 1.0
    webhook_workers: int = 16
    log_level: str = "WARNING"  # the functions' INFO lines cost CPU that the run needs
    timeout_seconds: float = 1800.0
    seed: int = 7


@dataclass(frozen=True)
class ExpectedTask:
    task_uuid: str
    number_results: int
    fails: bool


@dataclass
class ChaosReport:
    tasks: int
    completed: int = 0
    failed: int = 0
    expected_failed: int = 0
    lost: int = 0
    duplicated: int = 0
    rerun: int = 0
    wrong_outcome: int = 0
    unexpected_rows: int = 0
    dlq_depth: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    webhooks: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == self.duplicated == self.rerun == self.wrong_outcome == 0
            and self.unexpected_rows == self.dlq_depth == 0
            and self.completed + self.failed == self.tasks
        )

    def render(self) -> str:
        faults = ", ".join(f"{kind} {count}" for kind, count in sorted(self.faults.items())) or "none"
        hooks = ", ".join(f"{kind} {count}" for kind, count in sorted(self.webhooks.items()) if count)
        lines = [
            f"tasks            {self.tasks}",
            f"completed        {self.completed}",
            f"failed           {self.failed} (the emulator decided {self.expected_failed})",
            f"faults injected  {faults}",
            f"webhooks         {hooks}",
            f"lost             {self.lost}",
            f"duplicated       {self.duplicated}",
            f"re-run           {self.rerun}",
            f"wrong outcome    {self.wrong_outcome}",
            f"unexpected rows  {self.unexpected_rows}",
            f"DLQ depth        {self.dlq_depth}",
            f"wall time        {self.wall_seconds:.1f} s",
        ]
        lines.extend(f"  e.g. {example}" for example in self.examples)
        lines.append("PASS" if self.ok else "FAIL")
        return "\n".join(lines)


# ---------------------------------------------------------------------- the workload
def _spec(rng: random.Random, run: str, index: int, with_id: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "prompt": f"chaos {run} task {index}: say something short.",
        "numberResults": rng.randint(1, 4),
        "settings": {"maxTokens": 48},
    }
    if with_id:
        spec["id"] = f"chaos-{run}-{index}"
    return spec


def _message_sizes(total: int, largest: int, rng: random.Random) -> Iterator[int]:
    while total > 0:
        size = min(total, rng.randint(1, largest))
        total -= size
        yield size


def send_workload(stack: LocalStack, settings: ChaosSettings, run: str) -> dict[str, ExpectedTask]:
    """Upload .jsonl files and send SQS messages; the taskUUIDs they must become, computed independently."""
    assert stack.clients is not None
    endpoints = stack.endpoints
    rng = random.Random(settings.seed)
    s3_tasks = round(settings.tasks * settings.s3_share)
    expected: dict[str, ExpectedTask] = {}

    def expect(key: str, spec: dict[str, Any]) -> None:
        task_uuid = str(task_uuid_for(key))
        fails = task_fails(task_uuid, settings.faults)
        expected[task_uuid] = ExpectedTask(task_uuid, int(spec["numberResults"]), fails)

    index = 0
    for file_number, start in enumerate(range(0, s3_tasks, settings.lines_per_file)):
        specs = [
            _spec(rng, run, index + i, False) for i in range(min(settings.lines_per_file, s3_tasks - start))
        ]
        index += len(specs)
        key = f"{endpoints.input_prefix}chaos-{run}-{file_number}.jsonl"
        body = "".join(json.dumps(spec) + "\n" for spec in specs).encode()
        etag = stack.clients.s3.put_object(Bucket=endpoints.bucket_name, Key=key, Body=body)["ETag"].strip(
            '"'
        )
        for line, spec in enumerate(specs, start=1):
            expect(f"s3://{endpoints.bucket_name}/{key}#{etag}:{line}", spec)

    entries: list[tuple[str, list[dict[str, Any]]]] = []
    for size in _message_sizes(settings.tasks - s3_tasks, settings.max_specs_per_message, rng):
        # Half the messages carry caller ids, half rely on the message id as the idempotency key.
        with_ids = rng.random() < 0.5
        specs = [_spec(rng, run, index + i, with_ids) for i in range(size)]
        index += size
        entries.append((str(len(entries)), specs))
    for start in range(0, len(entries), 10):
        batch = entries[start : start + 10]
        bodies = {entry_id: specs[0] if len(specs) == 1 else specs for entry_id, specs in batch}
        sent = stack.clients.sqs.send_message_batch(
            QueueUrl=endpoints.ingest_queue_url,
            Entries=[{"Id": entry_id, "MessageBody": json.dumps(body)} for entry_id, body in bodies.items()],
        )
        if sent.get("Failed"):
            raise RuntimeError(f"SQS refused messages: {sent['Failed']}")
        message_ids = {ok["Id"]: ok["MessageId"] for ok in sent["Successful"]}
        for entry_id, specs in batch:
            for position, spec in enumerate(specs):
                key = f"id:{spec['id']}" if "id" in spec else f"sqs:{message_ids[entry_id]}:{position}"
                expect(key, spec)
    return expected


# ---------------------------------------------------------------------- reading the table
def scan_tasks(stack: LocalStack) -> Iterator[dict[str, Any]]:
    """Every task item of the stack's table (a Scan: fine for a test tool, never done by the product)."""
    assert stack.clients is not None
    pages = stack.clients.dynamodb.get_paginator("scan").paginate(
        TableName=stack.endpoints.table_name, ConsistentRead=True
    )
    for page in pages:
        for item in page.get("Items", []):
            if item["sk"]["S"] == TASK_SK:  # the table also holds other records (JOB#...)
                yield from_dynamo(item)


def _open_task_count(stack: LocalStack) -> int:
    """Tasks still PENDING/SUBMITTED, counted on the sparse index (cheap while the run goes on)."""
    assert stack.clients is not None
    total = 0
    pages = stack.clients.dynamodb.get_paginator("scan").paginate(
        TableName=stack.endpoints.table_name, IndexName=OPEN_TASKS_INDEX, Select="COUNT"
    )
    for page in pages:
        total += int(page["Count"])
    return total


def _queue_depth(stack: LocalStack, queue_url: str) -> int:
    assert stack.clients is not None
    attributes = stack.clients.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def wait_until_settled(stack: LocalStack, expected_count: int, timeout: float, progress: Any = None) -> None:
    """Until the ingest queue is drained, no task is open, every expected row exists and Runware has
    nothing left to deliver (late duplicates must land before the counts are taken)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = _queue_depth(stack, stack.endpoints.ingest_queue_url)
        open_tasks = _open_task_count(stack)
        executed = int(stack.emulator.stats()["tasks"])
        if progress:
            progress(f"queued messages {queued}, open tasks {open_tasks}, executed at Runware {executed}")
        if queued == 0 and open_tasks == 0:
            rows = sum(1 for _ in scan_tasks(stack))
            if rows >= expected_count and stack.emulator.wait_for_deliveries(timeout=60):
                return
        time.sleep(2.0)


def verify(stack: LocalStack, expected: dict[str, ExpectedTask], report: ChaosReport) -> None:
    """Fill the report's counters from the table, the emulator's stats and the DLQ."""
    rows = {item["taskUUID"]: item for item in scan_tasks(stack)}
    stats = stack.emulator.stats()
    executions: dict[str, int] = {k.lower(): v for k, v in stats["executions"].items()}

    def problem(text: str) -> None:
        if len(report.examples) < 10:
            report.examples.append(text)

    for task_uuid, want in expected.items():
        row = rows.get(task_uuid)
        status = row["status"] if row else None
        if row is None or status not in FINAL_STATUSES:
            report.lost += 1
            problem(f"{task_uuid} lost: {status or 'no row'}")
            continue
        report.expected_failed += want.fails
        results = list((row.get("results") or {}).values())
        distinct = {(r.get("text"), r.get("seed"), r.get("payloadRef")) for r in results}
        if len(distinct) < len(results) or int(row.get("resultCount", 0)) > len(distinct):
            report.duplicated += 1
            problem(f"{task_uuid} stored {len(results)} results, {len(distinct)} distinct")
        if status == TaskStatus.COMPLETED:
            report.completed += 1
            if want.fails:
                report.wrong_outcome += 1
                problem(f"{task_uuid} COMPLETED but the emulator failed it")
            elif not int(row["resultCount"]) == len(distinct) == want.number_results:
                report.lost += 1
                problem(f"{task_uuid} COMPLETED with {len(distinct)}/{want.number_results} results")
        elif status == TaskStatus.FAILED:
            report.failed += 1
            if not want.fails:
                report.wrong_outcome += 1
                problem(f"{task_uuid} FAILED ({row.get('error')}) but the emulator ran it")
        else:
            report.wrong_outcome += 1
            problem(f"{task_uuid} {status}: {row.get('error')}")
        if executions.get(task_uuid, 0) != 1:
            problem(f"{task_uuid} executed {executions.get(task_uuid, 0)} times")
    report.rerun = sum(count > 1 for count in executions.values())
    report.unexpected_rows = len(set(rows) - set(expected))
    report.faults = dict(stats["faults"])
    report.webhooks = {k: int(v) for k, v in stats["webhooks"].items()}
    report.dlq_depth = _queue_depth(stack, stack.endpoints.dead_letter_queue_url)


# ---------------------------------------------------------------------- the run
def chaos_stack(settings: ChaosSettings, **stack_options: Any) -> LocalStack:
    """A local stack set up for a chaos run (pass dynamodb_url/moto_url to reuse running services)."""
    options: dict[str, Any] = {
        "stack_name": f"chaos{uuid.uuid4().hex[:8]}",
        "emulator_options": {
            "faults": settings.faults,
            "time_scale": settings.time_scale,
            "webhook_shape": "mixed",
            "seed": settings.seed,
            "webhook_workers": settings.webhook_workers,
        },
        "parameter_overrides": {
            "OverdueAfterSeconds": str(settings.overdue_after_seconds),
            "LogLevel": settings.log_level,
        },
        "schedule_period_seconds": settings.reconcile_period_seconds,
        "retry_delay_seconds": 1,
        "batching_window_cap_seconds": 0.2,
        "runware_api_url": None,
        "state_file": None,
    }
    options.update(stack_options)
    return LocalStack(**options)


def run_chaos(settings: ChaosSettings, *, progress: Any = None, **stack_options: Any) -> ChaosReport:
    """Start a stack, send `settings.tasks` tasks, wait for them to settle, verify; the stack is stopped."""
    started = time.monotonic()
    report = ChaosReport(tasks=settings.tasks)
    with chaos_stack(settings, **stack_options) as stack:
        run = uuid.uuid4().hex[:6]
        expected = send_workload(stack, settings, run)
        wait_until_settled(stack, len(expected), settings.timeout_seconds, progress)
        verify(stack, expected, report)
    report.wall_seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.chaos", description=__doc__)
    parser.add_argument("--tasks", type=int, default=ChaosSettings.tasks)
    parser.add_argument("--timeout", type=float, default=ChaosSettings.timeout_seconds)
    parser.add_argument("--seed", type=int, default=ChaosSettings.seed)
    parser.add_argument("--overdue", type=int, default=ChaosSettings.overdue_after_seconds)
    parser.add_argument("--log-level", default=ChaosSettings.log_level)
    args = parser.parse_args(argv)
    settings = ChaosSettings(
        tasks=args.tasks,
        timeout_seconds=args.timeout,
        seed=args.seed,
        overdue_after_seconds=args.overdue,
        log_level=args.log_level,
    )
    print(f"chaos: {settings.tasks} tasks, faults {settings.faults.to_dict()}", flush=True)
    FUNCTION_LOG.parent.mkdir(exist_ok=True)
    last = [0.0]

    def progress(line: str) -> None:
        if time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            print(f"  {line}", file=sys.stderr, flush=True)

    # The functions' log streams (JSON lines, EMF metrics, START/END/REPORT) go to a file.
    with FUNCTION_LOG.open("w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        report = run_chaos(settings, progress=progress, function_log=log)
    print(report.render())
    print(f"function logs: {FUNCTION_LOG}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
