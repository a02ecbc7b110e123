"""Conditional writes and transactions, shared by the task and job repositories.

A cancelled transaction writes nothing; the reasons say which actions' conditions failed. Conflicts
with concurrent writers (and throttling inside a transaction) are retried with backoff here, once for
both repositories.
"""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

# TransactWriteItems takes at most 100 actions; one transaction is one round trip instead of 100.
TRANSACTION_LIMIT = 100
_CONFLICT_RETRIES = 8
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_PATIENT_ATTEMPTS = 6
# BatchExecuteStatement takes at most 25 statements.
INSERT_BATCH_LIMIT = 25
# A statement of a batch fails on its own, with these codes (BatchStatementError): the transient ones are
# sent again, a duplicate key is the answer "already there", anything else is an error of ours.
_TRANSIENT_STATEMENT_CODES = frozenset(
    {
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
        "InternalServerError",
        "TransactionConflict",
    }
)
_EXISTS_STATEMENT_CODES = frozenset({"DuplicateItem", "ConditionalCheckFailed"})
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
T = TypeVar("T")


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_condition_failure(error: ClientError) -> bool:
    return error_code(error) == "ConditionalCheckFailedException"


def patiently(call: Callable[[], T]) -> T:
    """`call`, tried again after transient failures that got through botocore's own retries, for a few
    seconds more. Botocore stops retrying once its retry quota is spent, and a chunk's rows are a hundred
    calls: without this, a short throttling burst or outage would fail the record at once, and burn
    its deliveries long before SQS's backoff could outlast the trouble."""
    for attempt in range(_PATIENT_ATTEMPTS):
        try:
            return call()
        except ClientError as error:
            if error_code(error) not in _TRANSIENT_CODES or attempt + 1 == _PATIENT_ATTEMPTS:
                raise
        except (ConnectionError, HTTPClientError):
            if attempt + 1 == _PATIENT_ATTEMPTS:
                raise
        _pause(attempt)
    raise AssertionError("unreachable")


def _pause(attempt: int) -> None:
    """The wait before trying again after `attempt` (from 0) failed: doubling, jittered, at most 5 s."""
    time.sleep(random.uniform(0.5, 1.0) * min(5.0, 0.2 * 2**attempt))


def insert_batch(dynamodb: Any, table_name: str, items: Sequence[Mapping[str, Any]]) -> list[int]:
    """Create each of up to 25 items unless an item with its key exists, in one call: PartiQL's INSERT
    is a conditional create (DuplicateItem when the key exists), and BatchExecuteStatement applies each
    statement on its own, so this is 25 conditional PutItems in one round trip, at the same write units.
    Statements that fail transiently are sent again (patiently, as `patiently`); the indexes of the
    items that were there already are returned."""
    if len(items) > INSERT_BATCH_LIMIT:
        raise ValueError(f"at most {INSERT_BATCH_LIMIT} items per call, not {len(items)}")
    statements = [_insert_statement(table_name, item) for item in items]
    pending = list(range(len(items)))
    existing: list[int] = []
    for attempt in range(_PATIENT_ATTEMPTS):
        batch = [statements[i] for i in pending]
        answer = patiently(functools.partial(dynamodb.batch_execute_statement, Statements=batch))
        retry: list[int] = []
        for index, response in zip(pending, answer["Responses"], strict=True):
            code = (response.get("Error") or {}).get("Code")
            if code is None:
                continue
            if code in _EXISTS_STATEMENT_CODES:
                existing.append(index)
            elif code in _TRANSIENT_STATEMENT_CODES and attempt + 1 < _PATIENT_ATTEMPTS:
                retry.append(index)
            else:
                message = response["Error"].get("Message", "")
                raise ClientError(
                    {"Error": {"Code": code, "Message": f"statement {index}: {message}"}},
                    "BatchExecuteStatement",
                )
        if not retry:
            return sorted(existing)
        pending = retry
        _pause(attempt)
    raise AssertionError("unreachable")


def _insert_statement(table_name: str, item: Mapping[str, Any]) -> dict[str, Any]:
    names = list(item)
    for name in names:  # our own attribute names, never input: they go into the statement's text
        if not _ATTRIBUTE_NAME.fullmatch(name):
            raise ValueError(f"attribute name {name!r} cannot be written in a PartiQL statement")
    fields = ", ".join(f"'{name}': ?" for name in names)
    return {
        "Statement": f'INSERT INTO "{table_name}" VALUE {{{fields}}}',
        "Parameters": [item[name] for name in names],
    }


def write_one(dynamodb: Any, action: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """One conditional Put or Update (half the write units of a transaction): (written, old item)."""
    (kind, params), *_ = action.items()
    write = dynamodb.put_item if kind == "Put" else dynamodb.update_item
    try:
        write(**params)
    except ClientError as error:
        if not is_condition_failure(error):
            raise
        return False, error.response.get("Item")
    return True, None


def transact(dynamodb: Any, actions: list[dict[str, Any]]) -> dict[int, dict[str, Any] | None]:
    """All of `actions` or none: {} when written, else {index: old item or None} for each action whose
    condition failed. Cancellations for any other reason (a concurrent write) are retried."""
    for attempt in range(_CONFLICT_RETRIES + 1):
        try:
            dynamodb.transact_write_items(TransactItems=actions)
        except ClientError as error:
            if error_code(error) != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons") or []
            failed = {
                index: reason.get("Item")
                for index, reason in enumerate(reasons)
                if reason.get("Code") == "ConditionalCheckFailed"
            }
            if failed:
                return failed
            if attempt == _CONFLICT_RETRIES:
                raise
            time.sleep(random.uniform(0, 0.02 * 2**attempt))
            continue
        return {}
    raise AssertionError("unreachable")
