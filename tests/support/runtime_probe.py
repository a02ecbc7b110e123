"""A handler that shows what its execution environment holds, run by the local runtime as any function.

- module state: `COUNTER` counts the events this process has served;
- Powertools Metrics: the metric set Powertools keeps per class is shown before this event adds to it;
- Powertools' parameter cache: the secret ids this process's SecretsProvider has cached;
- one event at a time: each call appends its pid and start/end times to RUNRELAY_TEST_CALLS;
- an SQS event whose body is {"sleep": s} sleeps s seconds on its first receive only (timeouts).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

COUNTER = 0
metrics = Metrics(namespace="probe", service="probe")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global COUNTER
    started = time.time()
    COUNTER += 1
    metrics_before = sorted(metrics.metric_set)
    metrics.add_metric(name=f"Probe{context.function_name[-6:]}", unit=MetricUnit.Count, value=1)
    if event.get("secretId"):
        parameters.get_secret(event["secretId"], max_age=300)
    provider = DEFAULT_PROVIDERS.get("secrets")
    cached = sorted(key[0] for key in getattr(provider, "store", {})) if provider else []
    for record in event.get("Records", []):
        body = json.loads(record.get("body") or "{}")
        if body.get("sleep") and record["attributes"]["ApproximateReceiveCount"] == "1":
            with Path(os.environ["RUNRELAY_TEST_CALLS"]).open("a", encoding="utf-8") as calls:
                calls.write(json.dumps({"sleeping": os.getpid(), "event": {}}) + "\n")
            time.sleep(float(body["sleep"]))
    if event.get("hold"):
        time.sleep(float(event["hold"]))
    answer = {
        "pid": os.getpid(),
        "counter": COUNTER,
        "metricsBefore": metrics_before,
        "cachedSecrets": cached,
        "functionName": context.function_name,
        "remainingMs": context.get_remaining_time_in_millis(),
        "started": started,
        "ended": time.time(),
    }
    with Path(os.environ["RUNRELAY_TEST_CALLS"]).open("a", encoding="utf-8") as calls:
        calls.write(json.dumps({**answer, "event": event}) + "\n")
    return answer
