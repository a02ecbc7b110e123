"""Benchmark 5: a 10,000-line JSONL object through the submit logic to the Runware emulator vs a naive
client that POSTs one task per request with `requests`.

Subject: one child with the submit function's Lambda environment (DynamoDB Local, moto S3/Secrets
Manager, RUNWARE_API_URL -> the emulator) runs `SubmitService.process_record` on the S3 notification
of a fresh object: conditional PENDING rows, batched POSTs. Naive: a child POSTing the
same kind of task, one `requests.post` each. Both reach the same emulator process (webhooks dropped, so
it spends nothing on deliveries) through `bench.wan.WanLink`, a proxy with the round-trip time of a
wide-area link (`--rtt`, default 20 ms; a connection costs one round trip to open): Runware is a
third-party service across the internet, and round trips are what batching and connection reuse save.
The same comparison on bare loopback is printed for information. POSTs are counted at the emulator.
Also reports tasks/s for a large object fanned out into ranges and continuations (`--large-lines`), and,
for information, what DynamoDB Local allows the subject: after each round, the same number of rows created
as the submitter creates them, with nothing else running (`bench.dynamodb_local_profile.rows_created_alone`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from bench import harness
from bench.dynamodb_local_profile import rows_created_alone
from bench.stats import Check, Report, median
from bench.wan import WanLink

SUBMIT_CHILD = """
import json, sys, time, uuid
sys.path[:0] = {path!r}
import boto3
import app
from runrelay import wiring
from runrelay.deadline import Deadline

lines = {lines}
tag = {tag!r}
def line(i):
    return json.dumps({{"prompt": f"{{tag}} question {{i}}: explain queues briefly", "metadata": {{"n": i}}}})
body = "".join(line(i) + "\\n" for i in range(lines)).encode()
s3 = boto3.client("s3")
key = f"incoming/{{tag}}.jsonl"
put = s3.put_object(Bucket={bucket!r}, Key=key, Body=body)
head = s3.head_object(Bucket={bucket!r}, Key=key)
record = {{"Records": [{{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {{"bucket": {{"name": {bucket!r}}}, "object": {{"key": key, "size": len(body),
                    "eTag": head["ETag"].strip('"')}}}}}}]}}
