"""Functions from template.yaml: environment resolution, and execution environments as processes
running AWS's runtime interface client (context, answers, errors, timeouts, crashes, cold starts)."""

from __future__ import annotations

import io
import os
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from local.stack import execution_environments
from local.stack.aws_resources import PhysicalNames, StackResources, provision
from local.stack.execution_environments import (
    ExecutionEnvironment,
    FunctionError,
    FunctionLog,
    FunctionPool,
    FunctionTimeout,
    WorkerSpec,
)
from local.stack.lambda_runtime import (
    FunctionSpec,
    concurrency_limit,
    function_environment,
    function_specs,
    local_aws_environment,
    worker_spec,
)
from local.stack.template_model import TEMPLATE_PATH, load_template

TEMPLATE = load_template()
SHIM_URL = "http://local-shim.test:8080"


def _specs(resources: StackResources) -> dict[str, FunctionSpec]:
    return function_specs(
        TEMPLATE, resources, template_dir=TEMPLATE_PATH.parent, api_base_urls={"WebhookApi": SHIM_URL}
    )


def test_environment_resolves_refs_subs_and_parameters(provisioned_stack: StackResources) -> None:
    specs = _specs(provisioned_stack)
    submit = specs["SubmitFunction"]

    assert set(specs) == {"SubmitFunction", "WebhookFunction", "ReconcileFunction", "ResultsFunction"}
    expected = {
        "TABLE_NAME": provisioned_stack.table_name,
        "RUNWARE_API_URL": "https://api.runware.ai/v1",
        "PAYLOAD_BUCKET": provisioned_stack.bucket_name,
        "TASK_RETENTION_DAYS": "30",
        "POWERTOOLS_SERVICE_NAME": "runrelay",
        "POWERTOOLS_METRICS_NAMESPACE": "runrelay",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "RUNWARE_API_KEY_SECRET_ID": provisioned_stack.runware_api_key_secret_name,
        "WEBHOOK_SECRET_ID": provisioned_stack.webhook_secret_arn,
        "WEBHOOK_BASE_URL": SHIM_URL,
        "MAX_TASKS_PER_REQUEST": "100",
        "FAN_OUT_RANGE_BYTES": "16777216",
    }
    assert expected.items() <= submit.environment.items()
    for spec in specs.values():
        for name, value in spec.environment.items():
            assert "${" not in value, f"{spec.logical_id}.{name} is unresolved: {value}"
    assert specs["WebhookFunction"].environment["MAX_WEBHOOK_BODY_BYTES"] == "1048576"
    assert specs["ResultsFunction"].environment["EVENT_BUS_NAME"] == provisioned_stack.ref("EventBus")
    assert (submit.timeout_seconds, submit.memory_mb) == (120, 1024)  # its own, over Globals
    assert submit.module_file == TEMPLATE_PATH.parent / "functions" / "submit" / "app.py"
    assert submit.handler_name == "lambda_handler"
    assert submit.handler == "app.lambda_handler"
    assert submit.function_name == f"{provisioned_stack.stack_name}-SubmitFunction"
    assert TEMPLATE_PATH.parent / "layers" / "common" in submit.code_dirs


def test_parameter_overrides_reach_the_environment(aws_clients: Any, local_stack_name: str) -> None:
    resources = provision(
        TEMPLATE,
        aws_clients,
        PhysicalNames(local_stack_name),
        region="us-east-1",
        parameter_overrides={
            "TaskRetentionDays": "7",
            "LogLevel": "DEBUG",
            "RunwareApiUrl": "http://127.0.0.1:1/v1",
        },
    )
    environment = _specs(resources)["ReconcileFunction"].environment
    assert (environment["TASK_RETENTION_DAYS"], environment["POWERTOOLS_LOG_LEVEL"]) == ("7", "DEBUG")
    assert environment["RUNWARE_API_URL"] == "http://127.0.0.1:1/v1"


