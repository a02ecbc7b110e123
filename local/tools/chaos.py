"""`make chaos`: many tasks through the local stack while Runware and AWS misbehave, then the proof.

Tasks (numberResults 1-4) go in as S3 .jsonl files and SQS messages. The emulator throttles submits
(429/503), duplicates, delays and drops webhooks and fails a share of tasks chosen by taskUUID
hash; the reconciler runs every second with a small OverdueAfterSeconds. On AWS's side the functions' own
calls meet throttling, 5xx, resets, lost responses, transaction conflicts, refused PutEvents entries and
broken S3 bodies (`local/stack/aws_faults.py`, loaded into every worker process), and one service goes down
for a while (DynamoDB for 60 s by default). Afterwards every expected task is read back and checked:
lost (missing, not final, results missing), duplicated (a result stored twice), re-run (the emulator
executed a taskUUID more than once), wrong outcome (COMPLETED/FAILED not as the emulator decided); every
final task must be recorded in its tally and have a TaskCompleted event (repeats only with the same eventKey),
every input file its results file and JobCompleted, and both dead-letter queues must be empty. Exit
status 0 only if all of that holds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from local.runware_emulator import FaultConfig, task_fails
from local.stack.aws_faults import ENV_VAR as AWS_FAULTS_ENV_VAR
from local.stack.aws_faults import AwsFaults, count_faults
from local.stack.event_tap import EventTap
from local.stack.local_stack import LocalStack
from runrelay.adapters.dynamodb.inspection import TableInspector
from runrelay.domain.events import JOB_COMPLETED, TASK_COMPLETED
from runrelay.domain.tasks import TaskRecord, TaskStatus
from runrelay.results_file import results_key
from runrelay.task_ids import result_task_uuid, task_uuid_for

STATE_DIR = Path(__file__).resolve().parents[2] / ".runrelay"
FUNCTION_LOG = STATE_DIR / "chaos-functions.log"
AWS_FAULTS_PRELOAD = Path(__file__).resolve().parents[1] / "stack" / "aws_faults.py"

# The mix: 5% 429/503 at submit, 10% duplicate and 10% late webhooks, 2% dropped, 3% of tasks
# failing at Runware. Late webhooks arrive after OverdueAfterSeconds, so they race the reconciler. The
# emulator's reordering applies to the results of one Runware task; runrelay sends one result per task,
# so a line's results arrive in any order anyway (late and duplicate deliveries shuffle them).
CHAOS_FAULTS = FaultConfig(
    rate_429=0.025,
    rate_503=0.025,
    retry_after=0,  # Retry-After is whole seconds and never scaled; 0 keeps the run short
    task_error_rate=0.03,
    webhook_duplicate_rate=0.10,
    webhook_late_rate=0.10,
    late_delay=150.0,  # x time_scale 0.02 = 3 s, past the 2 s overdue threshold
    webhook_drop_rate=0.02,
)

# Per HTTP attempt, below botocore's retries (standard mode): most are absorbed there; they get through
# once an outage has drained botocore's retry quota; transaction conflicts, refused PutEvents entries
# and broken bodies always reach the code.
CHAOS_AWS_FAULTS = AwsFaults(
    throttle=0.03,
    server_error=0.03,
    reset=0.02,
    lost_response=0.03,
    transaction_conflict=0.10,
    put_events_refused=0.20,
    broken_body=0.10,
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
    aws_faults: AwsFaults | None = CHAOS_AWS_FAULTS
    outage_service: str = "dynamodb"  # every call to it fails for `outage_seconds` (0: no outage)
    outage_start_seconds: float = 20.0  # after the stack is up
    outage_seconds: float = 60.0

    @property
    def sqs_retry_delay_seconds(self) -> int:
        """Locally a failed message returns after this, not the queue's visibility timeout; its
        maxReceiveCount (5) times this must outlast an outage, as 5 x 720 s does on AWS."""
        return max(1, math.ceil(self.outage_seconds / 3))


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
    results_dlq_depth: int = 0
    missing_marks: int = 0
    missing_task_events: int = 0
    mismatched_event_keys: int = 0
    missing_results_files: int = 0
    missing_job_events: int = 0
    files: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    aws_faults: dict[str, int] = field(default_factory=dict)
    webhooks: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == self.duplicated == self.rerun == self.wrong_outcome == 0
            and self.unexpected_rows == self.dlq_depth == self.results_dlq_depth == 0
            and self.missing_marks == self.missing_task_events == self.mismatched_event_keys == 0
            and self.missing_results_files == self.missing_job_events == 0
            and self.completed + self.failed == self.tasks
        )

    def render(self) -> str:
        faults = ", ".join(f"{kind} {count}" for kind, count in sorted(self.faults.items())) or "none"
        hooks = ", ".join(f"{kind} {count}" for kind, count in sorted(self.webhooks.items()) if count)
        aws = ", ".join(f"{kind} {count}" for kind, count in sorted(self.aws_faults.items())) or "none"
        lines = [
            f"tasks            {self.tasks}",
            f"completed        {self.completed}",
            f"failed           {self.failed} (the emulator decided {self.expected_failed})",
            f"faults injected  {faults}",
            f"AWS faults       {aws}",
            f"webhooks         {hooks}",
            f"lost             {self.lost}",
            f"duplicated       {self.duplicated}",
            f"re-run           {self.rerun}",
            f"wrong outcome    {self.wrong_outcome}",
            f"unexpected rows  {self.unexpected_rows}",
            f"DLQ depth        ingest {self.dlq_depth}, results {self.results_dlq_depth}",
            f"unrecorded       {self.missing_marks}",
            f"TaskCompleted    missing {self.missing_task_events}, "
            f"wrong eventKey {self.mismatched_event_keys}",
            f"input files      {self.files}: results file missing {self.missing_results_files}, "
            f"JobCompleted missing {self.missing_job_events}",
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


def send_workload(
    stack: LocalStack, settings: ChaosSettings, run: str, input_keys: list[str] | None = None
) -> dict[str, ExpectedTask]:
    """Upload .jsonl files and send SQS messages; the taskUUIDs they must become, computed independently.
    The files' keys are appended to `input_keys`."""
    assert stack.clients is not None
    endpoints = stack.endpoints
    rng = random.Random(settings.seed)
    s3_tasks = round(settings.tasks * settings.s3_share)
    expected: dict[str, ExpectedTask] = {}

    def expect(key: str, spec: dict[str, Any]) -> None:
        task_uuid = str(task_uuid_for(key))
        wanted = int(spec["numberResults"])
        # Each result is its own Runware task: the line fails if any of them does.
        fails = any(task_fails(result_task_uuid(task_uuid, slot), settings.faults) for slot in range(wanted))
        expected[task_uuid] = ExpectedTask(task_uuid, wanted, fails)

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
        if input_keys is not None:
            input_keys.append(key)
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
def inspector(stack: LocalStack) -> TableInspector:
    assert stack.clients is not None
    return TableInspector(stack.endpoints.table_name, dynamodb=stack.clients.dynamodb)


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


