"""Benchmark 5: a 10,000-line JSONL object through the submit logic to the Runware emulator vs a naive
client that POSTs one task per request with `requests`.

Subject: one child with the submit function's Lambda environment (DynamoDB Local, moto S3/Secrets
Manager, RUNWARE_API_URL -> the emulator) runs `SubmitService.process_record` on the S3 notification
of a fresh object: conditional PENDING rows, batched POSTs, SUBMITTED marks. Naive: a child POSTing the
same kind of task, one per `requests.post`. Both against the same emulator process (webhooks dropped,
so it spends nothing on deliveries). POSTs are counted at the emulator. Also reports tasks/s for a
large object that is fanned out through continuation messages (`--large-lines`).
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
from bench.stats import Check, Report, median

_SUBJECT = """
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
start = time.perf_counter()
messages = [json.dumps(record)]
chunks = 0
while messages:
    report = service.process_record(str(uuid.uuid4()), messages.pop(), Deadline.after({budget}))
    chunks += 1
    if report.continued:  # the continuation went to the ingest queue: take it back, as SQS would
        got = sqs.receive_message(QueueUrl={queue!r}, MaxNumberOfMessages=1, WaitTimeSeconds=1)
        for message in got.get("Messages", []):
            messages.append(message["Body"])
            sqs.delete_message(QueueUrl={queue!r}, ReceiptHandle=message["ReceiptHandle"])
elapsed = time.perf_counter() - start
print({prefix!r} + json.dumps({{"seconds": elapsed, "tasks": lines, "invocations": chunks}}))
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


@contextmanager
def emulator(latency: float) -> Iterator[str]:
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
    if latency:
        command += ["--latency", str(latency)]
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
    naive_tasks = 200 if args.quick else 1000
    rounds = 1 if args.quick else 2
    checks: list[Check] = []
    notes: dict[str, Any] = {}
    with harness.local_aws("bsub") as aws, emulator(args.rtt) as base:
        env = harness.child_env(aws.function_env("submit", {"RUNWARE_API_URL": f"{base}/v1"}))
        path = harness.lambda_sys_path("submit")

        def subject(tag: str, count: int, budget: float) -> dict[str, Any]:
            code = _SUBJECT.format(
                path=path,
                lines=count,
                tag=tag,
                bucket=aws.stack.bucket_name,
                budget=budget,
                queue=aws.stack.ingest_queue_url,
                prefix=harness.RESULT_PREFIX,
            )
            before = posts(base)
            out = dict(harness.run_child(code, env, timeout=900))
            out["posts"] = posts(base) - before
            return out

        def naive() -> dict[str, Any]:
            code = _NAIVE.format(url=f"{base}/v1", tasks=naive_tasks, prefix=harness.RESULT_PREFIX)
            return dict(harness.run_child(code, harness.child_env(), timeout=900))

        subject_rates, naive_rates, post_rates = [], [], []
        for round_no in range(rounds):
            n = naive()
            naive_rates.append(n["tasks"] / n["seconds"])
            s = subject(f"tp{round_no}-{time.time_ns()}", lines, 600)
            subject_rates.append(s["tasks"] / s["seconds"])
            post_rates.append(s["posts"] * 1000 / s["tasks"])
        n = naive()
        naive_rates.append(n["tasks"] / n["seconds"])
        speedup = median(subject_rates) / median(naive_rates)
        rtt = f" (emulator answers after {args.rtt * 1000:.0f} ms)" if args.rtt else ""
        checks.append(
            Check(
                f"submit {lines} lines vs naive POST-per-task{rtt}",
                speedup,
                20.0,
                "min",
                subject=median(subject_rates),
                baseline=median(naive_rates),
                detail="tasks/s",
            )
        )
        checks.append(
            Check("POSTs per 1,000 tasks", median(post_rates), 10.0, unit="", subject=median(post_rates))
        )
        if args.large_lines:
            # A short per-invocation budget forces the continuation fan-out a 1M-line object needs.
            big = subject(f"large-{time.time_ns()}", args.large_lines, 45)
            checks.append(
                Check(
                    f"large object ({args.large_lines} lines) tasks/s, continuations",
                    big["tasks"] / big["seconds"],
                    0.0,
                    "min",
                    unit=" tasks/s",
                    subject=big["tasks"] / big["seconds"],
                    informational=True,
                    detail=f"{big['invocations']} invocations, {big['posts']} POSTs",
                )
            )
        notes["naive tasks/s per round"] = [round(r, 1) for r in naive_rates]
        notes["subject tasks/s per round"] = [round(r, 1) for r in subject_rates]
    return Report(
        f"submit throughput: JSONL object through the submit logic vs naive client{rtt}", checks, notes
    )


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rtt", type=float, default=0.0, help="seconds the emulator waits before each answer"
    )
    parser.add_argument("--large-lines", type=int, default=0, help="also push an object this big through")


if __name__ == "__main__":
    harness.main(run, _arguments)
