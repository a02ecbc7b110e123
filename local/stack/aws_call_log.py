"""A log of the AWS calls a function's code makes, for checking its IAM role against what it really calls.

Loaded into each worker process of the local runtime through RUNRELAY_LOCAL_PRELOAD (see
`local/stack/lambda_bootstrap.py`), like `aws_faults.py`; enabled by RUNRELAY_AWS_CALL_LOG=<folder>. It
wraps botocore's `BaseClient._make_api_call`, i.e. every API call of every client in that process
(once per call, not per retry; once per page of a paginator), and appends one JSON line per call to
`<folder>/<pid>.jsonl`: the function (AWS_LAMBDA_FUNCTION_NAME), the service, the operation and the
resources the call names (`resources_of`). Nothing of the payload (items, bodies, messages) is kept,
but for the capacity mode's unmetered INSERTs below.

With RUNRELAY_AWS_CALL_CAPACITY=1 as well, every DynamoDB call that can report it asks for its consumed
capacity (`ReturnConsumedCapacity: INDEXES`) and the line carries it (`capacity`: write and read units,
table and indexes summed), and a call refused by DynamoDB carries its error code (`error`): what the
capacity benchmark (`bench/write_units.py`) sums. The functions never read that field, so asking for it
changes nothing they do. A BatchExecuteStatement DynamoDB reports no capacity for (DynamoDB Local) keeps
the items its INSERTs wrote (`unmetered`), for the benchmark to measure them as PutItems.

This file imports only the standard library and botocore: it runs in the workers, where only the
function's code, its layers and the runtime's packages are importable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ENV_VAR = "RUNRELAY_AWS_CALL_LOG"
CAPACITY_ENV_VAR = "RUNRELAY_AWS_CALL_CAPACITY"
# The DynamoDB operations that take ReturnConsumedCapacity.
CAPACITY_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "ExecuteTransaction",
    }
)

# Parameters that name what a call acts on (the IAM resource), and nothing else.
_NAMING_PARAMETERS = ("TableName", "IndexName", "Bucket", "Key", "QueueUrl", "SecretId")


def resources_of(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """What a call acts on: the naming parameters, plus the tables of a batch or transaction (each
    with the kind of item action: Put, Update, Delete, ConditionCheck, Get) and the buses of PutEvents."""
    found: dict[str, Any] = {
        name: params[name]
        for name in _NAMING_PARAMETERS
        if isinstance(params.get(name), str) and params[name]  # a DynamoDB Key is an item's key: not kept
    }
    if params.get("VersionId"):
        found["VersionId"] = True  # reading a version is its own IAM action
    if operation in ("TransactWriteItems", "TransactGetItems"):
        found["TransactItems"] = [
            {"Action": kind, "TableName": spec.get("TableName", "")}
            for item in params.get("TransactItems") or []
            for kind, spec in item.items()
        ]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        found["Tables"] = sorted(params.get("RequestItems") or {})
    if operation in ("BatchExecuteStatement", "ExecuteStatement"):
        statements = params.get("Statements") or [params]
        found["Statements"] = [partiql_target(str(s.get("Statement", ""))) for s in statements]
    if operation == "PutEvents":
        found["EventBusNames"] = sorted(
            {str(entry.get("EventBusName") or "default") for entry in params.get("Entries") or []}
        )
    return found


_PARTIQL_TARGET = re.compile(
    r'\s*(?P<verb>INSERT\s+INTO|UPDATE|DELETE\s+FROM|SELECT\s.*?\sFROM)\s+"(?P<table>[^"]+)"', re.I | re.S
)


def partiql_target(statement: str) -> dict[str, str]:
    """A PartiQL statement's kind (Insert, Update, Delete, Select: IAM's PartiQL<kind> action) and table."""
    match = _PARTIQL_TARGET.match(statement)
    if match is None:
        return {"Action": "Unknown", "TableName": ""}
    return {"Action": match["verb"].split()[0].capitalize(), "TableName": match["table"]}


_INSERTED_NAMES = re.compile(r"'(\w+)'\s*:\s*\?")


def unmetered_inserts(params: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, Any]:
    """What a BatchExecuteStatement wrote when DynamoDB reported no capacity for it (DynamoDB Local does
    not; AWS does): each INSERT that succeeded, as its table and item (for `bench/write_units.py` to
    have DynamoDB measure the same item's PutItem, which AWS charges the same), and how many were refused."""
    items, refused = [], 0
    for statement, answer in zip(
        params.get("Statements") or [], response.get("Responses") or [], strict=False
    ):
        target = partiql_target(str(statement.get("Statement", "")))
        if target["Action"] != "Insert":
            continue
        if answer.get("Error"):
            refused += 1
            continue
        names = _INSERTED_NAMES.findall(statement["Statement"])
        items.append(
            {"TableName": target["TableName"], "Item": dict(zip(names, statement["Parameters"], strict=True))}
        )
    return {"items": items, "refused": refused}


_READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})


