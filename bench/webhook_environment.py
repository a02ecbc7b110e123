"""Benchmark 12: webhooks one warm execution environment serves a second, through the local Lambda runtime.

The capacity plan's webhook line needs how long one environment is busy with one webhook. Benchmark 4
times the handler called in-process; here the same kind of webhook goes the whole way Lambda takes it:
the local Runtime API hands the event to AWS's runtime interface client in the function's own process,
which calls the handler, posts the answer and asks for the next event. One environment, started and
warmed untimed, serves the webhooks one after another, as a Lambda environment does; each is a fresh
PENDING task (a real HTTP API v2 event, a valid token), stored in DynamoDB Local.

A bare boto3 `put_item` of the same completed item from this process runs alternately, in blocks, as the
same-run reference. The environment's process CPU time is read from /proc around the measured part: on
AWS a function gets CPU in proportion to its memory (one vCPU at 1,769 MB), so an environment kept busy
serves at most its share divided by the CPU a webhook takes. Nothing is judged: the figures are inputs
of the capacity plan (docs/capacity.md).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path

from bench import harness
from bench.capacity_plan import ONE_VCPU_MB
from bench.stats import Check, Report, median, percentile
from bench.webhook_events import api_event, baseline_item, submitted_tasks

BLOCK = 50
WARMUP = 100


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of process `pid` so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def run(args: argparse.Namespace) -> Report:
    from bench.cold_start import webhook_secret, webhook_worker
    from local.stack.execution_environments import ExecutionEnvironment, FunctionLog
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
    from runrelay.task_ids import task_uuid_for

    calls = 300 if args.quick else 2000
    with harness.local_aws("bwebenv") as aws:
        table, client = aws.stack.table_name, aws.clients.dynamodb
        store = DynamoTaskRepository(table, dynamodb=client)
        secret = webhook_secret(aws)
        events = [
            json.dumps(api_event(uuid, secret)).encode()
            for uuid in submitted_tasks(store, "environment", WARMUP + calls)
        ]
        items = [baseline_item(str(task_uuid_for(f"environment-base:{i}"))) for i in range(WARMUP + calls)]
        worker = webhook_worker(aws)
        environment = ExecutionEnvironment(worker, FunctionLog(io.StringIO()))

        def invoke(i: int) -> float:
            started = time.perf_counter()
            answer = json.loads(environment.invoke(events[i]))
            elapsed = time.perf_counter() - started
            if answer["statusCode"] != 200 or "completed" not in answer["body"]:
                raise RuntimeError(answer)
            return elapsed

        def put(i: int) -> float:
            started = time.perf_counter()
            client.put_item(TableName=table, Item=items[i])
            return time.perf_counter() - started

        try:
            for i in range(WARMUP):  # the environment's init, its first secret read, both connections
                invoke(i)
                put(i)
            subject: list[float] = []
            baseline: list[float] = []
            cpu_started = _cpu_seconds(environment.pid)
            started = time.perf_counter()
            for start in range(WARMUP, WARMUP + calls, BLOCK):
                block = range(start, min(start + BLOCK, WARMUP + calls))
                subject.extend(invoke(i) for i in block)
                baseline.extend(put(i) for i in block)
            wall = time.perf_counter() - started
            user, system = (
                (now - then) / calls
                for now, then in zip(_cpu_seconds(environment.pid), cpu_started, strict=True)
            )
            cpu = user + system
        finally:
            environment.close()
    ms = 1000.0
    share = worker.memory_mb / ONE_VCPU_MB
    busy = sum(subject)  # the environment's time on webhooks alone: its webhooks per second
    return Report(
        f"one warm webhook environment, local Lambda runtime ({calls} webhooks, one after another)",
        [
            Check(
                "webhooks a second, one environment",
                calls / busy,
                0.0,
                "min",
                unit="/s",
                subject=calls / busy,
                informational=True,
                detail=f"p50 {median(subject) * ms:.2f} ms, p99 {percentile(subject, 99) * ms:.2f} ms a call",
            ),
            Check(
                "invocation p50 / put_item p50 (this process's boto3 client)",
                median(subject) / median(baseline),
                0.0,
                "min",
                subject=median(subject) * ms,
                baseline=median(baseline) * ms,
                detail="ms",
                informational=True,
            ),
        ],
        notes={
            "the environment's CPU a webhook (runtime client and handler), ms": round(cpu * ms, 3),
            # The system part includes the kernel's socket work, which on loopback also delivers each
            # request to DynamoDB Local and the Runtime API.
            "of which user / system, ms": f"{user * ms:.3f} / {system * ms:.3f}",
            f"CPU-bound ceiling at {share:.2f} of a vCPU (MemorySize), webhooks a second": round(share / cpu),
            "wall time of the measured part, s": round(wall, 1),
        },
        figures={"webhook_cpu_seconds": cpu, "webhook_memory_mb": worker.memory_mb},
    )


if __name__ == "__main__":
    harness.main(run)
