"""What the webhook's one write costs DynamoDB Local, variant by variant, against benchmark 4's `put_item`.

A diagnostic next to benchmark 4 (not part of `make bench`, nothing judged). One child interpreter with
the webhook's Lambda environment sends, on one plain boto3 client and in a shuffled order (no variant
always follows another), each variant to fresh rows as the submitter leaves them (`--order blocks`: in
turns of 50 calls of one variant, the order benchmark 4 judges):

- `put_item`: benchmark 4's baseline, the whole completed item;
- `update`: the store's completion (`DynamoTaskRepository._write_result`, first guess), as the webhook
  sends it;
- `no_condition`: the same UpdateItem without its ConditionExpression (the exactly-once lock);
- `one_action`: one `SET` of the same result entry, no condition: the least an update expression can do;
- `legacy`: the completion through the legacy `AttributeUpdates` and `Expected` parameters, no expression
  to parse (they cannot address a key inside the `results` map: the result goes in a top-level attribute);
- `update_json` / `put_item_json`: the completion and the baseline with the result entry as one JSON
  string rather than a map.

What separates the variants is DynamoDB Local's work: the client, its configuration and the payload's
size are the same for all (bench/README.md, "where DynamoDB Local spends the webhook's write").
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

from bench import harness
from bench.stats import Check, Report, median
from bench.warm_webhook import BLOCK, webhook_child_samples

VARIANTS = ("put_item", "update", "no_condition", "one_action", "legacy", "update_json", "put_item_json")
WARMUP = 500  # calls left out of the samples (the same share of each variant): the JVM's first compilations


def child(calls: int, table: str, secret: str, order: str = "shuffled") -> None:
    del secret  # no webhook event is built here
    import boto3

    from bench.warm_webhook import _seed_rows
    from bench.webhook_events import baseline_item, result_body
    from runrelay.adapters.dynamodb.codec import from_dynamo
    from runrelay.adapters.dynamodb.schema import task_key
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
    from runrelay.task_ids import task_uuid_for
    from runrelay.webhook_results import WebhookResult

    bare = boto3.client("dynamodb")
    store = DynamoTaskRepository(table, dynamodb=bare)
    uuids = {name: [str(task_uuid_for(f"variant-{name}:{i}")) for i in range(calls)] for name in VARIANTS}
    _seed_rows(bare, table, [uuid for name in VARIANTS if "put_item" not in name for uuid in uuids[name]])

    def entry(uuid: str) -> dict[str, Any]:
        return store._typed_entry(uuid, "0", WebhookResult.parse(result_body(uuid)["data"][0], uuid))

    def as_json(typed: dict[str, Any]) -> dict[str, Any]:
        return {"S": json.dumps(from_dynamo(typed["M"]), default=str)}

    entries = {name: [entry(uuid) for uuid in uuids[name]] for name in VARIANTS if "put_item" not in name}
    items = {name: [baseline_item(uuid) for uuid in uuids[name]] for name in ("put_item", "put_item_json")}
    for item in items["put_item_json"]:
        item["results"]["M"] = {rid: as_json(value) for rid, value in item["results"]["M"].items()}

    class Recorder:
        """Stands in for the client: keeps the UpdateItem the store would have sent."""

        def update_item(self, **request: Any) -> dict[str, Any]:
            self.request = request
            return {}

    recorder = Recorder()
    probe = DynamoTaskRepository(table, dynamodb=recorder)

    def completion(name: str, i: int) -> dict[str, Any]:
        """The UpdateItem the store sends for a first-guess completion of row `i` of variant `name` (its
        result entry as one JSON string for `update_json`): the variants start from the real request."""
        value = as_json(entries[name][i]) if name == "update_json" else entries[name][i]
        probe._write_result(uuids[name][i], "0", value, 0, None, True)
        return recorder.request

    def update(i: int) -> None:
        uuid = uuids["update"][i]
        written, _ = store._write_result(uuid, "0", entries["update"][i], 0, None, True)
        assert written

    def no_condition(i: int) -> None:
        request = completion("no_condition", i)
        del request["ConditionExpression"], request["ReturnValuesOnConditionCheckFailure"]
        del request["ExpressionAttributeValues"][":attempt"]
        bare.update_item(**request)

    def one_action(i: int) -> None:
        bare.update_item(
            TableName=table,
            Key=task_key(uuids["one_action"][i]),
            UpdateExpression="SET #r = :r",
            ExpressionAttributeNames={"#r": "result0"},
            ExpressionAttributeValues={":r": entries["one_action"][i]},
        )

    def legacy(i: int) -> None:
        now = {"N": str(round(time.time(), 3))}
        bare.update_item(
            TableName=table,
            Key=task_key(uuids["legacy"][i]),
            AttributeUpdates={
                "result0": {"Action": "PUT", "Value": entries["legacy"][i]},
                "resultCount": {"Action": "PUT", "Value": {"N": "1"}},
                "updatedAt": {"Action": "PUT", "Value": now},
                "status": {"Action": "PUT", "Value": {"S": "COMPLETED"}},
                "completedAt": {"Action": "PUT", "Value": now},
                "soleResultDue": {"Action": "DELETE"},
            },
            Expected={"soleResultDue": {"Value": {"N": "0"}, "ComparisonOperator": "EQ"}},
        )

    jobs = {
        "put_item": lambda i: bare.put_item(TableName=table, Item=items["put_item"][i]),
        "update": update,
        "no_condition": no_condition,
        "one_action": one_action,
        "legacy": legacy,
        "update_json": lambda i: bare.update_item(**completion("update_json", i)),
        "put_item_json": lambda i: bare.put_item(TableName=table, Item=items["put_item_json"][i]),
    }
    if order == "blocks":
        sequence = [
            name
            for start in range(0, calls, BLOCK)
            for name in VARIANTS
            for _ in range(min(BLOCK, calls - start))
        ]
    else:
        sequence = [name for name in VARIANTS for _ in range(calls)]
        random.Random(17).shuffle(sequence)
    done = dict.fromkeys(VARIANTS, 0)
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for name in sequence:
        i = done[name]
        done[name] += 1
        start = time.perf_counter()
        jobs[name](i)
        if i >= WARMUP // len(VARIANTS):
            samples[name].append(time.perf_counter() - start)
    print(harness.RESULT_PREFIX + json.dumps(samples))


def run(args: argparse.Namespace) -> Report:
    calls = 300 if args.quick else 2500
    samples = webhook_child_samples("bench.update_variants", "bvariants", calls, order=args.order)
    ms = 1000.0

    def ratio(name: str, base: str) -> Check:
        return Check(
            f"{name} p50 / {base} p50",
            median(samples[name]) / median(samples[base]),
            0.0,
            "min",
            subject=median(samples[name]) * ms,
            baseline=median(samples[base]) * ms,
            detail="ms",
            informational=True,
        )

    checks = [ratio(name, "put_item") for name in VARIANTS[1:6]]
    checks.append(ratio("update_json", "put_item_json"))
    order = "shuffled" if args.order == "shuffled" else f"in turns of {BLOCK}"
    title = f"the webhook's write on DynamoDB Local, variant by variant ({calls} calls each, {order})"
    return Report(title, checks)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--order",
        choices=("shuffled", "blocks"),
        default="shuffled",
        help="one shuffled sequence, or turns of 50 calls of one variant (benchmark 4's order)",
    )


if __name__ == "__main__":
    harness.main(run, _arguments)