service = wiring.submit_service()
sqs = boto3.client("sqs")
start, cpu_start = time.perf_counter(), time.process_time()
messages = [json.dumps(record)]
chunks = submitted = ranges = 0
while messages:
    report = service.process_record(str(uuid.uuid4()), messages.pop(0), Deadline.after({budget}))
    chunks += 1
    submitted += report.submitted
    ranges += report.fanned_out
    waited = 0
    while report.continued:  # take what it queued (a continuation, or the ranges) back, as SQS would
        got = sqs.receive_message(QueueUrl={queue!r}, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in got.get("Messages", []):
            # The bucket's own notification of the upload is not needed: the record above stands for it.
            if "runrelayContinuation" in message["Body"]:
                messages.append(message["Body"])
            sqs.delete_message(QueueUrl={queue!r}, ReceiptHandle=message["ReceiptHandle"])
        if not got.get("Messages") and messages:
            break
        waited += 1
        if waited > 60:
            raise SystemExit("the queued continuation never arrived")
elapsed = time.perf_counter() - start
cpu = time.process_time() - cpu_start
if submitted != lines:
    raise SystemExit(f"only {{submitted}} of {{lines}} tasks were accepted by the emulator")
print({prefix!r} + json.dumps({{"seconds": elapsed, "cpu": cpu, "tasks": submitted, "invocations": chunks,
                                     "ranges": ranges}}))
"""

_NAIVE = """
import json, sys, time, uuid
import requests
url, tasks = {url!r}, {tasks}
start = time.perf_counter()
for i in range(tasks):
    task = {{"taskType": "textInference", "taskUUID": str(uuid.uuid4()), "model": "minimax:m2.7@0",
            "messages": [{{"role": "user", "content": f"naive question {{i}}: explain queues briefly"}}],
            "deliveryMethod": "async", "includeUsage": True, "includeCost": True,
            "webhookURL": "http://127.0.0.1:9/webhooks/runware?token=" + "0" * 64}}
    answer = requests.post(url, json=[task], headers={{"Authorization": "Bearer bench-key"}}, timeout=30)
    answer.raise_for_status()
print({prefix!r} + json.dumps({{"seconds": time.perf_counter() - start, "tasks": tasks}}))
"""


def submit_object(
    aws: harness.LocalAws,
    runware_url: str,
    lines: int,
    tag: str,
    *,
    budget: float = 600,
    range_bytes: int | None = None,
) -> dict[str, Any]:
    """A fresh JSONL object of `lines` tasks through the submit logic (this benchmark's child), against
    the Runware API at `runware_url`, with `budget` seconds an invocation and, if given, the fan-out's range
    size: what the child reported."""
    code = SUBMIT_CHILD.format(
        path=harness.lambda_sys_path("submit"),
        lines=lines,
        tag=f"{tag}-{time.time_ns()}",
        bucket=aws.stack.bucket_name,
        budget=budget,
        queue=aws.stack.ingest_queue_url,
        prefix=harness.RESULT_PREFIX,
    )
    overrides = {"RUNWARE_API_URL": f"{runware_url}/v1"}
    if range_bytes is not None:
        overrides["FAN_OUT_RANGE_BYTES"] = str(range_bytes)
    env = harness.child_env(aws.function_env("submit", overrides))
    return dict(harness.run_child(code, env, timeout=max(900, lines / 100)))


@contextmanager
def emulator() -> Iterator[str]:
    from local.net import free_port, wait_for

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "local.runware_emulator",
        "--port",
        str(port),
        "--webhook-drop-rate",
        "1",
    ]
    process = subprocess.Popen(
        command, cwd=harness.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return requests.get(f"{base}/health", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        wait_for(healthy, 30, "the Runware emulator")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def posts(base: str) -> int:
    stats = requests.get(f"{base}/admin/stats", timeout=10).json()
    return sum(int(n) for n in stats["requests_by_status"].values())


def run(args: argparse.Namespace) -> Report:
    lines = 1000 if args.quick else 10_000
    naive_tasks = 100 if args.quick else 400
    rounds = 1 if args.quick else 2
    checks: list[Check] = []
    notes: dict[str, Any] = {}
    with harness.local_aws("bsub") as aws, emulator() as base:

        def subject(
            url: str, tag: str, count: int, budget: float, range_bytes: int | None = None
        ) -> dict[str, Any]:
            before = posts(base)
            out = submit_object(aws, url, count, tag, budget=budget, range_bytes=range_bytes)
            out["posts"] = posts(base) - before
            out["rate"] = out["tasks"] / out["seconds"]
            return out

        def naive(url: str, tasks: int) -> float:
            code = _NAIVE.format(url=f"{url}/v1", tasks=tasks, prefix=harness.RESULT_PREFIX)
            out = harness.run_child(code, harness.child_env(), timeout=900)
            return float(out["tasks"] / out["seconds"])

        if args.large_only:
            with runware_link(base, args.rtt) as wan:
                return _large_report(
                    args, subject(wan, "large", args.large_lines, args.budget, args.range_bytes)
                )
        with runware_link(base, args.rtt) as wan:
            # Untimed: DynamoDB Local's JIT compiles its write paths (PartiQL's the slowest) over the first
            # thousands of writes.
            subject(wan, "warm", 5000 if not args.quick else 300, 600)
            subject_rates, naive_rates, post_rates, cpu_per_task, alone_rates = [], [], [], [], []
            for round_no in range(rounds):
                naive_rates.append(naive(wan, naive_tasks))
                measured = subject(wan, f"tp{round_no}", lines, 600)
                subject_rates.append(measured["rate"])
                cpu_per_task.append(measured["cpu"] * 1000 / measured["tasks"])
                post_rates.append(measured["posts"] * 1000 / measured["tasks"])
                # The same rows created with nothing else running: what DynamoDB Local allows the subject.
                alone_rates.append(rows_created_alone(aws, lines))
            naive_rates.append(naive(wan, naive_tasks))
            large = (
                subject(wan, "large", args.large_lines, args.budget, args.range_bytes)
                if args.large_lines
                else None
            )
        loopback_subject = subject(base, "loopback", lines, 600)["rate"]
        loopback_naive = naive(base, naive_tasks * 5)

    link = f"{args.rtt * 1000:.0f} ms round trip" if args.rtt else "loopback"
    checks.append(
        Check(
            f"submit {lines} lines vs naive POST-per-task ({link})",
            median(subject_rates) / median(naive_rates),
            40.0,
            "min",
            subject=median(subject_rates),
            baseline=median(naive_rates),
            detail="tasks/s",
        )
    )
    checks.append(
        Check("POSTs per 1,000 tasks", median(post_rates), 10.0, unit="", subject=median(post_rates))
    )
    alone = median(alone_rates)
    checks.append(
        Check(
            "DynamoDB Local alone creating the same rows vs naive (what it allows the subject)",
            alone / median(naive_rates),
            40.0,
            "min",
            subject=alone,
            baseline=median(naive_rates),
            detail="tasks/s",
            informational=True,
        )
    )
    notes["subject / DynamoDB Local alone"] = f"{median(subject_rates) / alone:.0%}"
    if args.rtt:
        checks.append(
            Check(
                "same on bare loopback (no network: both CPU-bound on this machine)",
                loopback_subject / loopback_naive,
                0.0,
                "min",
                subject=loopback_subject,
                baseline=loopback_naive,
                detail="tasks/s",
                informational=True,
            )
        )
    if large is not None:
        checks.extend(_large_report(args, large).checks)
    notes["naive tasks/s per round"] = [round(r, 1) for r in naive_rates]
    notes["subject tasks/s per round"] = [round(r, 1) for r in subject_rates]
    notes["DynamoDB Local alone, rows/s per round"] = [round(r, 1) for r in alone_rates]
    # What MemorySize buys: Lambda's CPU share grows with memory (one vCPU at 1,769 MB).
    notes["subject CPU ms per task (all threads)"] = round(median(cpu_per_task), 3)
    # One submitter's rate across a wide-area link to Runware, as on AWS.
    figures = {"submit_tasks_per_second": median(subject_rates)} if args.rtt else {}
    return Report(
        f"submit throughput: JSONL object through the submit logic vs naive client ({link})",
        checks,
        notes,
        figures,
    )


def _large_report(args: argparse.Namespace, large: dict[str, Any]) -> Report:
    """Tasks/s for one large object: cut into ranges (FAN_OUT_RANGE_BYTES, `--range-bytes`), each range a
    message of its own, and any run continued through the queue when its time runs short (the budget per
    invocation is cut to 45 s, continuing with 20 s left). The bench runs the messages one after another
    in one process, so the figure is a single submitter's rate; on AWS the ranges run side by side."""
    check = Check(
        f"large object ({args.large_lines:,} lines), ranges and continuations",
        large["rate"],
        0.0,
        "min",
        unit=" tasks/s",
        subject=large["rate"],
        informational=True,
        detail=(
            f"{large['ranges']} ranges, {large['invocations']} invocations, {large['posts']} POSTs, "
            f"{large['seconds']:.0f} s"
        ),
    )
    return Report(f"large object fan-out ({args.large_lines:,} lines)", [check])


@contextmanager
def runware_link(base: str, rtt: float) -> Iterator[str]:
    """The emulator's URL as seen across a link with this round-trip time (none: the URL itself)."""
    if not rtt:
        yield base
        return
    with WanLink(int(base.rsplit(":", 1)[1]), rtt) as link:
        yield f"http://127.0.0.1:{link.port}"


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rtt", type=float, default=0.02, help="round-trip seconds of the link to the emulator (0: loopback)"
    )
    parser.add_argument("--large-lines", type=int, default=0, help="also push an object this big through")
    parser.add_argument("--large-only", action="store_true", help="only the large object")
    parser.add_argument("--budget", type=float, default=45.0, help="seconds per invocation, large object")
    parser.add_argument(
        "--range-bytes", type=int, default=None, help="FAN_OUT_RANGE_BYTES for the large object (template's)"
    )


if __name__ == "__main__":
    harness.main(run, _arguments)
