"""Where DynamoDB Local spends a write: a diagnostic for benchmarks 4 and 5 (not in `make bench`).

DynamoDB Local answers HTTP on a pool of Jetty threads, but applies every request to its SQLite database
on one thread (sqlite4java's `SQLiteQueue`). However many clients write at once, its throughput is one
over the CPU that thread spends per write. This sends one kind of write at a time to the template's
table (indexes, stream), from `--threads` client threads, and reports per write:

- DynamoDB Local's CPU, from /proc, split between the SQLite thread and the rest of the JVM;
- a Java Flight Recorder profile of each thread group (`jcmd` and `jfr`, from the JDK), by what the
  samples were doing.

Kinds of write:
- `insert`: the submitter's rows, as PartiQL INSERTs, 25 to a BatchExecuteStatement (benchmark 5);
- `complete`: the webhook's completion, the store's first write (benchmark 4's subject);
- `put`: benchmark 4's baseline, a `put_item` of the completed item.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.config import Config

from bench import harness
from bench.stats import Check, Report

KINDS = ("insert", "complete", "put")
SQLITE_THREAD = "SQLiteQueue"
# One sample a millisecond of each running Java thread, and nothing else recorded.
_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<configuration version="2.0" label="execution samples">
  <event name="jdk.ExecutionSample">
    <setting name="enabled">true</setting>
    <setting name="period">1 ms</setting>
  </event>
</configuration>
"""
# What a sample was doing, by the frames on its stack: the first category any frame matches.
DECODING_JSON = "decoding stored JSON (Jackson)"
CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        DECODING_JSON,
        re.compile(
            r"^com\.fasterxml\.jackson\.databind\.ObjectMapper\.(readValue|readTree|treeToValue|_read)"
        ),
    ),
    (
        "encoding JSON (Jackson)",
        re.compile(r"^com\.fasterxml\.jackson\.databind\.ObjectMapper\.(writeValue|_writeValue|valueToTree)"),
    ),
    ("parsing PartiQL", re.compile(r"^org\.partiql\.")),
    ("parsing expressions", re.compile(r"(^org\.antlr\.|\.InputConverter\.externalToInternal)")),
    ("SQLite", re.compile(r"^com\.almworks\.sqlite4java\.(_SQLiteSwigged|SQLiteStatement|SQLiteConnection)")),
    (
        "HTTP and request JSON (Jetty, the SDK's marshalling)",
        re.compile(r"^(org\.eclipse\.jetty|software\.amazon\.awssdk\.protocols)"),
    ),
)
OTHER = "other"
_FRAME = re.compile(r"^\s{4}([\w$.<>-]+)\(")
_THREAD = re.compile(r'sampledThread = "([^"]*)"')


@dataclass
class Sample:
    thread: str
    frames: list[str]  # innermost first


def parse_samples(text: str) -> list[Sample]:
    """`jfr print --events jdk.ExecutionSample` output, as thread names and frames."""
    samples = []
    for block in text.split("jdk.ExecutionSample {")[1:]:
        thread = _THREAD.search(block)
        frames = [match.group(1) for line in block.splitlines() if (match := _FRAME.match(line))]
        if thread and frames:
            samples.append(Sample(thread.group(1), frames))
    return samples


def category(frames: Sequence[str]) -> str:
    for name, pattern in CATEGORIES:
        if any(pattern.search(frame) for frame in frames):
            return name
    return OTHER


def json_callers(samples: Iterable[Sample], top: int = 4) -> list[tuple[str, int]]:
    """For the samples decoding JSON: the DynamoDB Local frame that asked for it (the first frame below
    the Jackson ones), most frequent first. Says what was decoded: table metadata or items."""
    callers: Counter[str] = Counter()
    for sample in samples:
        jackson = [i for i, frame in enumerate(sample.frames) if frame.startswith("com.fasterxml.jackson")]
        if jackson and category(sample.frames) == DECODING_JSON:
            below = sample.frames[max(jackson) + 1 : max(jackson) + 2]
            callers[below[0] if below else "?"] += 1
    return callers.most_common(top)


@dataclass
class Profile:
    """One kind of write: its rate, DynamoDB Local's CPU by thread group, and the samples."""

    kind: str
    writes: int
    seconds: float
    cpu_seconds: dict[str, float]  # "sqlite", "other"
    samples: list[Sample] = field(default_factory=list)

    def cpu_ms_per_write(self, group: str | None = None) -> float:
        total = sum(self.cpu_seconds.values()) if group is None else self.cpu_seconds[group]
        return 1000 * total / self.writes

    def shares(self, sqlite: bool) -> dict[str, float]:
        chosen = [s for s in self.samples if s.thread.startswith(SQLITE_THREAD) == sqlite]
        counts = Counter(category(s.frames) for s in chosen)
        return {name: count / len(chosen) for name, count in counts.most_common()} if chosen else {}


