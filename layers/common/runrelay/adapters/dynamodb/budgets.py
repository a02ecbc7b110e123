"""The spend ledger on DynamoDB: one item per budget, `committed` dollars in it (`domain.budgets`).

Item: pk=`SPEND#<scope>#<name>`, sk=`SPEND`: `committedUSD` (costs of final tasks + estimates of tasks in
flight), `spentUSD` (costs of final tasks alone), `limitUSD` (the budget last reserved against). A
reservation is one conditional ADD: DynamoDB applies it atomically, so two submitters can never both fit
into the last room of a budget. Settlements are written by `DynamoJobRepository.record_finals`, in the
write that counts the final tasks (`settlement_actions`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ...aws_clients import client
from ...domain.budgets import Budget, Settlement
from .schema import spend_key
from .writes import transact, write_one


def _usd(value: float) -> dict[str, str]:
    return {"N": f"{value:.10f}"}


class DynamoSpendLedger:
    def __init__(self, table_name: str, *, retention_days: int = 30, dynamodb: Any = None) -> None:
        self.table_name = table_name
        self.retention_seconds = retention_days * 86_400
        self.dynamodb = dynamodb if dynamodb is not None else client("dynamodb")

    def reserve(self, budgets: Sequence[Budget], amount_usd: float) -> Budget | None:
        """Add `amount_usd` to every budget's committed dollars if each stays within its limit; else
        change nothing and return the first budget that has no room."""
        for budget in budgets:
            if amount_usd > budget.limit_usd:
                return budget
        actions = [self._reserve_action(budget, amount_usd) for budget in budgets]
        if not actions:
            return None
        if len(actions) == 1:
            written, _ = write_one(self.dynamodb, actions[0])
            return None if written else budgets[0]
        failed = transact(self.dynamodb, actions)
        return budgets[min(failed)] if failed else None

    def _reserve_action(self, budget: Budget, amount_usd: float) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": spend_key(budget.scope, budget.name),
                "UpdateExpression": "ADD committedUSD :amount SET limitUSD = :limit, "
                "expiresAt = if_not_exists(expiresAt, :expires)",
                "ConditionExpression": "attribute_not_exists(committedUSD) OR committedUSD <= :room",
                "ExpressionAttributeValues": {
                    ":amount": _usd(amount_usd),
                    ":limit": _usd(budget.limit_usd),
                    ":room": _usd(budget.limit_usd - amount_usd),
                    ":expires": {"N": str(int(time.time() + self.retention_seconds))},
                },
            }
        }

    def release(self, budgets: Sequence[Budget], amount_usd: float) -> None:
        """Give back a reservation that was not needed (its tasks had been sent before)."""
        for budget in budgets:
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key=spend_key(budget.scope, budget.name),
                UpdateExpression="ADD committedUSD :amount",
                ExpressionAttributeValues={":amount": _usd(-amount_usd)},
            )

    def committed(self, scope: str, name: str) -> tuple[float, float]:
        """(committed, spent) dollars of a budget (0, 0 when nothing was ever reserved)."""
        item = self.dynamodb.get_item(
            TableName=self.table_name, Key=spend_key(scope, name), ConsistentRead=True
        ).get("Item", {})
        return float(item.get("committedUSD", {}).get("N", 0)), float(item.get("spentUSD", {}).get("N", 0))


def settlement_actions(table_name: str, settlements: Sequence[Settlement]) -> list[dict[str, Any]]:
    """The updates that settle final tasks against each budget they were sent under, one per budget
    (a transaction may change an item only once)."""
    changes: dict[tuple[str, str], list[float]] = {}
    for settlement in settlements:
        for budget in settlement.reservation.budgets_of(settlement.source_id):
            change = changes.setdefault(budget, [0.0, 0.0])
            change[0] += settlement.change_usd
            change[1] += settlement.cost_usd
    return [
        {
            "Update": {
                "TableName": table_name,
                "Key": spend_key(scope, name),
                "UpdateExpression": "ADD committedUSD :change, spentUSD :cost",
                "ExpressionAttributeValues": {":change": _usd(change), ":cost": _usd(cost)},
            }
        }
        for (scope, name), (change, cost) in changes.items()
    ]
