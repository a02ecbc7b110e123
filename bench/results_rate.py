"""Benchmark 11: what one results environment gets through, stream batches of final tasks.

A JSONL object is submitted through the submit logic (benchmark 5's child) to the Runware emulator, which
drops every webhook. The parent then stores a result for every task, in the table's scan order (so a
batch spans many tallies, as concurrent webhooks make it), through the repository the webhook uses: each
task turns COMPLETED. A child with the results function's Lambda environment reads the table's stream
with the local stack's poller under the template's batch size and FilterCriteria, and invokes the results
handler on each batch, as Lambda would, until every task has been counted and the file's job completed:
TaskCompleted events to EventBridge (moto), tallies and the job counted, the results file written. Only
the handler's time is counted (not the stream reads). The seconds per batch replace the capacity plan's
guess for the results line (`results_seconds_per_batch`). An absolute figure, for the plan: nothing is
judged.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import harness
from bench.stats import Check, Report, median, percentile
from bench.submit_throughput import emulator, submit_object

_RESULTS = """
import json, sys, time
sys.path[:0] = {path!r}
import app  # the results handler, as Lambda imports it
import botocore.session
from local.stack.dynamodb_stream_poller import DynamoDBStreamPoller

class Context:
    function_name = "runrelay-results"
    aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:runrelay-results"
    memory_limit_in_mb = 512
    def get_remaining_time_in_millis(self):
        return 60_000

batches = []
def handler(event):
    records = event["Records"]
    start = time.perf_counter()
    answer = app.lambda_handler(event, Context())
    seconds = time.perf_counter() - start
    tasks = sum(r["dynamodb"]["Keys"]["pk"]["S"].startswith("TASK#") for r in records)
    failed = len(answer.get("batchItemFailures") or [])
    batches.append({{"records": len(records), "tasks": tasks, "seconds": seconds, "failed": failed}})
    return answer

streams = botocore.session.get_session().create_client("dynamodbstreams", endpoint_url={dynamodb_url!r})
poller = DynamoDBStreamPoller(streams, {stream_arn!r}, handler, batch_size={batch_size},
                              report_batch_item_failures=True, filter_patterns={patterns!r})
poller.start()
deadline = time.monotonic() + 600
while sum(b["tasks"] for b in batches) < {tasks} and time.monotonic() < deadline:
    time.sleep(0.2)
time.sleep(3)  # the job's own records (the last one completes it and writes the results file)
poller.stop()
print({prefix!r} + json.dumps({{"batches": batches, "errors": poller.stats.errors}}))
"""


def _stream_event_source() -> dict[str, Any]:
    from local.stack.template_model import function_config, load_template

    events = function_config(load_template(), "ResultsFunction")["Events"]
    [source] = [event["Properties"] for event in events.values() if event["Type"] == "DynamoDB"]
    return dict(source)


def complete_every_task(dynamodb: Any, table: str) -> int:
    """A result stored for every task of the table, as the webhook stores it; how many."""
    from bench.webhook_events import result_body
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
    from runrelay.domain.tasks import StoreOutcome
    from runrelay.webhook_results import WebhookResult

    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="begins_with(pk, :task)",
        ExpressionAttributeValues={":task": {"S": "TASK#"}},
        ProjectionExpression="pk",
    )
    uuids = [item["pk"]["S"].removeprefix("TASK#") for page in pages for item in page["Items"]]
    store = DynamoTaskRepository(table, dynamodb=dynamodb)

    def complete(uuid: str) -> StoreOutcome:
        return store.store_result(WebhookResult.parse(result_body(uuid)["data"][0], uuid))

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(complete, uuids))
    if any(outcome != StoreOutcome.COMPLETED for outcome in outcomes):
        raise SystemExit(f"not every task completed: {sorted(set(outcomes))}")
    return len(uuids)


def run(args: argparse.Namespace) -> Report:
    lines = 300 if args.quick else 3000
    source = _stream_event_source()
    batch_size = int(source.get("BatchSize", 100))
    with harness.local_aws("bres") as aws, emulator() as base:
        submit_object(aws, base, lines, "results")
        tasks = complete_every_task(aws.clients.dynamodb, aws.stack.table_name)
        code = _RESULTS.format(
            path=[*harness.lambda_sys_path("results"), str(harness.ROOT)],
            dynamodb_url=aws.dynamodb_url,
            stream_arn=aws.stack.attribute("TasksTable", "StreamArn"),
            batch_size=batch_size,
            patterns=[str(f["Pattern"]) for f in source["FilterCriteria"]["Filters"]],
            tasks=tasks,
            prefix=harness.RESULT_PREFIX,
        )
        out = harness.run_child(code, harness.child_env(aws.function_env("results")), timeout=900)
        files = aws.clients.s3.list_objects_v2(Bucket=aws.stack.bucket_name, Prefix="results/")
    batches, errors = out["batches"], out["errors"]
    counted = sum(batch["tasks"] for batch in batches)
    if errors or counted < tasks or not files.get("KeyCount"):
        found = files.get("KeyCount")
        raise SystemExit(f"{counted} of {tasks} tasks counted, results files: {found}, errors: {errors}")
    full = [batch["seconds"] for batch in batches if batch["records"] == batch_size]
    per_record = sum(batch["seconds"] for batch in batches) / sum(batch["records"] for batch in batches)
    return Report(
        f"results consumer: {tasks} completions through the results handler, stream batches as Lambda "
        "hands them over",
        [
            Check(
                "seconds per full stream batch (p50)",
                median(full),
                0.0,
                "min",
                unit=" s",
                subject=median(full),
                detail=f"p99 {percentile(full, 99):.3f} s; {len(batches)} batches, "
                f"{1 / per_record:.0f} records/s in one environment",
                informational=True,
            )
        ],
        notes={
            "records per batch": [batch["records"] for batch in batches],
            "batches answered with a failed record (retried from it)": sum(b["failed"] for b in batches),
        },
        figures={"results_seconds_per_batch": median(full)},
    )


if __name__ == "__main__":
    harness.main(run)
