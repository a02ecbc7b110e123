"""Benchmark 7: DynamoDB write capacity per stored small completion (ReturnConsumedCapacity on
DynamoDB Local), plus the capacity of every other write in a task's life (for bench/README's cost)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bench import harness
from bench.stats import Check, Report


def consumed(client: Any, action: Callable[[], object], meter: Any = None) -> tuple[float, float]:
    """(write units, read units) consumed by every DynamoDB call `action` makes, indexes included. The
    PartiQL INSERTs DynamoDB Local leaves unmetered are measured by `meter` (`write_units.PutItemMeter`)."""
    from local.stack.aws_call_log import consumed_units, unmetered_inserts

    totals = [0.0, 0.0]
    sent: list[dict[str, Any]] = []  # the last call's parameters (the action's calls are sequential)

    def ask(params: dict[str, Any], **_: Any) -> None:
        params["ReturnConsumedCapacity"] = "INDEXES"
        sent[:] = [params]

    def add(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "BatchExecuteStatement" and not parsed.get("ConsumedCapacity"):
            for item in unmetered_inserts(sent[0], parsed)["items"]:
                totals[0] += meter.units(item["TableName"], item["Item"])
            return
        units = consumed_units(model.name, parsed)
        totals[0] += units["write"]
        totals[1] += units["read"]

    events = client.meta.events
    events.register("provide-client-params.dynamodb.*", ask)
    events.register("after-call.dynamodb.*", add)
    try:
        action()
    finally:
        events.unregister("provide-client-params.dynamodb.*", ask)
        events.unregister("after-call.dynamodb.*", add)
    return totals[0], totals[1]


def run(args: argparse.Namespace) -> Report:
    from bench.webhook_events import result_body
    from bench.write_units import PutItemMeter, empty_copy
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
    from runrelay.contract import InferenceResult
    from runrelay.domain.tasks import NewTask
    from runrelay.task_ids import line_key, line_task_uuid, task_uuid_for

    with harness.local_aws("bcap") as aws:
        client = aws.clients.dynamodb
        store = DynamoTaskRepository(aws.stack.table_name, dynamodb=client)
        meter = PutItemMeter(client, {aws.stack.table_name: empty_copy(client, aws.stack.table_name)})
        # A file's line, keyed as the submitter keys it: its row is in no index, its new tally is.
        source = "s3://bench/capacity.jsonl#e"
        task = NewTask(line_task_uuid(source, 1), line_key(source, 1), source, 1)
        pending = consumed(client, lambda: store.create_pending(task), meter)
        result = InferenceResult.model_validate(result_body(task.task_uuid)["data"][0])
        completion = consumed(client, lambda: store.store_result(result))
        duplicate = consumed(client, lambda: store.store_result(result))
        multi = NewTask(str(task_uuid_for("capacity-2")), "capacity-2", "bench:capacity", 1, number_results=2)
        store.create_pending(multi)
        first_of_two = consumed(
            client, lambda: store.store_result(InferenceResult(taskUUID=multi.task_uuid, text="one", seed=1))
        )
    return Report(
        "DynamoDB capacity per write (ReturnConsumedCapacity INDEXES, DynamoDB Local)",
        [Check("WCU per stored small completion", completion[0], 2.0, unit=" WCU", subject=completion[0])],
        notes={
            "create_pending (a new tally with its BySource entry, the row's INSERT in no index)": (
                f"{pending[0]:g} WCU"
            ),
            "completion (one UpdateItem)": f"{completion[0]:g} WCU, {completion[1]:g} RCU",
            "duplicate delivery": f"{duplicate[0]:g} WCU, {duplicate[1]:g} RCU",
            "first result of a 2-result task (guess refused, then written)": (
                f"{first_of_two[0]:g} WCU, {first_of_two[1]:g} RCU"
            ),
        },
    )


if __name__ == "__main__":
    harness.main(run)
