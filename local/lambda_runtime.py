"""Run the template's Lambda functions in this process, the way the Lambda runtime would.

A function's handler is loaded from its CodeUri + Handler; its environment is Globals + its own
variables, resolved against the local stack, plus boto3's standard endpoint variables pointing at
DynamoDB Local and moto. The handlers have no local-only code paths: only the environment differs.
All functions share this process and therefore `os.environ`, so their variables must agree.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from local import template_model
from local.aws_resources import StackResources
from local.intrinsics import IntrinsicResolver, PhysicalResource, pseudo_parameters

log = logging.getLogger(__name__)

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
DEFAULT_TIMEOUT_SECONDS = 3  # Lambda's defaults when the template says nothing
DEFAULT_MEMORY_MB = 128

Handler = Callable[[Any, Any], Any]


class EnvironmentConflict(ValueError):
    """Two functions want different values for one variable; they cannot share a process then."""


class LambdaTimeout(RuntimeError):
    """The handler ran past the function's Timeout (Lambda would have killed it)."""


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


class FakeLambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(
        self,
        function_name: str,
        timeout_seconds: float,
        memory_mb: int,
        *,
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalFunction:
    """One loaded function. `invoke` behaves like a synchronous Lambda invoke: a fresh context, the
    result passed through JSON (as the runtime marshals it), and a timeout error when it ran too long."""

    def __init__(self, spec: FunctionSpec, handler: Handler, *, region: str = "us-east-1") -> None:
        self.spec = spec
        self.handler = handler
        self.region = region

    def context(self) -> FakeLambdaContext:
        return FakeLambdaContext(
            self.spec.function_name, self.spec.timeout_seconds, self.spec.memory_mb, region=self.region
        )

    def invoke(self, event: Any) -> Any:
        started = time.monotonic()
        result = self.handler(event, self.context())
        elapsed = time.monotonic() - started
        if elapsed > self.spec.timeout_seconds:
            raise LambdaTimeout(
                f"{self.spec.function_name} ran {elapsed:.1f}s, past its {self.spec.timeout_seconds}s timeout"
            )
        return json.loads(json.dumps(result))


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


def shared_environment(
    specs: Mapping[str, FunctionSpec], *, local: Mapping[str, str], overrides: Mapping[str, str]
) -> dict[str, str]:
    """The one environment all functions run with; EnvironmentConflict if two functions disagree.

    `local` (endpoints, credentials) and `overrides` (say RUNWARE_API_URL -> the emulator) win over
    the template, like `sam local --env-vars` would.
    """
    merged: dict[str, str] = {}
    owners: dict[str, str] = {}
    conflicts = []
    for logical_id, spec in specs.items():
        for name, value in spec.environment.items():
            if name in overrides or name in local:
                continue
            if name in merged and merged[name] != value:
                conflicts.append(f"{name}: {owners[name]}={merged[name]!r} vs {logical_id}={value!r}")
            merged.setdefault(name, value)
            owners.setdefault(name, logical_id)
    if conflicts:
        raise EnvironmentConflict("functions disagree on environment variables: " + "; ".join(conflicts))
    return {**merged, **local, **overrides}


@contextmanager
def applied_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set the variables in os.environ; put the previous values back afterwards."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ---------------------------------------------------------------------- loading handlers
_import_lock = threading.Lock()


def load_function(spec: FunctionSpec, *, region: str = "us-east-1") -> LocalFunction:
    """Import the handler module from its file (under a name unique to the function) and wrap it.

    Each call is a cold start: the code and its layers are imported afresh (see `_own_module_copies`).
    Apply the environment first: handler modules often read settings at import time.
    """
    if not spec.module_file.is_file():
        raise FileNotFoundError(f"{spec.logical_id}: handler module {spec.module_file} does not exist")
    module = _import_module_file(f"_local_lambda_{spec.logical_id}", spec.module_file, spec.code_dirs)
    handler = getattr(module, spec.handler_name, None)
    if not callable(handler):
        raise AttributeError(f"{spec.logical_id}: {spec.module_file} has no callable {spec.handler_name!r}")
    return LocalFunction(spec, handler, region=region)


def _import_module_file(name: str, path: Path, code_dirs: tuple[Path, ...]) -> ModuleType:
    with _import_lock, _own_module_copies(code_dirs):
        for directory in reversed(code_dirs):
            if str(directory) not in sys.path:
                sys.path.append(str(directory))  # appended: never shadows the project's own packages
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module


def _defined_in(module: ModuleType, directories: tuple[Path, ...]) -> bool:
    file = getattr(module, "__file__", None)
    if not file:
        return False
    resolved = Path(file).resolve()
    return any(resolved.is_relative_to(directory) for directory in directories)


@contextmanager
def _own_module_copies(code_dirs: tuple[Path, ...]) -> Iterator[None]:
    """Import the function's code and layers afresh, as a new Lambda container would.

    Module-level caches (settings read once per container, cached clients) then belong to this
    function of this stack only; a second LocalStack in the same process, with other table names
    and endpoints, gets its own. The process's own copies are put back afterwards.
    """
    stashed = {name: module for name, module in sys.modules.items() if _defined_in(module, code_dirs)}
    for name in stashed:
        del sys.modules[name]
    try:
        yield
    finally:
        for name in [name for name, module in sys.modules.items() if _defined_in(module, code_dirs)]:
            del sys.modules[name]
        sys.modules.update(stashed)
