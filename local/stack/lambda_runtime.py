"""The template's Lambda functions as the local runtime starts them: code, layers, limits, environment.

`function_specs` resolves every `AWS::Serverless::Function` (Globals merged) against the local stack;
`worker_spec` turns one into what its execution environments run with (`local.stack.execution_environments`).
Each function gets its own environment variables, as on Lambda: the template's, boto3's standard
endpoint variables pointing at DynamoDB Local and moto, and the stack's overrides. The handlers have no
local-only code paths: only the environment differs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from local.stack import template_model
from local.stack.aws_resources import StackResources
from local.stack.execution_environments import WorkerSpec
from local.stack.intrinsics import IntrinsicResolver, PhysicalResource, pseudo_parameters

log = logging.getLogger(__name__)

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
DEFAULT_TIMEOUT_SECONDS = 3  # Lambda's defaults when the template says nothing
DEFAULT_MEMORY_MB = 128


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    function_name: str
    module_file: Path
    handler_name: str
    timeout_seconds: int
    memory_mb: int
    environment: Mapping[str, str]
    events: Mapping[str, Any] = field(default_factory=dict)
    code_dirs: tuple[Path, ...] = ()  # CodeUri, then layer ContentUris (what Lambda puts on sys.path)
    handler: str = ""  # the template's Handler: module.function
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions
    # The smallest ScalingConfig.MaximumConcurrency of its SQS event sources, if any sets one.
    event_source_concurrency: int | None = None


# ---------------------------------------------------------------------- specs from the template
def function_logical_ids(template: Mapping[str, Any]) -> list[str]:
    return [lid for lid, res in template["Resources"].items() if res.get("Type") == SERVERLESS_FUNCTION]


def function_specs(
    template: Mapping[str, Any],
    resources: StackResources,
    *,
    template_dir: Path,
    api_base_urls: Mapping[str, str],
) -> dict[str, FunctionSpec]:
    """Every Serverless::Function with its environment resolved for this local stack.

    `api_base_urls` maps HttpApi logical ids to the local shim's base URL: `!GetAtt Api.ApiEndpoint`
    and `!Sub https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}` both become that URL.
    """
    physical = dict(resources.physical)
    for api, url in api_base_urls.items():
        stand_in = physical.get(api, PhysicalResource(ref=api))
        physical[api] = PhysicalResource(
            ref=stand_in.ref, attributes={**stand_in.attributes, "ApiEndpoint": url}
        )
    resolver = IntrinsicResolver(
        template,
        parameters=resources.parameters,
        resources=physical,
        pseudo=pseudo_parameters(resources.stack_name, resources.region, resources.account_id),
        api_base_urls=api_base_urls,
    )
    specs = {}
    for logical_id in function_logical_ids(template):
        config = template_model.function_config(template, logical_id)
        module_path, _, handler_name = str(config["Handler"]).rpartition(".")
        code_dir = (template_dir / str(config.get("CodeUri", "."))).resolve()
        variables = (config.get("Environment") or {}).get("Variables") or {}
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            function_name=physical[logical_id].ref,
            module_file=code_dir / (module_path.replace(".", "/") + ".py"),
            handler_name=handler_name,
            timeout_seconds=int(resolver.resolve_str(config.get("Timeout", DEFAULT_TIMEOUT_SECONDS))),
            memory_mb=int(resolver.resolve_str(config.get("MemorySize", DEFAULT_MEMORY_MB))),
            environment={name: resolver.resolve_str(value) for name, value in variables.items()},
            events=config.get("Events") or {},
            code_dirs=(code_dir, *_layer_dirs(template, config, template_dir)),
            handler=str(config["Handler"]),
            reserved_concurrency=_optional_int(resolver, config.get("ReservedConcurrentExecutions")),
            event_source_concurrency=_sqs_maximum_concurrency(resolver, config.get("Events") or {}),
        )
    return specs


def _layer_dirs(template: Mapping[str, Any], config: Mapping[str, Any], template_dir: Path) -> list[Path]:
    dirs = []
    for layer in config.get("Layers") or []:
        logical_id = layer.get("Ref") if isinstance(layer, Mapping) else None
        resource = template["Resources"].get(logical_id or "", {})
        content_uri = (resource.get("Properties") or {}).get("ContentUri")
        if isinstance(content_uri, str):
            dirs.append((template_dir / content_uri).resolve())
    return dirs


def _optional_int(resolver: IntrinsicResolver, value: Any) -> int | None:
    return None if value is None else int(resolver.resolve_str(value))


def _sqs_maximum_concurrency(resolver: IntrinsicResolver, events: Mapping[str, Any]) -> int | None:
    limits = []
    for event in events.values():
        scaling = (event.get("Properties") or {}).get("ScalingConfig") or {}
        if event.get("Type") == "SQS" and "MaximumConcurrency" in scaling:
            limits.append(int(resolver.resolve_str(scaling["MaximumConcurrency"])))
    return min(limits) if limits else None


def concurrency_limit(spec: FunctionSpec, *, default: int, cap: int | None = None) -> int:
    """How many environments the function may run at once: its reserved concurrency or its event
    source's MaximumConcurrency, else `default`; never more than `cap` when one is given."""
    limits = [limit for limit in (spec.reserved_concurrency, spec.event_source_concurrency) if limit]
    limit = min(limits) if limits else default
    return max(1, min(limit, cap) if cap else limit)


# ---------------------------------------------------------------------- environment
def local_aws_environment(*, dynamodb_url: str, moto_url: str, region: str) -> dict[str, str]:
    """boto3's standard variables that send every client to the local services."""
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ENDPOINT_URL_SQS": moto_url,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_url,
        "AWS_ENDPOINT_URL_EVENTBRIDGE": moto_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }


def function_environment(
    spec: FunctionSpec, *, local: Mapping[str, str], overrides: Mapping[str, str]
) -> dict[str, str]:
    """One function's variables: the template's, then `local` (endpoints, credentials) and `overrides`
    (say RUNWARE_API_URL -> the emulator), which win as `sam local --env-vars` would."""
    return {**spec.environment, **local, **overrides}


def worker_spec(
    spec: FunctionSpec,
    environment: Mapping[str, str],
    *,
    region: str,
    account_id: str,
    handler_override: str | None = None,
    extra_python_path: tuple[Path, ...] = (),
) -> WorkerSpec:
    """What the function's execution environments run: its handler in its CodeUri, its layers after it.

    `handler_override` (module.function, importable from `extra_python_path`) runs another handler with
    the same code, layers, limits and variables: tests use it for stand-ins.
    """
    if handler_override is None and not spec.module_file.is_file():
        raise FileNotFoundError(f"{spec.logical_id}: handler module {spec.module_file} does not exist")
    task_root, *layers = spec.code_dirs
    return WorkerSpec(
        function_name=spec.function_name,
        handler=handler_override or spec.handler,
        task_root=task_root,
        python_path=(*layers, *extra_python_path),
        environment=dict(environment),
        timeout_seconds=spec.timeout_seconds,
        memory_mb=spec.memory_mb,
        region=region,
        account_id=account_id,
    )


def with_timeout(spec: FunctionSpec, seconds: int | None) -> FunctionSpec:
    return spec if seconds is None else replace(spec, timeout_seconds=seconds)
