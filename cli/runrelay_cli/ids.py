"""Turning what a user types into tasks or a source: taskUUID, caller id, `s3://…#etag`, `sqs:…`, or a key.

Every name must match something already in the stack, or it is an `unknown id` error at once (`wait`
never waits on a name that matches nothing). A caller id names every task whose spec carried that `id`,
from any source, through the table's `ByCaller` index; an SQS spec's task is also found directly, as
`task_uuid_for("id:X")` (the submitter's idempotency key). An S3 object can be named by its source id,
`s3://bucket/key` (current ETag), its key, or the name of the local file uploaded under the input prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.inputs import S3ObjectRef, items_of_object
from runrelay.task_ids import task_uuid_for
from runrelay_cli.errors import CliError
from runrelay_cli.targets import Target

# An S3 ETag: the hex MD5 of the object, or of its parts with their count after a dash.
_ETAG = re.compile(r"^[0-9a-f]{32}(-[0-9]+)?$", re.IGNORECASE)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


@dataclass(frozen=True)
class TaskRef:
    task_uuid: str
    label: str


@dataclass(frozen=True)
class SourceRef:
    source_id: str
    s3: S3ObjectRef | None = None

    @property
    def label(self) -> str:
        return self.source_id


Ref = TaskRef | SourceRef


def caller_task_uuid(caller_id: str) -> str:
    return str(task_uuid_for(f"id:{caller_id}"))


def resolve(text: str, target: Target, store: DynamoTaskRepository, s3: Any) -> list[Ref]:
    """What `text` names (a caller id may name several tasks); CliError if it names nothing."""
    text = text.strip()
    if not text:
        raise CliError("an empty id names nothing")
    if _UUID.match(text):
        if store.get_task(text.lower(), resolve_payloads=False) is None:
            raise CliError(f"unknown task {text}: no such task in {target.description}")
        return [TaskRef(text.lower(), text.lower())]
    if text.startswith("sqs:"):
        if not store.source_has_tasks(text):
            raise CliError(
                f"unknown id {text!r}: no task of that SQS message in {target.description} "
                "(a message just sent is listed once the submit function has taken it)"
            )
        return [SourceRef(text)]
    if text.startswith("s3://"):
        bucket, _, rest = text.removeprefix("s3://").partition("/")
        key, etag = _key_and_etag(rest)
        found = _s3_source(s3, bucket, key, etag)
        if found is not None and etag is not None and not store.source_has_tasks(found.source_id):
            found = found if _object_has_etag(s3, bucket, key, etag) else None  # a typo names nothing
        return [found or _unknown(text, target)]
    callers = caller_tasks(store, text)
    if callers:
        return [TaskRef(task_uuid, f"caller id {text}") for task_uuid in callers]
    for key in dict.fromkeys([text, f"{target.input_prefix}{text}", target.input_prefix + _basename(text)]):
        found = _s3_source(s3, target.bucket_name, key, None)
        if found is not None:
            return [found]
    return _unknown(text, target)


def caller_tasks(store: DynamoTaskRepository, caller_id: str) -> list[str]:
    """taskUUIDs of the tasks whose spec carried `caller_id`, oldest first."""
    found: list[str] = []
    try:
        found = store.task_uuids_of_caller(caller_id)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ValidationException":
            raise  # a table made before the index existed: the direct lookup below still finds SQS tasks
    direct = caller_task_uuid(caller_id)
    if direct not in found and store.get_task(direct, resolve_payloads=False) is not None:
        found.append(direct)  # the index is eventually consistent; the table read is not
    return found


def _key_and_etag(rest: str) -> tuple[str, str | None]:
    """`key#etag` split at its last `#` when what follows is an ETag; a key may hold `#` itself."""
    key, sep, tail = rest.rpartition("#")
    if sep and _ETAG.match(tail):
        return key, tail
    return rest.removesuffix("#"), None


def _object_has_etag(s3: Any, bucket: str, key: str, etag: str) -> bool:
    """Whether the object's current version has this ETag (one just uploaded, its tasks not listed yet)."""
    head = _head(s3, bucket, key)
    return head is not None and _etag_of(head).lower() == etag.lower()


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The object's current version (HeadObject), or None if there is none to see."""
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound", "403"}:
            return None
        raise


def _etag_of(head: dict[str, Any]) -> str:
    return str(head["ETag"]).strip('"')


def _basename(text: str) -> str:
    return PurePosixPath(text.replace("\\", "/")).name


def _s3_source(s3: Any, bucket: str, key: str, etag: str | None) -> SourceRef | None:
    if not key:
        return None
    size = None
    if etag is None:
        head = _head(s3, bucket, key)
        if head is None:
            return None
        etag, size = _etag_of(head), head.get("ContentLength")
    ref = S3ObjectRef(bucket=bucket, key=key, etag=etag, size=size)
    return SourceRef(ref.source_id, ref)


def _unknown(text: str, target: Target) -> Any:
    raise CliError(
        f"unknown id {text!r}: not a taskUUID, a source id (s3://bucket/key#etag or sqs:<messageId>), "
        f"a caller id, or an object under s3://{target.bucket_name}/{target.input_prefix} "
        f"in the {target.description}"
    )


def expected_tasks(s3: Any, ref: SourceRef) -> int | None:
    """How many tasks an S3 source makes (read with the submitter's own parser); None if unknowable."""
    if ref.s3 is None:
        return None  # an SQS message cannot be read back
    try:
        body = s3.get_object(Bucket=ref.s3.bucket, Key=ref.s3.key, IfMatch=f'"{ref.s3.etag}"')["Body"]
    except ClientError:
        return None  # replaced or deleted since: count what the table holds
    try:
        return sum(1 for _ in items_of_object(ref.s3, body))
    finally:
        body.close()