# ---------------------------------------------------------------------- the JVM, seen from outside
def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of the JVM's SQLite thread and of all its other threads."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = {"sqlite": 0.0, "other": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a thread that ended meanwhile
        group = "sqlite" if name.startswith(SQLITE_THREAD) else "other"
        totals[group] += (int(fields[11]) + int(fields[12])) / tick
    return totals


class FlightRecorder:
    """JFR on a running JVM through `jcmd`, one recording at a time; None of it if the JDK's tools are
    missing (the CPU split from /proc still stands)."""

    def __init__(self, pid: int, scratch: Path) -> None:
        self.pid = pid
        self.scratch = scratch
        self.available = bool(shutil.which("jcmd") and shutil.which("jfr"))
        self.settings = scratch / "samples.jfc"
        self.settings.write_text(_SETTINGS)

    def start(self, name: str) -> None:
        if self.available:
            self._jcmd("JFR.start", f"name={name}", f"settings={self.settings}")

    def stop(self, name: str) -> list[Sample]:
        if not self.available:
            return []
        recording = self.scratch / f"{name}.jfr"
        self._jcmd("JFR.stop", f"name={name}", f"filename={recording}")
        printed = subprocess.run(
            ["jfr", "print", "--events", "jdk.ExecutionSample", "--stack-depth", "256", str(recording)],
            capture_output=True,
            text=True,
            check=True,
        )
        return parse_samples(printed.stdout)

    def _jcmd(self, *command: str) -> None:
        subprocess.run(["jcmd", str(self.pid), *command], capture_output=True, check=True)


# ---------------------------------------------------------------------- the writes
# Each builds, for `count` writes of its kind, the calls to make: each call writes one item, or 25 rows
# for `insert` (set-up, such as the rows a completion finds, is done here, untimed).
Calls = list[Callable[[], object]]


def insert_calls(client: Any, table: str, count: int, tag: str) -> Calls:
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
    from runrelay.adapters.dynamodb.writes import INSERT_BATCH_LIMIT, insert_batch
    from runrelay.domain.tasks import NewTask, TaskStatus
    from runrelay.task_ids import task_uuid_for

    store = DynamoTaskRepository(table, dynamodb=client)
    now, source = time.time(), f"s3://bench/{tag}.jsonl#etag"
    rows = [
        store._new_item(
            NewTask(str(task_uuid_for(f"{tag}:{i}")), f"{tag}:{i}", source, i + 1), TaskStatus.PENDING, now
        )
        for i in range(count)
    ]
    batches = [rows[start : start + INSERT_BATCH_LIMIT] for start in range(0, count, INSERT_BATCH_LIMIT)]
    return [functools.partial(insert_batch, client, table, batch) for batch in batches]


def complete_calls(client: Any, table: str, count: int, tag: str) -> Calls:
    """The store's completion of rows as the submitter leaves them (seeded here), each result parsed
    beforehand: a call is the store's write alone, and fails unless the row comes out COMPLETED."""
    from bench.warm_webhook import _seed_rows
    from bench.webhook_events import result_body
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
    from runrelay.domain.tasks import StorableResult, StoreOutcome
    from runrelay.task_ids import task_uuid_for
    from runrelay.webhook_results import WebhookResult

    store = DynamoTaskRepository(table, dynamodb=client)
    open_rows = [str(task_uuid_for(f"{tag}-open:{i}")) for i in range(count)]
    _seed_rows(client, table, open_rows)
    results = [WebhookResult.parse(result_body(uuid)["data"][0], uuid) for uuid in open_rows]

    def complete(result: StorableResult) -> None:
        if (outcome := store.store_result(result)) is not StoreOutcome.COMPLETED:
            raise RuntimeError(f"row {result.taskUUID} did not complete: {outcome}")

    return [functools.partial(complete, result) for result in results]


def put_calls(client: Any, table: str, count: int, tag: str) -> Calls:
    from bench.webhook_events import baseline_item
    from runrelay.task_ids import task_uuid_for

    items = [baseline_item(str(task_uuid_for(f"{tag}-put:{i}"))) for i in range(count)]
    return [functools.partial(client.put_item, TableName=table, Item=item) for item in items]


CALLS: dict[str, Callable[[Any, str, int, str], Calls]] = {
    "insert": insert_calls,
    "complete": complete_calls,
    "put": put_calls,
}


