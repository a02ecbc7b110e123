"""Realistic webhook traffic: task rows in the table, and API Gateway v2 events Runware would cause."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.domain.tasks import NewTask, TaskStatus
from runrelay.task_ids import task_uuid_for
from runrelay.webhook_token import TOKEN_PARAMETER, WEBHOOK_PATH, token_for

TEXT = "Amazon SQS is a managed message queue that decouples producers from consumers. " * 3


def result_body(task_uuid: str, seed: int = 7) -> dict[str, Any]:
    """The wrapped shape Runware POSTs for one textInference result."""
    return {
        "data": [
            {
                "taskType": "textInference",
                "taskUUID": task_uuid,
                "text": TEXT,
                "finishReason": "stop",
                "seed": seed,
                "cost": 0.000123,
                "usage": {"promptTokens": 12, "completionTokens": 64, "totalTokens": 76},
                "status": "success",
            }
        ]
    }


def api_event(task_uuid: str, secret: str) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event as API Gateway builds it for Runware's POST."""
    token = token_for(secret, task_uuid)
    body = json.dumps(result_body(task_uuid))
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": f"POST {WEBHOOK_PATH}",
        "rawPath": WEBHOOK_PATH,
        "rawQueryString": f"{TOKEN_PARAMETER}={token}",
        "headers": {
            "accept": "*/*",
            "content-length": str(len(body)),
            "content-type": "application/json",
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "user-agent": "Runware-Webhook/1.0",
            "x-amzn-trace-id": "Root=1-67890abc-1234567890abcdef12345678",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "queryStringParameters": {TOKEN_PARAMETER: token},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": WEBHOOK_PATH,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "Runware-Webhook/1.0",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"POST {WEBHOOK_PATH}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }


def submitted_tasks(store: DynamoTaskRepository, prefix: str, count: int) -> list[str]:
    """`count` PENDING single-result task rows, as the submitter leaves them; their taskUUIDs."""
    from concurrent.futures import ThreadPoolExecutor

    tasks = [
        NewTask(str(task_uuid_for(f"{prefix}:{i}")), f"{prefix}:{i}", f"bench:{prefix}", i)
        for i in range(count)
    ]

    def create(task: NewTask) -> str:
        store.create_pending(task)
        return task.task_uuid

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(create, tasks))


def baseline_item(task_uuid: str) -> dict[str, Any]:
    """What the baseline `put_item` writes: the whole completed task item, the same result inside it."""
    from runrelay.webhook_results import WebhookResult

    store = DynamoTaskRepository("unused", dynamodb=object())  # builds items only: no client needed
    item = store._new_item(
        NewTask(task_uuid, f"base:{task_uuid}", "bench:base", 0), TaskStatus.COMPLETED, time.time()
    )
    result = result_body(task_uuid)["data"][0]
    entry = store._typed_entry(task_uuid, "r0123456789abcdef0123", WebhookResult.parse(result, task_uuid))
    item["results"] = {"M": {"r0123456789abcdef0123": entry}}
    item["resultCount"] = {"N": "1"}
    item["completedAt"] = item["updatedAt"]
    return item
