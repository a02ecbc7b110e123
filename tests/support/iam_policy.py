"""The functions' IAM roles in template.yaml, evaluated against the AWS calls their code made.

Each call logged by `local/stack/aws_call_log.py` becomes the IAM actions and resource ARNs AWS checks for it
(`permissions_for`); each function's `Policies` statements, with their intrinsics resolved, become
grants (`grants_of`); `check` says which calls no grant allows and which grants no call used.

Only what IAM needs is modelled: Allow statements with Action and Resource (the template uses nothing
else for the functions), `*`/`?` wildcards as IAM reads them, actions case-insensitive.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

# IAM has no TransactWriteItems / TransactGetItems actions: each item is checked as its own action.
_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}
_DYNAMODB_ITEM_OPERATIONS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "DescribeTable"}
_DYNAMODB_INDEX_OPERATIONS = {"Query", "Scan"}
# S3 operations by the action that governs them (a multipart upload is all s3:PutObject).
_S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
    "CopyObject": "s3:PutObject",
}
_S3_BUCKET_ACTIONS = {"ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket"}
_SQS_ACTIONS = {"SendMessage": "sqs:SendMessage", "SendMessageBatch": "sqs:SendMessage"}


class UnmappedCall(ValueError):
    """A logged call this module cannot turn into IAM terms: teach `permissions_for` about it."""


@dataclass(frozen=True)
class Permission:
    action: str
    resource: str  # an ARN


@dataclass(frozen=True)
class Grant:
    function: str
    sid: str
    action: str
    resource: str  # an ARN pattern

    def allows(self, permission: Permission) -> bool:
        return iam_match(self.action, permission.action, case_sensitive=False) and iam_match(
            self.resource, permission.resource
        )


@dataclass
class ArnBook:
    """Physical names (what calls carry) to ARNs (what policies name)."""

    region: str
    account_id: str
    tables: dict[str, str] = field(default_factory=dict)  # table name -> table ARN
    queues: dict[str, str] = field(default_factory=dict)  # queue URL -> queue ARN
    buses: dict[str, str] = field(default_factory=dict)  # bus name (or ARN) -> bus ARN
    secrets: dict[str, str] = field(default_factory=dict)  # secret name (or ARN) -> secret ARN
    partition: str = "aws"

    def table(self, name: str) -> str:
        if name.startswith("arn:"):
            return name
        return self._known(self.tables, name, "table")

    def queue(self, url: str) -> str:
        if url in self.queues:
            return self.queues[url]
        queue_name = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]
        return f"arn:{self.partition}:sqs:{self.region}:{self.account_id}:{queue_name}"

    def bucket_object(self, bucket: str, key: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}/{key}"

    def bucket(self, bucket: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}"

    def bus(self, name: str) -> str:
        if name in self.buses:
            return self.buses[name]
        if name.startswith("arn:"):
            return name
        return f"arn:{self.partition}:events:{self.region}:{self.account_id}:event-bus/{name}"

    def secret(self, secret_id: str) -> str:
        return secret_id if secret_id.startswith("arn:") else self._known(self.secrets, secret_id, "secret")

    @staticmethod
    def _known(book: Mapping[str, str], name: str, kind: str) -> str:
        if name not in book:
            raise UnmappedCall(f"no ARN known for {kind} {name!r}")
        return book[name]


def permissions_for(call: Mapping[str, Any], arns: ArnBook) -> list[Permission]:
    """The IAM (action, resource) pairs AWS checks for one logged call."""
    service, operation = call["service"], call["operation"]
    resources: Mapping[str, Any] = call.get("resources") or {}
    if service == "dynamodb":
        if operation in ("TransactWriteItems", "TransactGetItems"):
            return [
                Permission(_TRANSACT_ACTIONS[item["Action"]], arns.table(item["TableName"]))
                for item in resources["TransactItems"]
            ]
        if operation in ("BatchExecuteStatement", "ExecuteStatement"):
            # IAM checks each statement as PartiQLInsert / PartiQLUpdate / PartiQLDelete / PartiQLSelect.
            return [
                Permission(f"dynamodb:PartiQL{item['Action']}", arns.table(item["TableName"]))
                for item in resources["Statements"]
            ]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [Permission(f"dynamodb:{operation}", arns.table(t)) for t in resources["Tables"]]
        if operation in _DYNAMODB_ITEM_OPERATIONS:
            return [Permission(f"dynamodb:{operation}", arns.table(resources["TableName"]))]
        if operation in _DYNAMODB_INDEX_OPERATIONS:
            arn = arns.table(resources["TableName"])
            if resources.get("IndexName"):
                arn = f"{arn}/index/{resources['IndexName']}"
            return [Permission(f"dynamodb:{operation}", arn)]
    elif service == "s3":
        if operation in _S3_OBJECT_ACTIONS:
            action = _S3_OBJECT_ACTIONS[operation]
            if operation in ("GetObject", "HeadObject") and resources.get("VersionId"):
                action = "s3:GetObjectVersion"
            return [Permission(action, arns.bucket_object(resources["Bucket"], resources["Key"]))]
        if operation in _S3_BUCKET_ACTIONS:
            return [Permission(_S3_BUCKET_ACTIONS[operation], arns.bucket(resources["Bucket"]))]
    elif service == "sqs" and operation in _SQS_ACTIONS:
        return [Permission(_SQS_ACTIONS[operation], arns.queue(resources["QueueUrl"]))]
    elif service == "events" and operation == "PutEvents":
        return [Permission("events:PutEvents", arns.bus(bus)) for bus in resources["EventBusNames"]]
    elif service == "secretsmanager" and operation in ("GetSecretValue", "DescribeSecret"):
        return [Permission(f"secretsmanager:{operation}", arns.secret(resources["SecretId"]))]
    raise UnmappedCall(f"{service}:{operation} is not mapped to IAM actions ({dict(resources)})")


def iam_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM's wildcard match: `*` any run of characters (across `/` and `:`), `?` any one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def statements_of(function_properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Serverless::Function's `Policies`, all of which must be inline statements (no SAM policy
    templates, no managed policy names): what is granted must be readable here."""
    statements: list[dict[str, Any]] = []
    for policy in function_properties.get("Policies") or []:
        if not (isinstance(policy, Mapping) and set(policy) <= {"Version", "Statement"}):
            raise ValueError(f"not an inline policy document: {policy!r}")
        statements.extend(policy["Statement"])
    return statements


