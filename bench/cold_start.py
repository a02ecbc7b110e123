"""Benchmark 2: cold start to first answer, through the local Lambda runtime's workers.

Subject: a new execution environment of the webhook function (`local.stack.execution_environments`: a fresh
process running AWS's runtime interface client, which imports the handler) serves one valid webhook (a
real HTTP API v2 event, a valid HMAC token); the handler reads the webhook secret from Secrets Manager
(a moto server) and stores the result in DynamoDB Local. Baseline: a fresh interpreter imports boto3,
creates a DynamoDB client and does one `put_item` of the same completed item. Both clocks run in this
process from just before the child is started to its answer; subject and baseline alternate.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING

from bench import harness
from bench.stats import Report
from bench.webhook_events import api_event, baseline_item, submitted_tasks

if TYPE_CHECKING:
    from local.stack.execution_environments import WorkerSpec

_BASELINE = """
import json, sys
item = json.loads(sys.stdin.readline())
import boto3
client = boto3.client("dynamodb")
client.put_item(TableName={table!r}, Item=item)
print({prefix!r} + "ok", flush=True)
"""


def run(args: argparse.Namespace) -> Report:
    from local.stack.execution_environments import ExecutionEnvironment, FunctionLog

    runs = 6 if args.quick else 30
    with harness.local_aws("bcold") as aws:
        env = harness.child_env(aws.function_env("webhook"))
        secret = webhook_secret(aws)
        from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository

        store = DynamoTaskRepository(aws.stack.table_name, dynamodb=aws.clients.dynamodb)
        uuids = iter(submitted_tasks(store, "cold", runs + 1))
        spare = iter(submitted_tasks(store, "cold-baseline", runs + 1))
        worker = webhook_worker(aws)
        baseline_code = _BASELINE.format(table=aws.stack.table_name, prefix=harness.RESULT_PREFIX)
        log = FunctionLog(io.StringIO())

        def subject() -> float:
            body = json.dumps(api_event(next(uuids), secret)).encode()
            started = time.perf_counter()
            environment = ExecutionEnvironment(worker, log)
            try:
                answer = json.loads(environment.invoke(body))
                elapsed = time.perf_counter() - started
            finally:
                environment.close()
            assert answer["statusCode"] == 200, answer
            assert "completed" in answer["body"], answer
            return elapsed

        def baseline() -> float:
            item = json.dumps(baseline_item(next(spare)))
            started = time.perf_counter()
            child = subprocess.Popen(
                [sys.executable, "-c", baseline_code],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=tempfile.gettempdir(),
            )
            assert child.stdin is not None
            assert child.stdout is not None
            child.stdin.write(item + "\n")
            child.stdin.flush()
            line = child.stdout.readline()
            elapsed = time.perf_counter() - started
            child.communicate(timeout=60)
            assert line.startswith(harness.RESULT_PREFIX), line
            return elapsed

        subject()  # warms the bytecode cache, untimed
        baseline()
        subject_s, baseline_s = harness.interleaved(runs, subject, baseline)
    return harness.timing_ratio_report(
        f"cold start to first answer ({runs} fresh environments / interpreters each)",
        "webhook environment start+import+first answer / boto3+client+put_item",
        subject_s,
        baseline_s,
        1.3,
    )


def webhook_worker(aws: harness.LocalAws) -> WorkerSpec:
    """The webhook function's execution environment as the local Lambda runtime starts it."""
    from local.stack.execution_environments import WorkerSpec

    return WorkerSpec(
        function_name="runrelay-webhook",
        handler="app.lambda_handler",
        task_root=harness.function_dir("webhook"),
        python_path=(harness.LAYER_DIR,),
        environment={
            **harness.child_env(aws.function_env("webhook")),
            "PYTHONPYCACHEPREFIX": str(harness.PYCACHE),
        },
        timeout_seconds=10,
        memory_mb=harness.template_memory_mb("webhook"),
    )


def webhook_secret(aws: harness.LocalAws) -> str:
    raw = aws.clients.secretsmanager.get_secret_value(SecretId=aws.stack.webhook_secret_arn)["SecretString"]
    return str(json.loads(raw)["current"])


if __name__ == "__main__":
    harness.main(run)
