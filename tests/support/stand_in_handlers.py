"""Stand-ins for the template's handlers, run by the local runtime in the functions' own processes.

Each call appends `{"function", "event", "environment"}` to the JSONL file named by RUNRELAY_TEST_CALLS,
so the test (another process) can read what every function received. The first SubmitFunction batch
fails all its records (ReportBatchItemFailures) so the SQS retry is observable; a marker file created
with O_EXCL makes that "first" hold across environments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SEEN_VARIABLES = ("TABLE_NAME", "AWS_ENDPOINT_URL_SQS", "AWS_LAMBDA_FUNCTION_NAME", "WEBHOOK_BASE_URL")


def _record(function: str, event: Any) -> None:
    line = {
        "function": function,
        "event": event,
        "environment": {name: os.environ.get(name, "") for name in SEEN_VARIABLES},
        "pid": os.getpid(),
    }
    with Path(os.environ["RUNRELAY_TEST_CALLS"]).open("a", encoding="utf-8") as calls:
        calls.write(json.dumps(line) + "\n")


def _first_call(name: str) -> bool:
    try:
        os.close(os.open(f"{os.environ['RUNRELAY_TEST_CALLS']}.{name}", os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def submit(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record("SubmitFunction", event)
    failed = [record["messageId"] for record in event["Records"]] if _first_call("submit") else []
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def webhook(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record("WebhookFunction", event)
    return {"statusCode": 202, "body": json.dumps({"token": event["queryStringParameters"]["token"]})}


def reconcile(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record("ReconcileFunction", event)
    return {"checked": 0}