def grants_of(
    function: str, function_properties: Mapping[str, Any], resolve: Callable[[Any], Any]
) -> list[Grant]:
    """Every (action, resource pattern) one function's statements allow, intrinsics resolved."""
    grants = []
    for statement in statements_of(function_properties):
        unsupported = set(statement) - {"Sid", "Effect", "Action", "Resource"}
        if statement.get("Effect") != "Allow" or unsupported:
            raise ValueError(f"{function}: only plain Allow statements are modelled: {statement!r}")
        actions = _as_list(statement["Action"])
        patterns = _as_list(resolve(statement["Resource"]))
        grants.extend(
            Grant(function, str(statement.get("Sid", "")), str(action), str(pattern))
            for action in actions
            for pattern in patterns
        )
    return grants


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


@dataclass
class Verdict:
    denied: list[tuple[str, Permission, Mapping[str, Any]]]  # (function, permission, the call)
    unused: list[Grant]

    def render(self) -> str:
        lines = [f"DENIED {f}: {p.action} on {p.resource} (call {dict(c)})" for f, p, c in self.denied]
        lines += [f"UNUSED {g.function} [{g.sid}]: {g.action} on {g.resource}" for g in self.unused]
        return "\n".join(lines)


def check(
    grants: Mapping[str, list[Grant]],
    calls: Iterable[tuple[str, Mapping[str, Any]]],
    arns: ArnBook,
    *,
    allowed_unused: Iterable[tuple[str, str, str]] = (),
) -> Verdict:
    """Every call (function logical id, logged call) must be allowed by that function's grants, and
    every grant used by some call of that function unless (function, Sid, action) is in
    `allowed_unused`."""
    used: set[Grant] = set()
    denied: list[tuple[str, Permission, Mapping[str, Any]]] = []
    for function, call in calls:
        for permission in permissions_for(call, arns):
            allowing = [g for g in grants.get(function, []) if g.allows(permission)]
            if not allowing:
                denied.append((function, permission, call))
            used.update(allowing)
    exempt = set(allowed_unused)
    unused = [
        grant
        for function_grants in grants.values()
        for grant in function_grants
        if grant not in used and (grant.function, grant.sid, grant.action) not in exempt
    ]
    return Verdict(denied, unused)