def test_each_function_gets_its_own_variables_with_local_endpoints_and_overrides(
    provisioned_stack: StackResources,
) -> None:
    local = local_aws_environment(
        dynamodb_url="http://127.0.0.1:1", moto_url="http://127.0.0.1:2", region="us-east-1"
    )
    specs = _specs(provisioned_stack)
    webhook = function_environment(
        specs["WebhookFunction"], local=local, overrides={"RUNWARE_API_URL": "http://emulator/v1"}
    )
    assert webhook["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:1"
    assert webhook["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == "http://127.0.0.1:2"
    assert webhook["RUNWARE_API_URL"] == "http://emulator/v1"
    assert webhook["MAX_WEBHOOK_BODY_BYTES"] == "1048576"
    submit = function_environment(specs["SubmitFunction"], local=local, overrides={})
    assert submit["MAX_TASKS_PER_REQUEST"] == "100"
    assert "MAX_WEBHOOK_BODY_BYTES" not in submit  # another function's variable is not this one's


def test_concurrency_comes_from_the_event_source_or_a_default(provisioned_stack: StackResources) -> None:
    specs = _specs(provisioned_stack)
    assert concurrency_limit(specs["SubmitFunction"], default=4) == 10  # its SQS MaximumConcurrency
    assert concurrency_limit(specs["SubmitFunction"], default=4, cap=2) == 2
    assert concurrency_limit(specs["WebhookFunction"], default=4) == 4
    # The template's SubmitMaxConcurrency parameter, as a deployment would set it.
    tuned = replace(
        provisioned_stack, parameters={**provisioned_stack.parameters, "SubmitMaxConcurrency": "3"}
    )
    assert concurrency_limit(_specs(tuned)["SubmitFunction"], default=4) == 3


# ---------------------------------------------------------------------- execution environments
def _write_handler(tmp_path: Path, name: str, source: str) -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(textwrap.dedent(source))
    return folder


def _pool(
    task_root: Path, *, timeout: float = 3, layers: tuple[Path, ...] = (), concurrency: int = 1
) -> tuple[FunctionPool, io.StringIO]:
    log = io.StringIO()
    spec = WorkerSpec(
        function_name=f"stack-{task_root.name}",
        handler="app.lambda_handler",
        task_root=task_root,
        python_path=layers,
        environment={"ONLY_MINE": task_root.name},
        timeout_seconds=timeout,
        memory_mb=256,
    )
    return FunctionPool(spec, FunctionLog(log), max_concurrency=concurrency), log


@pytest.fixture
def pools() -> Iterator[list[FunctionPool]]:
    started: list[FunctionPool] = []
    yield started
    for pool in started:
        pool.stop()


def test_the_runtime_client_gets_a_lambda_context_and_the_answer_passes_through_json(
    tmp_path: Path, pools: list[FunctionPool]
) -> None:
    root = _write_handler(
        tmp_path,
        "Echo",
        """
        import os
        from aws_lambda_powertools import Logger

        logger = Logger(service="echo")

        @logger.inject_lambda_context
        def lambda_handler(event, context):
            logger.info("echo")
            return {
                "event": event,
                "name": context.function_name,
                "arn": context.invoked_function_arn,
                "memory": context.memory_limit_in_mb,
                "request": context.aws_request_id,
                "remaining": context.get_remaining_time_in_millis(),
                "tuple": (1, 2),
                "mine": os.environ.get("ONLY_MINE"),
                "task_root": os.environ.get("LAMBDA_TASK_ROOT"),
                "cwd": os.getcwd(),
                "pid": os.getpid(),
            }
        """,
    )
    pool, log = _pool(root)
    pools.append(pool)
    first, second = pool.invoke({"x": 1}), pool.invoke({"x": 2})

    assert first["event"] == {"x": 1}
    assert first["name"] == "stack-Echo"
    assert first["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:stack-Echo"
    assert first["memory"] == "256"  # the runtime client reads it from the environment, as on AWS
    assert 2000 < first["remaining"] <= 3000
    assert first["tuple"] == [1, 2]
    assert (first["mine"], first["task_root"], first["cwd"]) == ("Echo", str(root), str(root))
    assert first["request"] != second["request"]
    assert first["pid"] == second["pid"] != os.getpid()  # a warm environment, not this process
    assert (pool.cold_starts, pool.invocations) == (1, 2)
    lines = log.getvalue().splitlines()
    assert all(line.startswith("stack-Echo | ") for line in lines)
    reports = [line for line in lines if "REPORT RequestId: " in line]
    assert len(reports) == 2
    assert "Init Duration: " in reports[0]
    assert "Init Duration: " not in reports[1]
    assert f"REPORT RequestId: {first['request']}" in reports[0]
    assert "Max Memory Used: " in reports[0]
    assert "Memory Size: 256 MB" in reports[0]
    assert sum(f'"function_request_id":"{first["request"]}"' in line for line in lines) == 1


def test_a_handler_error_is_reported_with_lambdas_error_shape(
    tmp_path: Path, pools: list[FunctionPool]
) -> None:
    root = _write_handler(
        tmp_path, "Bad", "def lambda_handler(event, context):\n    raise KeyError('nope')\n"
    )
    pool, log = _pool(root)
    pools.append(pool)
    with pytest.raises(FunctionError) as raised:
        pool.invoke({})
    assert (raised.value.error_type, raised.value.error_message) == ("KeyError", "'nope'")
    assert raised.value.stack_trace
    assert "[ERROR] KeyError" in log.getvalue()
    # the environment survives a handler error: the next call is warm
    with pytest.raises(FunctionError):
        pool.invoke({})
    assert pool.cold_starts == 1


def test_an_answer_lambda_cannot_marshal_is_an_error(tmp_path: Path, pools: list[FunctionPool]) -> None:
    root = _write_handler(tmp_path, "Set", "def lambda_handler(event, context):\n    return {1, 2}\n")
    pool, _ = _pool(root)
    pools.append(pool)
    with pytest.raises(FunctionError, match=r"Runtime\.MarshalError"):
        pool.invoke({})


def test_a_module_that_cannot_be_imported_is_an_init_error(tmp_path: Path, pools: list[FunctionPool]) -> None:
    root = _write_handler(tmp_path, "Broken", "import not_a_module_anywhere\n")
    pool, _ = _pool(root)
    pools.append(pool)
    with pytest.raises(FunctionError, match=r"Runtime\.ImportModuleError"):
        pool.invoke({})
    assert pool.environments == 0


def test_a_crashed_worker_fails_its_invocation_and_is_replaced(
    tmp_path: Path, pools: list[FunctionPool]
) -> None:
    root = _write_handler(
        tmp_path,
        "Crash",
        "import os\ndef lambda_handler(event, context):\n    if event: os._exit(3)\n    return os.getpid()\n",
    )
    pool, _ = _pool(root)
    pools.append(pool)
    before = pool.invoke(None)
    with pytest.raises(FunctionError, match=r"Runtime\.ExitError.*exit status 3"):
        pool.invoke({"crash": True})
    after = pool.invoke(None)
    assert after != before
    assert pool.cold_starts == 2


def test_past_its_timeout_the_environment_is_killed_and_replaced(
    tmp_path: Path, pools: list[FunctionPool]
) -> None:
    root = _write_handler(
        tmp_path,
        "Slow",
        "import os, time\n"
        "def lambda_handler(event, context):\n    time.sleep(event)\n    return os.getpid()\n",
    )
    pool, log = _pool(root, timeout=1)
    pools.append(pool)
    first = pool.invoke(0)
    with pytest.raises(FunctionTimeout, match=r"Sandbox\.Timedout.*Task timed out after 1\.00 seconds"):
        pool.invoke(5)
    assert not _alive(first)
    assert pool.invoke(0) != first
    assert pool.cold_starts == 2
    assert "Status: timeout" in log.getvalue()


def test_stopping_the_pool_ends_an_invocation_in_hand(tmp_path: Path) -> None:
    """What the local stack's stop relies on to end a scheduled run in flight: no wait for the handler."""
    root = _write_handler(
        tmp_path,
        "Busy",
        "import os, time\n"
        "def lambda_handler(event, context):\n"
        "    open(event, 'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n",
    )
    pool, _ = _pool(root, timeout=120)
    marker = tmp_path / "running"
    outcome: list[BaseException] = []

    def invoke() -> None:
        try:
            pool.invoke(str(marker))
        except BaseException as error:  # handed to the test's thread
            outcome.append(error)

    caller = threading.Thread(target=invoke)
    caller.start()
    for _ in range(400):
        if marker.exists() and marker.read_text():
            break
        time.sleep(0.05)
    pid = int(marker.read_text())
    pool.stop()
    caller.join(30)
    assert not caller.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], FunctionError)
    assert outcome[0].error_type == "Runtime.ExitError"
    assert not _alive(pid)
    with pytest.raises(RuntimeError, match="the local runtime is stopped"):
        pool.invoke(str(marker))


def test_an_environment_that_starts_while_its_pool_stops_is_closed_not_leaked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_handler(tmp_path, "Late", "def lambda_handler(event, context):\n    return 1\n")
    pool, _ = _pool(root)
    started: list[ExecutionEnvironment] = []

    class StoppedWhileStarting(ExecutionEnvironment):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)
            pool.stop()  # the stack stops between the process's start and the pool's bookkeeping

    monkeypatch.setattr(execution_environments, "ExecutionEnvironment", StoppedWhileStarting)
    with pytest.raises(RuntimeError, match="the local runtime is stopped"):
        pool.invoke({})
    (environment,) = started
    assert not _alive(environment.pid)
    assert pool.environments == 0


