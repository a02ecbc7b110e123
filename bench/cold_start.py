"""Benchmark 2: cold start to first answer.

Subject: a fresh interpreter imports the webhook handler and serves one valid webhook (a real HTTP API
v2 event, a valid HMAC token); the handler reads the webhook secret from Secrets Manager (a moto
server) and stores the result in DynamoDB Local. Baseline: a fresh interpreter imports boto3, creates a
DynamoDB client and does one `put_item` of the same completed item. The clock runs from before the
first import to the answer, in the child; subject and baseline alternate.
"""

from __future__ import annotations

import argparse
import json

from bench import harness
from bench.stats import Report
from bench.webhook_events import api_event, baseline_item, submitted_tasks

_SUBJECT = """
import json, sys, time
sys.path[:0] = {path!r}
event = json.loads(sys.stdin.read())

class Context:
    function_name = "runrelay-webhook"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:runrelay-webhook"
    aws_request_id = "bench-request"
    log_group_name = "/aws/lambda/runrelay-webhook"
    log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 10_000

start = time.perf_counter()
import app
answer = app.lambda_handler(event, Context())
elapsed = time.perf_counter() - start
assert answer["statusCode"] == 200, answer
assert "completed" in answer["body"], answer
print({prefix!r} + json.dumps(elapsed))
"""

_BASELINE = """
import json, sys, time
item = json.loads(sys.stdin.read())
start = time.perf_counter()
import boto3
client = boto3.client("dynamodb")
client.put_item(TableName={table!r}, Item=item)
elapsed = time.perf_counter() - start
print({prefix!r} + json.dumps(elapsed))
"""


def run(args: argparse.Namespace) -> Report:
    runs = 6 if args.quick else 30
    with harness.local_aws("bcold") as aws:
        env = harness.child_env(aws.function_env("webhook"))
        secret = _webhook_secret(aws)
        from runrelay.task_store import TaskStore

        store = TaskStore(aws.stack.table_name, dynamodb=aws.clients.dynamodb, s3=aws.clients.s3)
        uuids = iter(submitted_tasks(store, "cold", runs + 1))
        spare = iter(submitted_tasks(store, "cold-baseline", runs + 1))
        subject_code = _SUBJECT.format(path=harness.lambda_sys_path("webhook"), prefix=harness.RESULT_PREFIX)
        baseline_code = _BASELINE.format(table=aws.stack.table_name, prefix=harness.RESULT_PREFIX)

        def subject() -> float:
            event = json.dumps(api_event(next(uuids), secret))
            return float(harness.run_child(subject_code, env, stdin=event))

        def baseline() -> float:
            item = json.dumps(baseline_item(next(spare)))
            return float(harness.run_child(baseline_code, env, stdin=item))

        subject()  # warms the bytecode cache, untimed
        baseline()
        subject_s, baseline_s = harness.interleaved(runs, subject, baseline)
    return harness.timing_ratio_report(
        f"cold start to first answer ({runs} fresh interpreters each)",
        "webhook import+first answer / boto3+client+put_item",
        subject_s,
        baseline_s,
        1.5,
    )


def _webhook_secret(aws: harness.LocalAws) -> str:
    raw = aws.clients.secretsmanager.get_secret_value(SecretId=aws.stack.webhook_secret_arn)["SecretString"]
    return str(json.loads(raw)["current"])


if __name__ == "__main__":
    harness.main(run)
