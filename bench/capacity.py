"""Benchmark 7: DynamoDB write capacity per stored small completion (ReturnConsumedCapacity on
DynamoDB Local), plus the capacity of every other write in a task's life (for bench/README's cost)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bench import harness
from bench.stats import Check, Report


def consumed(client: Any, action: Callable[[], object]) -> tuple[float, float]:
    """(write units, read units) consumed by every DynamoDB call `action` makes, indexes included."""
    totals = [0.0, 0.0]

    def ask(params: dict[str, Any], **_: Any) -> None:
        params["ReturnConsumedCapacity"] = "INDEXES"

    def add(parsed: dict[str, Any], **_: Any) -> None:
        capacity = parsed.get("ConsumedCapacity")
        for entry in capacity if isinstance(capacity, list) else [capacity] if capacity else []:
            totals[0] += entry.get("WriteCapacityUnits") or 0.0
            totals[1] += entry.get("ReadCapacityUnits") or 0.0
            if not entry.get("WriteCapacityUnits") and not entry.get("ReadCapacityUnits"):
                totals[0] += entry.get("CapacityUnits") or 0.0

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
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
    from runrelay.contract import InferenceResult
    from runrelay.domain.tasks import NewTask
    from runrelay.task_ids import task_uuid_for

    with harness.local_aws("bcap") as aws:
        client = aws.clients.dynamodb
        store = DynamoTaskRepository(aws.stack.table_name, dynamodb=client)
        task = NewTask(str(task_uuid_for("capacity")), "capacity", "bench:capacity", 0)
        pending = consumed(client, lambda: store.create_pending(task))
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
            "create_pending (PutItem, both indexes)": f"{pending[0]:g} WCU",
            "completion (one UpdateItem, OpenTasks entry removed)": (
                f"{completion[0]:g} WCU, {completion[1]:g} RCU"
            ),
            "duplicate delivery": f"{duplicate[0]:g} WCU, {duplicate[1]:g} RCU",
            "first result of a 2-result task (guess refused, then written)": (
                f"{first_of_two[0]:g} WCU, {first_of_two[1]:g} RCU"
            ),
        },
    )


if __name__ == "__main__":
    harness.main(run)
