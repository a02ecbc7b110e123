"""Plumbing shared by the benchmarks: Lambda-like child interpreters, local services, printing."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import Check, Report, median, percentile

ROOT = Path(__file__).resolve().parents[1]
LAYER_DIR = ROOT / "layers" / "common"
REGION = "us-east-1"
RESULT_PREFIX = "BENCH-RESULT "
# One bytecode cache for every child (subject and baseline alike): like Lambda's runtime, whose boto3
# ships compiled, nobody pays for compiling source. Warmed by an untimed first run.
PYCACHE = Path(tempfile.gettempdir()) / "runrelay-bench-pycache"

LOGICAL_IDS = {
    "webhook": "WebhookFunction",
    "submit": "SubmitFunction",
    "reconcile": "ReconcileFunction",
    "results": "ResultsFunction",
}


def function_dir(name: str) -> Path:
    return ROOT / "functions" / name


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for a child interpreter: no PYTHONPATH, a shared pyc cache."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONDONTWRITEBYTECODE"} and not key.startswith("AWS_")
    }
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(extra or {})
    return env


def static_lambda_env(name: str, memory_mb: int = 512) -> dict[str, str]:
    """The variables template.yaml gives function `name` (placeholders for references), plus Lambda's own."""
    from local.stack.template_model import function_config, load_template

    config = function_config(load_template(), LOGICAL_IDS[name])
    variables = (config.get("Environment") or {}).get("Variables") or {}
    env = {
        key: str(value) if isinstance(value, str | int | float) else f"bench-{key.lower().replace('_', '-')}"
        for key, value in variables.items()
    }
    env["POWERTOOLS_LOG_LEVEL"] = "INFO"
    return {**lambda_runtime_env(name, memory_mb), **env}


def template_memory_mb(name: str) -> int:
    """Function `name`'s MemorySize in template.yaml (Globals merged)."""
    from local.stack.template_model import function_config, load_template

    return int(function_config(load_template(), LOGICAL_IDS[name])["MemorySize"])


def lambda_runtime_env(name: str, memory_mb: int = 512) -> dict[str, str]:
    return {
        "AWS_LAMBDA_FUNCTION_NAME": f"runrelay-{name}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "LAMBDA_TASK_ROOT": str(function_dir(name)),
    }


def lambda_sys_path(name: str) -> list[str]:
    """What Lambda puts first on sys.path: the function's code, then the layer."""
    return [str(function_dir(name)), str(LAYER_DIR)]


def run_child(code: str, env: Mapping[str, str], *, stdin: str | None = None, timeout: float = 120) -> Any:
    """Run `code` in a fresh interpreter; it reports by printing RESULT_PREFIX + JSON on a line."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tempfile.gettempdir(),  # not the repo: nothing importable by accident
        check=False,
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line.removeprefix(RESULT_PREFIX))
    raise RuntimeError(f"child failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


def interleaved(runs: int, *jobs: Callable[[], float]) -> list[list[float]]:
    """Run every job once per round, rotating the order (so drift in machine load hits all alike)."""
    samples: list[list[float]] = [[] for _ in jobs]
    for round_no in range(runs):
        order = list(range(len(jobs)))
        shift = round_no % len(jobs)
        for index in order[shift:] + order[:shift]:
            samples[index].append(jobs[index]())
    return samples


def timing_ratio_report(
    title: str, label: str, subject: list[float], baseline: list[float], target: float
) -> Report:
    """One check, median subject time / median baseline time (both in seconds), with p50/p99 in ms."""
    return Report(
        title,
        [
            Check(
                label,
                median(subject) / median(baseline),
                target,
                subject=median(subject) * 1000,
                baseline=median(baseline) * 1000,
                detail="ms",
            )
        ],
        notes={
            "subject ms p50/p99": f"{median(subject) * 1000:.1f} / {percentile(subject, 99) * 1000:.1f}",
            "baseline ms p50/p99": f"{median(baseline) * 1000:.1f} / {percentile(baseline, 99) * 1000:.1f}",
        },
    )


# ---------------------------------------------------------------------- local services
@dataclass
class LocalAws:
    dynamodb_url: str
    moto_url: str
    clients: Any  # local.stack.aws_resources.AwsClients
    stack: Any  # local.stack.aws_resources.StackResources
    dynamodb_pid: int  # DynamoDB Local's JVM, for the diagnostics that look inside it

    def function_env(self, name: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The function's environment as the template resolves it for this stack, endpoints local."""
        from local.stack.lambda_runtime import function_specs, local_aws_environment
        from local.stack.template_model import load_template

        specs = function_specs(
            load_template(),
            self.stack,
            template_dir=ROOT,
            api_base_urls={"WebhookApi": "http://127.0.0.1:9"},
        )
        spec = specs[LOGICAL_IDS[name]]
        local = local_aws_environment(dynamodb_url=self.dynamodb_url, moto_url=self.moto_url, region=REGION)
        return {
            **lambda_runtime_env(name, spec.memory_mb),
            **spec.environment,
            **local,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            **(overrides or {}),
        }


@contextmanager
def local_aws(stack_name: str = "bench") -> Iterator[LocalAws]:
    """DynamoDB Local and a moto server on 127.0.0.1, with template.yaml's resources provisioned."""
    from local.stack.aws_resources import AwsClients, PhysicalNames, provision
    from local.stack.services import DynamoDBLocal, MotoServer
    from local.stack.template_model import load_template

    # DynamoDB Local as it is normally run, with the JVM's default JIT: the test suite's fast-start
    # options (C1 only) cost it steady throughput, so they would measure a handicapped server.
    with DynamoDBLocal(jvm_options=()) as dynamodb, MotoServer() as moto:
        clients = AwsClients.for_endpoints(
            dynamodb_url=dynamodb.endpoint_url, moto_url=moto.endpoint_url, region=REGION
        )
        stack = provision(
            load_template(),
            clients,
            PhysicalNames(stack_name),
            region=REGION,
            parameter_overrides={"RunwareApiKeySecretName": f"{stack_name}/runware-api-key"},
            runware_api_key="bench-key",
        )
        assert dynamodb.pid is not None  # started by the `with` above
        yield LocalAws(dynamodb.endpoint_url, moto.endpoint_url, clients, stack, dynamodb.pid)


# ---------------------------------------------------------------------- entry points
def main(
    run: Callable[[argparse.Namespace], Report], add_arguments: Callable[[Any], None] | None = None
) -> None:
    """`python -m bench.<name> [--json FILE]`: run one benchmark, print its lines."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", help="also write the report as JSON here")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    report = run(args)
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))


def print_report(report: Report) -> None:
    print(f"== {report.benchmark}")
    for check in report.checks:
        print("  " + check.line())
    for key, value in report.notes.items():
        print(f"      {key}: {value}")
    sys.stdout.flush()
