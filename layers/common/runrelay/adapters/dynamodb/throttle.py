"""The shared throttle record on DynamoDB: one item, written only when Runware pushes back.

Best effort by design: pacing must never stop a submission, so an error reading or writing the item is
logged and taken as "no throttle" (each submitter still backs off on its own 429s). Writes are
conditional on what was read, so two submitters told at once double the spacing once, not twice. The
item expires through the table's TTL a minute after it stops holding anyone back.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ...aws_clients import client
from ...domain.throttle import Throttle
from .schema import throttle_key
from .writes import is_condition_failure

log = logging.getLogger(__name__)
_EXPIRY_MARGIN_SECONDS = 60
_NAMES = {"#until": "until", "#interval": "interval", "#at": "throttledAt"}


def _number(value: float) -> dict[str, str]:
    return {"N": str(round(value, 3))}


class DynamoThrottleStore:
    def __init__(self, table_name: str, *, service: str = "runware", dynamodb: Any = None) -> None:
        self.table_name = table_name
        self.key = throttle_key(service)
        self.dynamodb = dynamodb if dynamodb is not None else client("dynamodb")

    def current(self) -> Throttle | None:
        try:
            item = self.dynamodb.get_item(
                TableName=self.table_name,
                Key=self.key,
                ProjectionExpression="#until, #interval, #at",
                ExpressionAttributeNames=_NAMES,
            ).get("Item")
        except (BotoCoreError, ClientError) as error:
            log.warning("throttle record not readable, going on without it: %s", error)
            return None
        if not item:
            return None
        return Throttle(
            until=float(item["until"]["N"]),
            interval=float(item["interval"]["N"]),
            throttled_at=float(item["throttledAt"]["N"]),
        )

    def record(self, throttle: Throttle, *, replacing: Throttle | None) -> None:
        if replacing is None:
            condition, values = "attribute_not_exists(pk)", {}
        else:
            condition, values = "#at = :seen", {":seen": _number(replacing.throttled_at)}
        try:
            self.dynamodb.put_item(
                TableName=self.table_name,
                Item={
                    **self.key,
                    "until": _number(throttle.until),
                    "interval": _number(throttle.interval),
                    "throttledAt": _number(throttle.throttled_at),
                    "expiresAt": {"N": str(int(throttle.over_at()) + _EXPIRY_MARGIN_SECONDS)},
                },
                ConditionExpression=condition,
                **({"ExpressionAttributeNames": {"#at": "throttledAt"}} if replacing else {}),
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except ClientError as error:
            if is_condition_failure(error):
                self.extend_until(throttle.until)  # another submitter recorded this round first
                return
            log.warning("throttle record not written, going on without it: %s", error)
        except BotoCoreError as error:
            log.warning("throttle record not written, going on without it: %s", error)

    def extend_until(self, until: float) -> None:
        try:
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key=self.key,
                UpdateExpression="SET #until = :until",
                # Never shortened, and never a record made of a cool-down alone.
                ConditionExpression="attribute_exists(pk) AND #until < :until",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={":until": _number(until)},
            )
        except ClientError as error:
            if not is_condition_failure(error):
                log.warning("throttle record not extended, going on without it: %s", error)
        except BotoCoreError as error:
            log.warning("throttle record not extended, going on without it: %s", error)