def dynamodb_client(aws: harness.LocalAws) -> Any:
    import boto3

    from local.stack.aws_credentials import LOCAL_CREDENTIALS

    return boto3.client(
        "dynamodb",
        endpoint_url=aws.dynamodb_url,
        region_name=harness.REGION,
        **LOCAL_CREDENTIALS,
        config=Config(max_pool_connections=32),
    )


def run_calls(pool: ThreadPoolExecutor, calls: Calls) -> None:
    for done in [pool.submit(call) for call in calls]:
        done.result()


def rows_created_alone(aws: harness.LocalAws, rows: int, threads: int = 8) -> float:
    """Rows a second DynamoDB Local creates as the submitter creates them (PartiQL INSERTs, 25 to a call,
    from `threads` threads) with nothing else asking anything of it: what it allows a submitter on this
    machine, whatever the submitter's own code. As noisy as any one figure here: compare medians."""
    client = dynamodb_client(aws)
    calls = insert_calls(client, aws.stack.table_name, rows, f"ceiling-{time.time_ns()}")
    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        run_calls(pool, calls)
        return rows / (time.perf_counter() - start)


def profile(kinds: Sequence[str], writes: int, warmup: int, threads: int) -> list[Profile]:
    with (
        harness.local_aws("bprofile") as aws,
        tempfile.TemporaryDirectory() as scratch,
        ThreadPoolExecutor(threads) as pool,
    ):
        client = dynamodb_client(aws)
        table = aws.stack.table_name
        pid = aws.dynamodb_pid
        recorder = FlightRecorder(pid, Path(scratch))
        profiles = {}
        # Warm (the JVM compiles each kind's path over its first thousands of writes), then timed, then
        # profiled: sampling every thread each millisecond slows DynamoDB Local, so the figures come from
        # the pass without the recorder, the shares from the pass with it.
        for phase, count in (("warm", warmup), ("timed", writes), ("profiled", writes)):
            for kind in kinds:
                calls = CALLS[kind](client, table, count, f"{phase}-{kind}-{time.time_ns()}")
                if phase == "warm":
                    run_calls(pool, calls)
                elif phase == "timed":
                    before, start = thread_cpu(pid), time.perf_counter()
                    run_calls(pool, calls)
                    seconds, after = time.perf_counter() - start, thread_cpu(pid)
                    cpu = {group: after[group] - before[group] for group in after}
                    profiles[kind] = Profile(kind, count, seconds, cpu)
                else:
                    recorder.start(kind)
                    run_calls(pool, calls)
                    profiles[kind].samples = recorder.stop(kind)
        return list(profiles.values())


def report(profiles: Sequence[Profile], threads: int) -> Report:
    checks = []
    notes: dict[str, Any] = {}
    for p in profiles:
        checks.append(
            Check(
                f"{p.kind}: writes a second ({threads} client threads)",
                p.writes / p.seconds,
                0.0,
                "min",
                unit=" /s",
                informational=True,
                detail=(
                    f"DynamoDB Local's CPU {p.cpu_ms_per_write():.3f} ms a write, "
                    f"{p.cpu_ms_per_write('sqlite'):.3f} ms of it on its SQLite thread "
                    f"(busy {p.cpu_seconds['sqlite'] / p.seconds:.2f} of a core)"
                ),
            )
        )
        for sqlite, label in ((True, "SQLite thread"), (False, "other threads")):
            shares = p.shares(sqlite)
            if shares:
                notes[f"{p.kind}, {label}, by samples"] = ", ".join(
                    f"{name} {share:.0%}" for name, share in shares.items()
                )
        callers = json_callers(s for s in p.samples if s.thread.startswith(SQLITE_THREAD))
        if callers:
            notes[f"{p.kind}, SQLite thread, JSON decoded for"] = ", ".join(
                f"{'.'.join(frame.rsplit('.', 2)[-2:])} {count}" for frame, count in callers
            )
    return Report("where DynamoDB Local spends a write (template table, one kind at a time)", checks, notes)


def run(args: argparse.Namespace) -> Report:
    writes = 1000 if args.quick else args.writes
    warmup = 500 if args.quick else args.warmup
    return report(profile(args.kinds, writes, warmup, args.threads), args.threads)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--writes", type=int, default=5000, help="rows written per kind, timed")
    parser.add_argument("--warmup", type=int, default=5000, help="rows written per kind first, untimed")
    parser.add_argument("--threads", type=int, default=8, help="client threads writing at once")


if __name__ == "__main__":
    harness.main(run, _arguments)
