"""Reads shared by tasks, tallies and operators' reads: BatchGetItem with its chunks of 100 and its
unprocessed keys, and a Query's pages. Each call is made patiently (`writes.patiently`): a reconciler run
or a stream batch reads thousands of keys, and a transient failure after botocore's retry quota is spent
would otherwise fail all of it."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .writes import patiently

BATCH_GET_LIMIT = 100


def batch_get(
    dynamodb: Any,
    table_name: str,
    keys: Sequence[Mapping[str, Any]],
    *,
    consistent: bool = True,
    projection: str | None = None,
    names: Mapping[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every item of `keys` that exists, in no particular order, 100 keys a request; keys DynamoDB
    leaves unprocessed are asked again."""
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        request: dict[str, Any] = {
            "Keys": list(keys[start : start + BATCH_GET_LIMIT]),
            "ConsistentRead": consistent,
        }
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        while request["Keys"]:
            answer = patiently(functools.partial(dynamodb.batch_get_item, RequestItems={table_name: request}))
            yield from answer.get("Responses", {}).get(table_name, [])
            request = {
                **request,
                "Keys": answer.get("UnprocessedKeys", {}).get(table_name, {}).get("Keys", []),
            }


def query_pages(dynamodb: Any, **params: Any) -> Iterator[dict[str, Any]]:
    """Every page of a Query with these parameters, in order."""
    while True:
        page: dict[str, Any] = patiently(functools.partial(dynamodb.query, **params))
        yield page
        if "LastEvaluatedKey" not in page:
            return
        params = {**params, "ExclusiveStartKey": page["LastEvaluatedKey"]}