def consumed_units(operation: str, response: Mapping[str, Any]) -> dict[str, float]:
    """Units a DynamoDB response reports: `write` and `read` (table and indexes summed), and of the
    writes, those of the indexes (`index_write`): AWS charges a transaction's table writes twice,
    which DynamoDB Local does not report (`bench/write_units.py` doubles them)."""
    capacity = response.get("ConsumedCapacity")
    entries = capacity if isinstance(capacity, list) else [capacity] if capacity else []
    write = read = index_write = 0.0
    for entry in entries:
        entry_write = entry.get("WriteCapacityUnits") or 0.0
        entry_read = entry.get("ReadCapacityUnits") or 0.0
        if not entry_write and not entry_read:  # only the total: the operation says which it is
            total = entry.get("CapacityUnits") or 0.0
            entry_read, entry_write = (total, 0.0) if operation in _READS else (0.0, total)
        write += entry_write
        read += entry_read
        if entry_write:
            for index in (entry.get("GlobalSecondaryIndexes") or {}).values():
                index_write += index.get("WriteCapacityUnits") or index.get("CapacityUnits") or 0.0
    return {"write": write, "read": read, "index_write": index_write}


def install(folder: str, *, capacity: bool = False) -> Any:
    """Wrap every client's API calls in this process; returns a function that undoes it."""
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    original = BaseClient._make_api_call
    path = os.path.join(folder, f"{os.getpid()}.jsonl")

    def make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        service = self.meta.service_model.endpoint_prefix
        line: dict[str, Any] = {
            "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            "service": service,
            "operation": operation_name,
            "resources": resources_of(operation_name, api_params or {}),
        }
        measured = capacity and service == "dynamodb" and operation_name in CAPACITY_OPERATIONS
        if measured and not api_params.get("ReturnConsumedCapacity"):
            api_params = {**api_params, "ReturnConsumedCapacity": "INDEXES"}
        try:
            response = original(self, operation_name, api_params)
        except ClientError as error:
            if measured:
                line["error"] = error.response.get("Error", {}).get("Code", "")
            raise
        else:
            if measured:
                line["capacity"] = consumed_units(operation_name, response)
                if operation_name == "BatchExecuteStatement" and not response.get("ConsumedCapacity"):
                    line["unmetered"] = unmetered_inserts(api_params, response)
            return response
        finally:
            _append(path, line)

    BaseClient._make_api_call = make_api_call

    def uninstall() -> None:
        BaseClient._make_api_call = original

    return uninstall


def _append(path: str, line: Mapping[str, Any]) -> None:
    data = (json.dumps(line, sort_keys=True) + "\n").encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, data)  # one small O_APPEND write: the threads' lines never mix
    finally:
        os.close(descriptor)


def read_calls(folder: str | Path) -> Iterator[dict[str, Any]]:
    """Every call logged in `folder` (by any worker process)."""
    for path in sorted(Path(folder).glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)


def install_from_environment() -> None:
    folder = os.environ.get(ENV_VAR)
    if folder:
        os.makedirs(folder, exist_ok=True)
        install(folder, capacity=os.environ.get(CAPACITY_ENV_VAR) == "1")


if __name__ == "<run_path>":  # run as a preload file by local/stack/lambda_bootstrap.py
    install_from_environment()
