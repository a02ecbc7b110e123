"""A 3,000-line file through the local stack's per-function processes: no webhook answered 5xx (nothing is
injected here, so any 5xx would be a runtime fault such as one function's metrics flushed by another),
every task COMPLETED, and every line of the combined log names the function that wrote it."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable

from runrelay.domain.tasks import TaskStatus

from ..conftest import Pipeline

LINES = 3_000
FUNCTIONS = ("SubmitFunction", "WebhookFunction", "ReconcileFunction", "ResultsFunction")


def test_a_3000_line_file_gets_no_webhook_5xx_and_every_log_line_names_its_function(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    log = io.StringIO()
    pipeline = pipeline_factory(
        own_dynamodb_local=True, function_log=log, parameters={"OverdueAfterSeconds": "600"}
    )
    body = "".join(json.dumps({"prompt": f"line {n}"}) + "\n" for n in range(LINES)).encode()
    source = pipeline.upload("three-thousand.jsonl", body)

    views = pipeline.wait_settled({source: LINES}, timeout=400)[source]

    assert Counter(view.status for view in views) == {TaskStatus.COMPLETED: LINES}
    (shim,) = pipeline.stack.shims.values()
    assert sum(count for status, count in shim.answers.items() if status >= 500) == 0, shim.answers
    assert shim.answers.get(200, 0) >= LINES
    names = {f"{pipeline.stack.stack_name}-{function}" for function in FUNCTIONS}
    lines = log.getvalue().splitlines()
    assert len(lines) > LINES
    writers: Counter[str] = Counter()
    for line in lines:
        name, separator, record = line.partition(" | ")
        assert separator, line[:200]
        assert name in names, line[:200]
        writers[name] += 1
        if record.startswith("{") and '"function_name"' in record:
            assert json.loads(record)["function_name"] == name, line[:300]
    assert set(writers) == names  # all four wrote, each under its own name
