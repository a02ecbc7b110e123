"""Functions from template.yaml: environment resolution, handler loading, the Lambda context."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from local.aws_resources import PhysicalNames, StackResources, provision
from local.lambda_runtime import (
    EnvironmentConflict,
    FakeLambdaContext,
    FunctionSpec,
    LambdaTimeout,
    applied_environment,
    function_specs,
    load_function,
    local_aws_environment,
    shared_environment,
)
from local.template_model import TEMPLATE_PATH, load_template

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


def test_functions_share_one_environment_with_local_endpoints_and_overrides(
    provisioned_stack: StackResources,
) -> None:
    local = local_aws_environment(
        dynamodb_url="http://127.0.0.1:1", moto_url="http://127.0.0.1:2", region="us-east-1"
    )
    merged = shared_environment(
        _specs(provisioned_stack), local=local, overrides={"RUNWARE_API_URL": "http://emulator/v1"}
    )
    assert merged["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:1"
    assert merged["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == "http://127.0.0.1:2"
    assert merged["RUNWARE_API_URL"] == "http://emulator/v1"
    assert merged["MAX_TASKS_PER_REQUEST"] == "100"
    assert merged["OVERDUE_AFTER_SECONDS"] == "900"


def _spec(tmp_path: Path, name: str, environment: dict[str, str], timeout: int = 3) -> FunctionSpec:
    return FunctionSpec(
        logical_id=name,
        function_name=f"stack-{name}",
        module_file=tmp_path / name / "app.py",
        handler_name="lambda_handler",
        timeout_seconds=timeout,
        memory_mb=256,
        environment=environment,
        code_dirs=(tmp_path / name,),
    )


def test_functions_disagreeing_on_a_variable_cannot_share_the_process(tmp_path: Path) -> None:
    specs = {"A": _spec(tmp_path, "A", {"MODE": "a"}), "B": _spec(tmp_path, "B", {"MODE": "b"})}
    with pytest.raises(EnvironmentConflict, match="MODE"):
        shared_environment(specs, local={}, overrides={})
    assert shared_environment(specs, local={}, overrides={"MODE": "forced"})["MODE"] == "forced"


def test_applied_environment_restores_previous_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNRELAY_TEST_KEPT", "before")
    monkeypatch.delenv("RUNRELAY_TEST_NEW", raising=False)
    with applied_environment({"RUNRELAY_TEST_KEPT": "during", "RUNRELAY_TEST_NEW": "x"}):
        assert (os.environ["RUNRELAY_TEST_KEPT"], os.environ["RUNRELAY_TEST_NEW"]) == ("during", "x")
    assert os.environ["RUNRELAY_TEST_KEPT"] == "before"
    assert "RUNRELAY_TEST_NEW" not in os.environ


def _write_handler(tmp_path: Path, name: str, source: str) -> None:
    (tmp_path / name).mkdir()
    (tmp_path / name / "app.py").write_text(textwrap.dedent(source))


def test_loaded_handler_gets_a_lambda_context_and_its_result_passes_through_json(tmp_path: Path) -> None:
    _write_handler(
        tmp_path,
        "Echo",
        """
        from aws_lambda_powertools import Logger

        logger = Logger(service="echo")

        @logger.inject_lambda_context
        def lambda_handler(event, context):
            return {
                "event": event,
                "name": context.function_name,
                "arn": context.invoked_function_arn,
                "memory": context.memory_limit_in_mb,
                "request": context.aws_request_id,
                "remaining": context.get_remaining_time_in_millis(),
                "tuple": (1, 2),
            }
        """,
    )
    function = load_function(_spec(tmp_path, "Echo", {}))
    first, second = function.invoke({"x": 1}), function.invoke({"x": 2})

    assert first["event"] == {"x": 1}
    assert first["name"] == "stack-Echo"
    assert first["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:stack-Echo"
    assert first["memory"] == 256
    assert 2000 < first["remaining"] <= 3000
    assert first["tuple"] == [1, 2]
    assert first["request"] != second["request"]


def test_a_result_lambda_cannot_marshal_is_an_error(tmp_path: Path) -> None:
    _write_handler(tmp_path, "Bad", "def lambda_handler(event, context):\n    return {1, 2}\n")
    with pytest.raises(TypeError):
        load_function(_spec(tmp_path, "Bad", {})).invoke({})


def test_running_past_the_timeout_is_an_error(tmp_path: Path) -> None:
    _write_handler(
        tmp_path, "Slow", "import time\ndef lambda_handler(event, context):\n    time.sleep(0.05)\n"
    )
    with pytest.raises(LambdaTimeout):
        load_function(_spec(tmp_path, "Slow", {}, timeout=0)).invoke({})


def test_a_missing_handler_module_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Missing"):
        load_function(_spec(tmp_path, "Missing", {}))


def test_fake_context_counts_down() -> None:
    context = FakeLambdaContext("f", timeout_seconds=1, memory_mb=128)
    first = context.get_remaining_time_in_millis()
    time.sleep(0.05)
    assert 0 < context.get_remaining_time_in_millis() < first <= 1000
    assert context.log_group_name == "/aws/lambda/f"


def test_every_load_is_a_cold_start_with_its_own_layer_modules(tmp_path: Path) -> None:
    layer = tmp_path / "layer" / "coldstart_probe"
    layer.mkdir(parents=True)
    (layer / "__init__.py").write_text("CALLS = []\n")
    _write_handler(
        tmp_path,
        "Counter",
        "import coldstart_probe\ndef lambda_handler(event, context):\n"
        "    coldstart_probe.CALLS.append(event)\n    return len(coldstart_probe.CALLS)\n",
    )
    spec = _spec(tmp_path, "Counter", {})
    spec = FunctionSpec(**{**spec.__dict__, "code_dirs": (tmp_path / "Counter", tmp_path / "layer")})
    first, second = load_function(spec), load_function(spec)

    assert [first.invoke(1), first.invoke(2)] == [1, 2]
    assert second.invoke(3) == 1  # a fresh container: module state is not shared
    assert "coldstart_probe" not in sys.modules  # the process's own module table is left as it was
