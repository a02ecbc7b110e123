"""Where a warm webhook's time goes: each layer of the handler against the same bare `put_item`.

A diagnostic next to benchmark 4 (not part of `make bench`, nothing judged). One child interpreter with
the webhook's Lambda environment runs, interleaved call by call in a rotating order, on fresh PENDING
rows each time:

- `put_item`: the baseline of benchmark 4 (a bare boto3 client writing the completed item);
- `update`: the store's conditional UpdateItem alone, its result entry built beforehand;
- `store_result`: `DynamoTaskRepository.store_result` on an already parsed result;
- `receive`: `WebhookReceiver.receive` on the raw body and token (parse, authenticate, store);
- `handler`: the Lambda handler on an API Gateway v2 event (adds logging, metrics, the response).

The differences between neighbours are what each layer costs in place, between network waits, which is
several times what the same Python costs when looped hot. Each layer's time is also split into the
calling thread's CPU time and the rest, the wait for DynamoDB Local's answer.
"""

from __future__ import annotations

import argparse
import json
import time

from bench import harness
from bench.stats import Check, Report, median, percentile
from bench.warm_webhook import webhook_child_samples

LAYERS = ("put_item", "update", "store_result", "receive", "handler")


def child(calls: int, table: str, secret: str) -> None:
    import contextlib
    import io

    import app  # the webhook handler, as Lambda imports it
    import boto3

    from bench.warm_webhook import BLOCK, _Context, _seed_rows
    from bench.webhook_events import api_event, baseline_item, result_body
    from runrelay import wiring
    from runrelay.task_ids import task_uuid_for
    from runrelay.webhook_results import WebhookResult
    from runrelay.webhook_token import TOKEN_PARAMETER

    bare = boto3.client("dynamodb")
    receiver = wiring.webhook_receiver()
    store = wiring.task_repository()
    total = calls + BLOCK  # the first BLOCK of each layer warms it up, untimed
    uuids = {layer: [str(task_uuid_for(f"breakdown-{layer}:{i}")) for i in range(total)] for layer in LAYERS}
    _seed_rows(bare, table, [uuid for layer in LAYERS[1:] for uuid in uuids[layer]])
    baseline_items = [baseline_item(uuid) for uuid in uuids["put_item"]]
    parsed = {
        layer: [WebhookResult.parse(result_body(uuid)["data"][0], uuid) for uuid in uuids[layer]]
        for layer in ("update", "store_result")
    }

    def rid(result: WebhookResult) -> str:
        return str(result.slot)

    entries = [store._typed_entry(r.taskUUID, rid(r), r) for r in parsed["update"]]
    events = {layer: [api_event(uuid, secret) for uuid in uuids[layer]] for layer in ("receive", "handler")}
    context = _Context()

    def update(i: int) -> None:
        result = parsed["update"][i]
        written, _ = store._write_result(result.taskUUID, rid(result), entries[i], 0, None, True)
        assert written

    def receive(i: int) -> None:
        event = events["receive"][i]
        reply, _ = receiver.receive(event["body"], event["queryStringParameters"][TOKEN_PARAMETER])
        assert reply.status == 200, reply

    def handler(i: int) -> None:
        answer = app.lambda_handler(events["handler"][i], context)
        assert answer["statusCode"] == 200, answer

    jobs = {
        "put_item": lambda i: bare.put_item(TableName=table, Item=baseline_items[i]),
        "update": update,
        "store_result": lambda i: store.store_result(parsed["store_result"][i]),
        "receive": receive,
        "handler": handler,
    }
    samples: dict[str, list[float]] = {layer: [] for layer in LAYERS}
    cpu: dict[str, list[float]] = {layer: [] for layer in LAYERS}
    sink = io.StringIO()
    order = list(LAYERS)
    with contextlib.redirect_stdout(sink):  # the function's JSON logs and EMF lines
        for i in range(total):
            order = order[1:] + order[:1]
            for layer in order:
                start, cpu_start = time.perf_counter(), time.thread_time()
                jobs[layer](i)
                if i >= BLOCK:
                    samples[layer].append(time.perf_counter() - start)
                    cpu[layer].append(time.thread_time() - cpu_start)
            sink.seek(0)
            sink.truncate()
    print(harness.RESULT_PREFIX + json.dumps({"wall": samples, "cpu": cpu}))


def run(args: argparse.Namespace) -> Report:
    calls = 300 if args.quick else 2000
    measured = webhook_child_samples("bench.warm_breakdown", "bbreak", calls)
    samples, cpu = measured["wall"], measured["cpu"]
    base = samples["put_item"]
    ms = 1000.0
    checks = [
        Check(
            f"{layer} p50 / put_item p50",
            median(samples[layer]) / median(base),
            0.0,
            "min",
            subject=median(samples[layer]) * ms,
            baseline=median(base) * ms,
            detail=f"ms (p99 {percentile(samples[layer], 99) * ms:.2f})",
            informational=True,
        )
        for layer in LAYERS[1:]
    ]
    # The calling thread's CPU time (Python, botocore, the socket calls) against the wall time: what is
    # left of a call is waiting for DynamoDB Local's answer.
    notes = {
        f"{layer}: CPU / waiting p50 ms": f"{median(cpu[layer]) * ms:.3f} / "
        f"{median([w - c for w, c in zip(samples[layer], cpu[layer], strict=True)]) * ms:.3f}"
        for layer in LAYERS
    }
    return Report(f"warm webhook, layer by layer ({calls} calls each, interleaved)", checks, notes)


if __name__ == "__main__":
    harness.main(run)
