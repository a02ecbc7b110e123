"""The whole local stack in one context manager: what `make up` runs and `make demo` builds on.

DynamoDB Local + moto (S3, SQS, Secrets Manager) + the Runware emulator (unless RUNWARE_API_URL
points elsewhere), resources provisioned from template.yaml, each of the template's functions in its
own execution environments (worker processes under AWS's runtime interface client), SQS event sources
polled, HTTP API routes served by the shim, schedules on a timer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Self

from local.stack import template_model
from local.stack.apigw_shim import ApiGatewayShim
from local.stack.aws_resources import EVENT_BUS, AwsClients, PhysicalNames, StackResources, provision
from local.stack.dynamodb_stream_poller import DynamoDBStreamPoller, sqs_destination
from local.stack.execution_environments import FunctionLog, FunctionPool
from local.stack.lambda_runtime import (
    FunctionSpec,
    concurrency_limit,
    function_environment,
    function_logical_ids,
    function_specs,
    local_aws_environment,
    with_timeout,
    worker_spec,
)
from local.stack.scheduler import ScheduleRunner
from local.stack.services import DynamoDBLocal, MotoServer, process_cleanup
from local.stack.sqs_poller import SqsPoller

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_FILE = REPO_ROOT / ".runrelay" / "local-stack.json"
DEFAULT_API = "ServerlessHttpApi"  # SAM's implicit API for HttpApi events without ApiId
LOCAL_RUNWARE_API_KEY = "local-dev-key"
# Environments per function when neither reserved concurrency nor an event source's MaximumConcurrency
# bounds it (the webhook behind the HTTP API, the schedules, the stream consumer).
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True)
class LocalEndpoints:
    """Everything a client of the local stack needs (also written to .runrelay/local-stack.json)."""

    stack_name: str
    region: str
    dynamodb_url: str
    s3_url: str
    sqs_url: str
    secretsmanager_url: str
    table_name: str
    bucket_name: str
    input_prefix: str
    ingest_queue_url: str
    dead_letter_queue_url: str
    api_base_url: str
    webhook_url: str
    runware_api_url: str
    runware_api_key_secret_name: str
    webhook_secret_arn: str
    event_bus_name: str = ""
    results_dead_letter_queue_url: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class _EventSources:
    sqs: list[tuple[str, str, Mapping[str, Any]]]  # (function, event name, properties)
    http: list[tuple[str, str, str]]  # (function, api logical id, route key)
    schedules: list[tuple[str, str]]  # (function, event name)
    streams: list[tuple[str, str, Mapping[str, Any]]]  # (function, event name, properties)


def _event_sources(
    template: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> _EventSources:
    """Every event source of the template; `overrides` ("Function.Event" -> properties) are merged in."""
    sources = _EventSources([], [], [], [])
    for logical_id in function_logical_ids(template):
        events = template_model.function_config(template, logical_id).get("Events") or {}
        for event_name, event in events.items():
            kind = event.get("Type")
            properties = {
                **(event.get("Properties") or {}),
                **(overrides or {}).get(f"{logical_id}.{event_name}", {}),
            }
            if kind == "SQS":
                sources.sqs.append((logical_id, event_name, properties))
            elif kind == "HttpApi":
                api = properties.get("ApiId", {"Ref": DEFAULT_API})
                api_id = api["Ref"] if isinstance(api, Mapping) else str(api)
                route = f"{properties.get('Method', 'ANY').upper()} {properties.get('Path', '/')}"
                if "Path" not in properties:
                    route = "$default"
                sources.http.append((logical_id, api_id, route))
            elif kind in ("Schedule", "ScheduleV2"):
                sources.schedules.append((logical_id, event_name))
            elif kind == "DynamoDB":
                sources.streams.append((logical_id, event_name, properties))
            else:
                log.warning("%s.%s: %s events are not emulated locally", logical_id, event_name, kind)
    return sources


def _get_att_logical_id(reference: Any, what: str) -> str:
    """The resource of `!GetAtt Resource.Attribute`: how event sources name queues, streams, destinations."""
    if isinstance(reference, Mapping) and "Fn::GetAtt" in reference:
        target = reference["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else target.split(".")[0])
    raise ValueError(f"{what} must be !GetAtt <Resource>.<Attribute>, got {reference!r}")


class LocalStack:
    """Start with `with LocalStack() as stack:`; `stack.endpoints` says where everything is.

    Pass `dynamodb_url`/`moto_url` to reuse running services (tests do), `handler_overrides` to run
    other handlers (module.function, importable from the repository root) with a function's code,
    layers and variables, `retry_delay_seconds` to retry failed SQS messages sooner than the queue's
    visibility timeout, `function_timeouts` to give functions another Timeout than the template's
    (seconds by logical id), `batching_window_cap_seconds` to shorten the template's batching windows
    (tests, demo), `concurrency_cap` to run fewer environments per function than the template allows,
    `extra_environment` to add variables to every function (say RUNRELAY_LOCAL_PRELOAD) and
    `function_log` for the stream the functions' log lines go to (default: this process's stdout) and
    `event_source_overrides` to change an event source's properties ("Function.Event" -> properties);
    `long_running` starts DynamoDB Local for throughput rather than a quick start.
    """

    def __init__(
        self,
        template_path: Path = template_model.TEMPLATE_PATH,
        *,
        stack_name: str = "runrelay-local",
        region: str = "us-east-1",
        parameter_overrides: Mapping[str, str] | None = None,
        runware_api_url: str | None = None,
        runware_api_key: str | None = None,
        emulator_options: Mapping[str, Any] | None = None,
        handler_overrides: Mapping[str, str] | None = None,
        function_timeouts: Mapping[str, int] | None = None,
        concurrency_cap: int | None = None,
        extra_environment: Mapping[str, str] | None = None,
        function_log: IO[str] | None = None,
        event_source_overrides: Mapping[str, Mapping[str, Any]] | None = None,
        long_running: bool = False,
        schedule_period_seconds: float | None = None,
        retry_delay_seconds: int | None = None,
        batching_window_cap_seconds: float | None = None,
        poll_wait_seconds: int = 1,
        state_file: Path | None = DEFAULT_STATE_FILE,
        dynamodb_url: str | None = None,
        moto_url: str | None = None,
    ) -> None:
        self.template_path = Path(template_path)
        self.stack_name = stack_name
        self.region = region
        self._parameter_overrides = dict(parameter_overrides or {})
        self._runware_api_url = runware_api_url or os.environ.get("RUNWARE_API_URL") or None
        self._runware_api_key = runware_api_key or os.environ.get("RUNWARE_API_KEY") or LOCAL_RUNWARE_API_KEY
        self._emulator_options = dict(emulator_options or {})
        self._handler_overrides = dict(handler_overrides or {})
        self._function_timeouts = dict(function_timeouts or {})
        self._concurrency_cap = concurrency_cap
        self._extra_environment = dict(extra_environment or {})
        self.function_log = FunctionLog(function_log)
        self._event_source_overrides = dict(event_source_overrides or {})
        self._long_running = long_running
        self._schedule_period = schedule_period_seconds
        self._retry_delay = retry_delay_seconds
        self._window_cap = batching_window_cap_seconds
        self._poll_wait = poll_wait_seconds
        self._state_file = state_file
        self._dynamodb_url = dynamodb_url
        self._moto_url = moto_url
        self._exit = ExitStack()
        self._cleanup_handle: int | None = None
        self._started = False
        self.emulator: Any = None  # local.runware_emulator.EmulatorServer when we started one
        self.clients: AwsClients | None = None
        self.resources: StackResources | None = None
        self.functions: dict[str, FunctionPool] = {}
        self.pollers: dict[str, SqsPoller] = {}
        self.stream_pollers: dict[str, DynamoDBStreamPoller] = {}
        self.shims: dict[str, ApiGatewayShim] = {}
        self.schedules: dict[str, ScheduleRunner] = {}
        self.environments: dict[str, dict[str, str]] = {}  # each function's variables, by logical id
        self._endpoints: LocalEndpoints | None = None

    @property
    def endpoints(self) -> LocalEndpoints:
        if self._endpoints is None:
            raise RuntimeError("the local stack is not running")
        return self._endpoints

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        if self._started:
            return self
        self._started = True
        self._cleanup_handle = process_cleanup.register(f"local stack {self.stack_name}", self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        dynamodb_url, moto_url = self._start_services()
        runware_api_url = self._start_runware()
        template = template_model.load_template(self.template_path)
        self.clients = AwsClients.for_endpoints(
            dynamodb_url=dynamodb_url, moto_url=moto_url, region=self.region
        )
        self.resources = provision(
            template,
            self.clients,
            PhysicalNames(self.stack_name),
            region=self.region,
            parameter_overrides=self._parameter_overrides,
            runware_api_key=self._runware_api_key,
        )
        sources = _event_sources(template, self._event_source_overrides)
        for _function, api, _route in sources.http:
            if api not in self.shims:
                shim = ApiGatewayShim(
                    api_id=self.resources.ref(api) if api in self.resources.physical else api,
                    region=self.region,
                )
                self.shims[api] = shim.start()
                self._exit.callback(shim.stop)
        specs = function_specs(
            template,
            self.resources,
            template_dir=self.template_path.parent,
            api_base_urls={api: shim.base_url for api, shim in self.shims.items()},
        )
        local = local_aws_environment(dynamodb_url=dynamodb_url, moto_url=moto_url, region=self.region)
        overrides = {"RUNWARE_API_URL": runware_api_url, **self._extra_environment}
        self.environments = {
            logical_id: function_environment(spec, local=local, overrides=overrides)
            for logical_id, spec in specs.items()
        }
        self.functions = {logical_id: self._pool(spec) for logical_id, spec in specs.items()}
        for function, api, route in sources.http:
            self.shims[api].add_route(route, self.functions[function].invoke)
        for function, event_name, properties in sources.sqs:
            self._start_poller(function, event_name, properties)
        for function, event_name, properties in sources.streams:
            self._start_stream_poller(function, event_name, properties)
        for function, event_name in sources.schedules:
            self._prepare_schedule(function, event_name)
        self._endpoints = self._describe(dynamodb_url, moto_url, runware_api_url)
        self._write_state_file()

    def _start_services(self) -> tuple[str, str]:
        moto_url = self._moto_url
        if moto_url is None:
            moto = MotoServer()
            self._exit.callback(moto.stop)
            # moto boots in the background while Java starts; Java is started from this thread
            # because its parent-death signal is tied to the thread that forked it.
            moto_thread = threading.Thread(target=moto.start, name="moto-start", daemon=True)
            moto_thread.start()
        dynamodb_url = self._dynamodb_url
        if dynamodb_url is None:
            # A long run (`make up`, chaos) wants DynamoDB Local's full JIT: it starts slower, then serves
            # more requests than the fast-start options the tests and the demo use (bench/README.md).
            dynamodb = DynamoDBLocal(jvm_options=()) if self._long_running else DynamoDBLocal()
            self._exit.callback(dynamodb.stop)
            dynamodb_url = dynamodb.start().endpoint_url
        if moto_url is None:
            moto_thread.join()
            moto_url = moto.endpoint_url  # raises if the background start failed
        return dynamodb_url, moto_url

    def _start_runware(self) -> str:
        if self._runware_api_url:
            return self._runware_api_url
        from local.runware_emulator import EmulatorServer  # only needed when we run it

        self.emulator = EmulatorServer(**self._emulator_options)
        self.emulator.start()
        self._exit.callback(self.emulator.stop)
        return str(self.emulator.url)

    def _pool(self, spec: FunctionSpec) -> FunctionPool:
        assert self.resources is not None
        spec = with_timeout(spec, self._function_timeouts.get(spec.logical_id))
        override = self._handler_overrides.get(spec.logical_id)
        pool = FunctionPool(
            worker_spec(
                spec,
                self.environments[spec.logical_id],
                region=self.region,
                account_id=self.resources.account_id,
                handler_override=override,
                extra_python_path=(REPO_ROOT,) if override else (),
            ),
            self.function_log,
            max_concurrency=concurrency_limit(spec, default=DEFAULT_CONCURRENCY, cap=self._concurrency_cap),
        )
        self._exit.callback(pool.stop)
        return pool

    def _start_poller(self, function: str, event_name: str, properties: Mapping[str, Any]) -> None:
        assert self.clients is not None
        assert self.resources is not None
        queue = _get_att_logical_id(properties["Queue"], "SQS event Queue")
        poller = SqsPoller(
            self.clients.sqs,
            self.resources.ref(queue),
            self.functions[function].invoke,
            queue_arn=self.resources.attribute(queue, "Arn"),
            region=self.region,
            batch_size=int(properties.get("BatchSize", 10)),
            batching_window_seconds=self._batching_window(properties),
            report_batch_item_failures="ReportBatchItemFailures"
            in (properties.get("FunctionResponseTypes") or []),
            retry_delay_seconds=self._retry_delay,
            poll_wait_seconds=self._poll_wait,
            name=f"{function}.{event_name}",
            concurrency=self.functions[function].max_concurrency,
        )
        self.pollers[f"{function}.{event_name}"] = poller.start()
        self._exit.callback(poller.stop)

    def _start_stream_poller(self, function: str, event_name: str, properties: Mapping[str, Any]) -> None:
        assert self.clients is not None
        assert self.resources is not None
        table = _get_att_logical_id(properties["Stream"], "DynamoDB event Stream")
        failure_target = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        )
        on_failure = None
        if failure_target is not None:
            on_failure = sqs_destination(
                self.clients.sqs,
                self.resources.ref(_get_att_logical_id(failure_target, "OnFailure Destination")),
            )
        filters = ((properties.get("FilterCriteria") or {}).get("Filters")) or []
        poller = DynamoDBStreamPoller(
            self.clients.dynamodbstreams,
            self.resources.attribute(table, "StreamArn"),
            self.functions[function].invoke,
            region=self.region,
            batch_size=int(properties.get("BatchSize", 100)),
            starting_position=str(properties.get("StartingPosition", "TRIM_HORIZON")),
            report_batch_item_failures="ReportBatchItemFailures"
            in (properties.get("FunctionResponseTypes") or []),
            maximum_retry_attempts=int(properties.get("MaximumRetryAttempts", -1)),
            maximum_record_age_seconds=int(properties.get("MaximumRecordAgeInSeconds", -1)),
            bisect_batch_on_function_error=bool(properties.get("BisectBatchOnFunctionError", False)),
            filter_patterns=[str(f["Pattern"]) for f in filters],
            on_failure=on_failure,
            name=f"{function}.{event_name}",
        )
        self.stream_pollers[f"{function}.{event_name}"] = poller.start()
        self._exit.callback(poller.stop)

    def _batching_window(self, properties: Mapping[str, Any]) -> float:
        window = float(properties.get("MaximumBatchingWindowInSeconds", 0))
        return window if self._window_cap is None else min(window, self._window_cap)

    def _prepare_schedule(self, function: str, event_name: str) -> None:
        """Schedules exist always (tests `fire()` them); they tick only with a schedule period."""
        assert self.resources is not None
        runner = ScheduleRunner(
            self.functions[function].invoke,
            self._schedule_period or 60.0,
            rule_arn=f"arn:aws:events:{self.region}:{self.resources.account_id}:rule/{self.stack_name}-{function}{event_name}",
            region=self.region,
            account_id=self.resources.account_id,
        )
        self.schedules[f"{function}.{event_name}"] = runner
        if self._schedule_period:
            runner.start()
            self._exit.callback(runner.stop)

    def _describe(self, dynamodb_url: str, moto_url: str, runware_api_url: str) -> LocalEndpoints:
        assert self.resources is not None
        webhook_routes = [(api, route.path) for api, shim in self.shims.items() for route in shim._routes]
        api_base = self.shims[webhook_routes[0][0]].base_url if webhook_routes else ""
        webhook_path = webhook_routes[0][1] if webhook_routes else ""
        r = self.resources
        return LocalEndpoints(
            stack_name=self.stack_name,
            region=self.region,
            dynamodb_url=dynamodb_url,
            s3_url=moto_url,
            sqs_url=moto_url,
            secretsmanager_url=moto_url,
            table_name=r.table_name,
            bucket_name=r.bucket_name,
            input_prefix=r.input_prefix,
            ingest_queue_url=r.ingest_queue_url,
            dead_letter_queue_url=r.dead_letter_queue_url,
            api_base_url=api_base,
            webhook_url=f"{api_base}{webhook_path}",
            runware_api_url=runware_api_url,
            runware_api_key_secret_name=r.runware_api_key_secret_name,
            webhook_secret_arn=r.webhook_secret_arn,
            event_bus_name=r.ref(EVENT_BUS) if EVENT_BUS in r.physical else "",
            results_dead_letter_queue_url=r.results_dead_letter_queue_url,
        )

    def _write_state_file(self) -> None:
        if self._state_file is None:
            return
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        state = {**self.endpoints.as_dict(), "pid": os.getpid()}
        self._state_file.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        self._exit.callback(self._remove_state_file)

    def _remove_state_file(self) -> None:
        assert self._state_file is not None
        try:
            if json.loads(self._state_file.read_text(encoding="utf-8")).get("pid") == os.getpid():
                self._state_file.unlink()
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        """Stop everything started, in reverse order (pollers finish their batch first)."""
        try:
            self._exit.close()
        finally:
            self._endpoints = None
            self._started = False
            if self._cleanup_handle is not None:
                process_cleanup.unregister(self._cleanup_handle)
                self._cleanup_handle = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers for tests and the demo
    def invoke(self, logical_id: str, event: Any) -> Any:
        return self.functions[logical_id].invoke(event)

    def wait_until_idle(self, timeout: float) -> bool:
        """True once every polled queue is empty and no invocation runs."""
        deadline = time.monotonic() + timeout
        return all(
            poller.wait_until_idle(max(0.0, deadline - time.monotonic())) for poller in self.pollers.values()
        )


_CLI_HINT = """
Try it from another terminal (`.venv/bin/runrelay --help`):
  runrelay submit local/tools/demo_inputs/prompts.jsonl --force   # prints the source id
  runrelay wait <id> && runrelay results <id> -o results.jsonl
  runrelay submit --prompt "Explain SQS in one line." --id my-first
  runrelay status my-first      runrelay tail -f      runrelay ask "Hi" --stream"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__)
    parser.add_argument("--template", type=Path, default=template_model.TEMPLATE_PATH)
    parser.add_argument("--stack-name", default="runrelay-local")
    parser.add_argument("--schedule-period", type=float, default=30.0, help="seconds between scheduled runs")
    parser.add_argument(
        "--retry-delay", type=int, default=None, help="seconds before a failed SQS message retries"
    )
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--state-file",
        type=Path,
        default=Path(os.environ.get("RUNRELAY_STATE_FILE") or DEFAULT_STATE_FILE),
        help="where the endpoints are written for the runrelay CLI (env RUNRELAY_STATE_FILE)",
    )
    parser.add_argument(
        "--function-log",
        type=Path,
        default=DEFAULT_STATE_FILE.parent / "functions.log",
        help="where the functions' JSON logs and EMF metrics go ('-' keeps them on this terminal)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = dict(item.split("=", 1) for item in args.parameter)
    terminal = sys.stdout
    with contextlib.ExitStack() as logs:
        function_log = None
        if str(args.function_log) != "-":
            # Every function's log stream, one line per record named by its function, as one file
            # keeps this terminal readable.
            args.function_log.parent.mkdir(parents=True, exist_ok=True)
            function_log = logs.enter_context(args.function_log.open("a", encoding="utf-8"))
        stack = LocalStack(
            args.template,
            stack_name=args.stack_name,
            parameter_overrides=overrides,
            schedule_period_seconds=args.schedule_period,
            retry_delay_seconds=args.retry_delay,
            state_file=args.state_file,
            function_log=function_log,
            long_running=True,
        )
        with stack:
            width = max(len(name) for name in stack.endpoints.as_dict())
            print("runrelay local stack is up (Ctrl-C stops it):", file=terminal)
            for name, value in stack.endpoints.as_dict().items():
                print(f"  {name:<{width}}  {value}", file=terminal)
            print(f"  (also in {args.state_file}, where the runrelay CLI finds them)", file=terminal)
            if function_log is not None:
                print(f"  function logs: tail -f {args.function_log}", file=terminal)
            print(_CLI_HINT, file=terminal, flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                print("\nstopping ...", file=terminal, flush=True)


if __name__ == "__main__":
    main()