def wait_until_settled(
    stack: LocalStack, expected_count: int, timeout: float, progress: Any = None, tap: EventTap | None = None
) -> None:
    """Until the ingest queue is drained, no task is open, every expected row exists and Runware has
    nothing left to deliver (late duplicates must land before the counts are taken)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tap is not None:
            tap.drain()  # moto's SendMessage counts the queue's messages: a long queue slows every event
        queued = _queue_depth(stack, stack.endpoints.ingest_queue_url)
        open_tasks = inspector(stack).count_open()
        executed = int(stack.emulator.stats()["tasks"])
        if progress:
            submit = stack.pollers.get("SubmitFunction.Ingest")
            polled = (
                f" (submit batches {submit.stats.batches}, messages {submit.stats.messages})"
                if submit
                else ""
            )
            progress(
                f"queued messages {queued}{polled}, open tasks {open_tasks}, executed at Runware {executed}"
            )
        if queued == 0 and open_tasks == 0:
            all_rows = inspector(stack).count_tasks() >= expected_count
            if all_rows and stack.emulator.wait_for_deliveries(timeout=60):
                return
            if _queue_depth(stack, stack.endpoints.dead_letter_queue_url):
                return  # what is left sits in the ingest DLQ: nothing more will come (reported as lost)
        time.sleep(5.0)  # counting the open tasks is a scan: not too often, it competes with the run


def verify(
    stack: LocalStack, expected: dict[str, ExpectedTask], report: ChaosReport, rows: dict[str, TaskRecord]
) -> None:
    """Fill the report's counters from the table's task rows (by taskUUID), the emulator's stats and
    the DLQs."""
    stats = stack.emulator.stats()
    executions: dict[str, int] = {k.lower(): v for k, v in stats["executions"].items()}

    def problem(text: str) -> None:
        if len(report.examples) < 10:
            report.examples.append(text)

    for task_uuid, want in expected.items():
        row = rows.get(task_uuid)
        status = row.status if row else None
        if row is None or not row.is_final:
            report.lost += 1
            problem(f"{task_uuid} lost: {status or 'no row'}")
            continue
        report.expected_failed += want.fails
        results = row.results
        distinct = {(r.get("text"), r.get("seed"), r.get("payloadRef")) for r in results}
        if len(distinct) < len(results) or row.result_count > len(distinct):
            report.duplicated += 1
            problem(f"{task_uuid} stored {len(results)} results, {len(distinct)} distinct")
        if status == TaskStatus.COMPLETED:
            report.completed += 1
            if want.fails:
                report.wrong_outcome += 1
                problem(f"{task_uuid} COMPLETED but the emulator failed it")
            elif not row.result_count == len(distinct) == want.number_results:
                report.lost += 1
                problem(f"{task_uuid} COMPLETED with {len(distinct)}/{want.number_results} results")
        elif status == TaskStatus.FAILED:
            report.failed += 1
            if not want.fails:
                report.wrong_outcome += 1
                problem(f"{task_uuid} FAILED ({row.error}) but the emulator ran it")
        else:
            report.wrong_outcome += 1
            problem(f"{task_uuid} {status}: {row.error}")
        for slot in range(want.number_results):
            runware_uuid = result_task_uuid(task_uuid, slot)
            if executions.get(runware_uuid, 0) != 1:
                problem(f"{task_uuid} result {slot} executed {executions.get(runware_uuid, 0)} times")
    report.rerun = sum(count > 1 for count in executions.values())
    report.unexpected_rows = len(set(rows) - set(expected))
    report.faults = dict(stats["faults"])
    report.webhooks = {k: int(v) for k, v in stats["webhooks"].items()}
    report.dlq_depth = _queue_depth(stack, stack.endpoints.dead_letter_queue_url)
    report.results_dlq_depth = _queue_depth(stack, stack.endpoints.results_dead_letter_queue_url)


@dataclass
class Aftermath:
    """What the results stream must have made of the final tasks and the input files."""

    missing_marks: list[str]
    missing_task_events: list[str]
    mismatched_event_keys: list[str]
    missing_results_files: list[str]
    missing_job_events: list[str]

    @property
    def complete(self) -> bool:
        return not (
            self.missing_marks
            or self.missing_task_events
            or self.mismatched_event_keys
            or self.missing_results_files
            or self.missing_job_events
        )


def read_aftermath(
    stack: LocalStack, final_tasks: list[str], input_keys: list[str], tap: EventTap
) -> Aftermath:
    assert stack.clients is not None
    s3, bucket = stack.clients.s3, stack.endpoints.bucket_name
    marked = inspector(stack).final_recorded(final_tasks)
    events = tap.drain()
    task_events: dict[str, list[str]] = {}
    job_keys: set[str] = set()
    for event in events:
        detail = event.get("detail", {})
        if event.get("detail-type") == TASK_COMPLETED:
            task_events.setdefault(str(detail.get("taskUUID")), []).append(str(detail.get("eventKey")))
        elif event.get("detail-type") == JOB_COMPLETED:
            job_keys.add(str(detail.get("key")))
    missing_files = []
    for key in input_keys:
        try:
            s3.head_object(Bucket=bucket, Key=results_key(key))
        except s3.exceptions.ClientError:
            missing_files.append(key)
    return Aftermath(
        missing_marks=[t for t in final_tasks if t not in marked],
        missing_task_events=[t for t in final_tasks if t not in task_events],
        mismatched_event_keys=[
            t for t, keys in task_events.items() if any(k != f"{TASK_COMPLETED}#{t}" for k in keys)
        ],
        missing_results_files=missing_files,
        missing_job_events=[key for key in input_keys if key not in job_keys],
    )


def wait_for_aftermath(
    stack: LocalStack,
    final_tasks: list[str],
    input_keys: list[str],
    tap: EventTap,
    timeout: float,
    progress: Any,
) -> Aftermath:
    """The stream consumer may still be retrying after an outage: wait until it caught up."""
    deadline = time.monotonic() + timeout
    while True:
        aftermath = read_aftermath(stack, final_tasks, input_keys, tap)
        if aftermath.complete or time.monotonic() > deadline:
            return aftermath
        if progress:
            progress(
                f"results stream: marks missing {len(aftermath.missing_marks)}, "
                f"task events missing {len(aftermath.missing_task_events)}, "
                f"results files missing {len(aftermath.missing_results_files)}"
            )
        time.sleep(2.0)


# ---------------------------------------------------------------------- the run
def chaos_stack(
    settings: ChaosSettings, *, aws_fault_log: Path | None = None, **stack_options: Any
) -> LocalStack:
    """A local stack set up for a chaos run (pass dynamodb_url/moto_url to reuse running services)."""
    extra_environment = {}
    if settings.aws_faults is not None and aws_fault_log is not None:
        faults = AwsFaults(
            **{**asdict(settings.aws_faults), "seed": settings.seed, "log_file": str(aws_fault_log)}
        )
        if settings.outage_seconds > 0:
            faults = faults.with_outage(
                settings.outage_service, settings.outage_start_seconds, settings.outage_seconds
            )
        extra_environment = {
            "RUNRELAY_LOCAL_PRELOAD": str(AWS_FAULTS_PRELOAD),
            AWS_FAULTS_ENV_VAR: faults.to_env(),
        }
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
        "retry_delay_seconds": settings.sqs_retry_delay_seconds,
        "batching_window_cap_seconds": 0.2,
        "runware_api_url": None,
        "state_file": None,
        "extra_environment": extra_environment,
        "long_running": True,
    }
    options.update(stack_options)
    return LocalStack(**options)


def run_chaos(settings: ChaosSettings, *, progress: Any = None, **stack_options: Any) -> ChaosReport:
    """Start a stack, send `settings.tasks` tasks, wait for them to settle, verify; the stack is stopped."""
    started = time.monotonic()
    report = ChaosReport(tasks=settings.tasks)
    with tempfile.TemporaryDirectory(prefix="runrelay-chaos-") as scratch:
        fault_log = Path(scratch) / "aws-faults.log"
        with chaos_stack(settings, aws_fault_log=fault_log, **stack_options) as stack:
            assert stack.clients is not None
            tap = EventTap(stack.clients.sqs, stack.clients.events, stack.endpoints.event_bus_name)
            run = uuid.uuid4().hex[:6]
            input_keys: list[str] = []
            expected = send_workload(stack, settings, run, input_keys)
            wait_until_settled(stack, len(expected), settings.timeout_seconds, progress, tap)
            rows = {task.task_uuid: task for task in inspector(stack).all_tasks()}
            final_tasks = [uuid for uuid, task in rows.items() if uuid in expected and task.is_final]
            left = max(60.0, settings.timeout_seconds - (time.monotonic() - started))
            aftermath = wait_for_aftermath(stack, final_tasks, input_keys, tap, left, progress)
            verify(stack, expected, report, rows)
            report.files = len(input_keys)
            report.missing_marks = len(aftermath.missing_marks)
            report.missing_task_events = len(aftermath.missing_task_events)
            report.mismatched_event_keys = len(aftermath.mismatched_event_keys)
            report.missing_results_files = len(aftermath.missing_results_files)
            report.missing_job_events = len(aftermath.missing_job_events)
            for example in (aftermath.missing_marks + aftermath.missing_task_events)[:3]:
                report.examples.append(f"{example}: not recorded in its tally, or TaskCompleted missing")
            report.aws_faults = count_faults(str(fault_log))
    report.wall_seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.tools.chaos", description=__doc__)
    parser.add_argument("--tasks", type=int, default=ChaosSettings.tasks)
    parser.add_argument("--timeout", type=float, default=ChaosSettings.timeout_seconds)
    parser.add_argument("--seed", type=int, default=ChaosSettings.seed)
    parser.add_argument("--overdue", type=int, default=ChaosSettings.overdue_after_seconds)
    parser.add_argument("--log-level", default=ChaosSettings.log_level)
    parser.add_argument("--no-aws-faults", action="store_true", help="Runware-side faults only")
    parser.add_argument(
        "--outage",
        default=f"{ChaosSettings.outage_service}:{ChaosSettings.outage_start_seconds:g}:{ChaosSettings.outage_seconds:g}",
        metavar="SERVICE:START:SECONDS",
        help="a window in which every call of the functions to SERVICE fails (dynamodb, s3, sqs, events, "
        "secretsmanager), START seconds after the stack is up; SECONDS 0 for none",
    )
    args = parser.parse_args(argv)
    service, start, seconds = args.outage.split(":")
    settings = ChaosSettings(
        tasks=args.tasks,
        timeout_seconds=args.timeout,
        seed=args.seed,
        overdue_after_seconds=args.overdue,
        log_level=args.log_level,
        aws_faults=None if args.no_aws_faults else CHAOS_AWS_FAULTS,
        outage_service=service,
        outage_start_seconds=float(start),
        outage_seconds=0.0 if args.no_aws_faults else float(seconds),
    )
    aws = "none" if settings.aws_faults is None else asdict(settings.aws_faults)
    print(f"chaos: {settings.tasks} tasks, Runware faults {settings.faults.to_dict()}", flush=True)
    print(f"  AWS faults per attempt {aws}", flush=True)
    if settings.outage_seconds:
        print(
            f"  {settings.outage_service} outage for {settings.outage_seconds:g} s from "
            f"{settings.outage_start_seconds:g} s after the stack is up",
            flush=True,
        )
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