def test_layers_come_after_the_task_root_and_each_environment_has_its_own_modules(
    tmp_path: Path, pools: list[FunctionPool]
) -> None:
    layer = tmp_path / "layer" / "coldstart_probe"
    layer.mkdir(parents=True)
    (layer / "__init__.py").write_text("CALLS = []\n")
    root = _write_handler(
        tmp_path,
        "Counter",
        "import coldstart_probe\ndef lambda_handler(event, context):\n"
        "    coldstart_probe.CALLS.append(event)\n    return len(coldstart_probe.CALLS)\n",
    )
    first, _ = _pool(root, layers=(tmp_path / "layer",))
    second, _ = _pool(root, layers=(tmp_path / "layer",))
    pools.extend([first, second])
    assert [first.invoke(1), first.invoke(2)] == [1, 2]
    assert second.invoke(3) == 1  # another function: module state is not shared


def test_worker_spec_runs_the_template_handler_in_its_code_folder(provisioned_stack: StackResources) -> None:
    spec = _specs(provisioned_stack)["WebhookFunction"]
    worker = worker_spec(spec, {"A": "1"}, region="us-east-1", account_id="123456789012")
    assert worker.handler == "app.lambda_handler"
    assert worker.task_root == TEMPLATE_PATH.parent / "functions" / "webhook"
    assert worker.python_path == (TEMPLATE_PATH.parent / "layers" / "common",)
    assert (worker.timeout_seconds, worker.environment) == (10, {"A": "1"})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a killed child not yet reaped is a zombie: dead for our purpose
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
