"""Benchmark 4: warm webhook invocations vs a bare boto3 `put_item` of the same item.

One child interpreter with the webhook's Lambda environment (DynamoDB Local, moto for Secrets Manager)
imports the handler once, then alternates blocks of handler invocations (a fresh PENDING task each,
realistic HTTP API v2 events, function logs discarded) with blocks of `put_item` calls on a plain
boto3 client. p50 and p99 of per-call latency are compared.

After the judged calls, for information, the handler's one write alone is measured the same way against
the same `put_item`: how much of the ratio DynamoDB Local's answer to the UpdateItem takes by itself.

`--order shuffled` (a diagnostic; `make bench` judges the blocks) sends the same calls in a shuffled
order instead, so that neither kind of call runs in streaks (bench/README.md: what the order does).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

from bench import harness
from bench.stats import Check, Report, median, percentile

BLOCK = 50

_CHILD = """
import sys
sys.path[:0] = {path!r}
from {module} import child
child({calls}, {table!r}, {secret!r}, **{options!r})
"""


class _Context:
    function_name = "runrelay-webhook"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:runrelay-webhook"
    aws_request_id = "bench-request"
    log_group_name = "/aws/lambda/runrelay-webhook"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def _seed_rows(client: Any, table: str, uuids: list[str]) -> None:
    """PENDING rows as the submitter leaves them, written 25 at a time (set-up, not measured)."""
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
    from runrelay.domain.tasks import NewTask, TaskStatus

    store = DynamoTaskRepository(table, dynamodb=client)
    now = time.time()
    items = [
        store._new_item(NewTask(uuid, f"warm:{i}", "bench:warm", i), TaskStatus.PENDING, now)
        for i, uuid in enumerate(uuids)
    ]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        while batch:
            answer = client.batch_write_item(RequestItems={table: batch})
            batch = answer.get("UnprocessedItems", {}).get(table, [])


def child(calls: int, table: str, secret: str, order: str = "blocks") -> None:
    import contextlib
    import io

    import app  # the webhook handler, as Lambda imports it
    import boto3

    from bench.webhook_events import api_event, baseline_item
    from runrelay.task_ids import task_uuid_for

    bare = boto3.client("dynamodb")
    subject_uuids = [str(task_uuid_for(f"warm-subject:{i}")) for i in range(calls + BLOCK)]
    baseline_uuids = [str(task_uuid_for(f"warm-baseline:{i}")) for i in range(calls + BLOCK)]
    _seed_rows(bare, table, subject_uuids)
    events = [api_event(uuid, secret) for uuid in subject_uuids]
    items = [baseline_item(uuid) for uuid in baseline_uuids]
    context = _Context()
    sink = io.StringIO()

    def invoke(event: dict[str, Any]) -> float:
        start = time.perf_counter()
        answer = app.lambda_handler(event, context)
        elapsed = time.perf_counter() - start
        if answer["statusCode"] != 200 or "completed" not in answer["body"]:
            raise RuntimeError(answer)
        return elapsed

    def put(item: dict[str, Any]) -> float:
        start = time.perf_counter()
        bare.put_item(TableName=table, Item=item)
        return time.perf_counter() - start

    with contextlib.redirect_stdout(sink):  # the function's JSON logs and EMF lines
        for i in range(BLOCK):  # warm both paths (first secret fetch, connections), untimed
            invoke(events[calls + i])
            put(items[calls + i])
        subject: list[float] = []
        baseline: list[float] = []
        if order == "shuffled":
            calls_in_order = [True] * calls + [False] * calls
            random.Random(4).shuffle(calls_in_order)
            for is_subject in calls_in_order:
                if is_subject:
                    subject.append(invoke(events[len(subject)]))
                else:
                    baseline.append(put(items[len(baseline)]))
                if len(subject) % BLOCK == 0:
                    sink.seek(0)
                    sink.truncate()
        else:

            def forget_logs() -> None:
                sink.seek(0)
                sink.truncate()

            subject, baseline = alternating_blocks(
                calls, lambda i: invoke(events[i]), lambda i: put(items[i]), after_block=forget_logs
            )
        write, write_baseline = _write_alone(table, calls, put)
    print(
        harness.RESULT_PREFIX
        + json.dumps(
            {"subject": subject, "baseline": baseline, "write": write, "write_baseline": write_baseline}
        )
    )


def alternating_blocks(
    calls: int,
    subject: Callable[[int], float],
    baseline: Callable[[int], float],
    after_block: Callable[[], None] = lambda: None,
) -> tuple[list[float], list[float]]:
    """`subject(i)` and `baseline(i)` (each returning its seconds) for every i below `calls`, in blocks of
    BLOCK calls of one kind, the two kinds taking turns to go first: their times, in that order."""
    subject_times: list[float] = []
    baseline_times: list[float] = []
    for start in range(0, calls, BLOCK):
        block = range(start, min(start + BLOCK, calls))
        if (start // BLOCK) % 2:
            baseline_times.extend(baseline(i) for i in block)
            subject_times.extend(subject(i) for i in block)
        else:
            subject_times.extend(subject(i) for i in block)
            baseline_times.extend(baseline(i) for i in block)
        after_block()
    return subject_times, baseline_times


def _write_alone(
    table: str, calls: int, put: Callable[[dict[str, Any]], float]
) -> tuple[list[float], list[float]]:
    """For information, after the judged calls: the handler's one write alone (the store's completion, on
    the handler's own client, the result already parsed) against the same `put_item`, in the same blocks.
    Its cost over the `put_item` is DynamoDB Local's answer to an UpdateItem, not the handler's Python."""
    from bench.dynamodb_local_profile import complete_calls
    from bench.webhook_events import baseline_item
    from runrelay.aws_clients import client
    from runrelay.task_ids import task_uuid_for

    completions = complete_calls(client("dynamodb"), table, calls, "warm-write")
    items = [baseline_item(str(task_uuid_for(f"warm-write-baseline:{i}"))) for i in range(calls)]

    def complete(i: int) -> float:
        start = time.perf_counter()
        completions[i]()
        return time.perf_counter() - start

    return alternating_blocks(calls, complete, lambda i: put(items[i]))


def webhook_child_samples(module: str, stack_name: str, calls: int, **options: Any) -> Any:
    """`<module>.child(calls, table, secret, **options)` run in a fresh interpreter with the webhook's
    Lambda environment, against a local stack of its own; what the child reported."""
    with harness.local_aws(stack_name) as aws:
        from bench.cold_start import webhook_secret

        code = _CHILD.format(
            path=[*harness.lambda_sys_path("webhook"), str(harness.ROOT)],
            module=module,
            calls=calls,
            table=aws.stack.table_name,
            secret=webhook_secret(aws),
            options=options,
        )
        return harness.run_child(code, harness.child_env(aws.function_env("webhook")), timeout=900)


def run(args: argparse.Namespace) -> Report:
    calls = 500 if args.quick else 5000
    samples = webhook_child_samples("bench.warm_webhook", "bwarm", calls, order=args.order)
    subject, baseline = samples["subject"], samples["baseline"]
    p50 = median(subject) / median(baseline)
    p99 = percentile(subject, 99) / percentile(baseline, 99)
    ms = 1000.0
    report = Report(
        f"warm webhook invocation vs bare put_item ({calls} calls each, "
        + (f"blocks of {BLOCK} alternating)" if args.order == "blocks" else "shuffled)"),
        [
            Check(
                "warm webhook p50 / put_item p50",
                p50,
                1.15,
                subject=median(subject) * ms,
                baseline=median(baseline) * ms,
                detail="ms",
            ),
            Check(
                "warm webhook p99 / put_item p99",
                p99,
                1.3,
                subject=percentile(subject, 99) * ms,
                baseline=percentile(baseline, 99) * ms,
                detail="ms",
            ),
        ],
        notes={"DynamoDB calls per stored completion": "1 UpdateItem (no GetItem) in the common case"},
    )
    report.checks.append(
        Check(
            "for information: the handler's write alone p50 / put_item p50 (after the judged calls)",
            median(samples["write"]) / median(samples["write_baseline"]),
            1.15,
            subject=median(samples["write"]) * ms,
            baseline=median(samples["write_baseline"]) * ms,
            detail="ms",
            informational=True,
        )
    )
    return report


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--order",
        choices=("blocks", "shuffled"),
        default="blocks",
        help="blocks of 50 alternating (judged), or one shuffled sequence (diagnostic)",
    )


if __name__ == "__main__":
    harness.main(run, _arguments)
