"""Where the CLI's commands go: the local stack written by `make up`, or a deployed CloudFormation stack.

The local stack is described by the JSON state file it writes, `.runrelay/local-stack.json` (or
`RUNRELAY_STATE_FILE` / `--state-file`): the CLI reads that file and never imports the local stack's code.
The file is looked for in the working directory and its parents, then in the source checkout. A deployed
stack by its outputs (`InputBucketName`, `InputPrefix`, `IngestQueueUrl`, `TasksTableName`,
`WebhookUrl`), found by `--stack NAME` or through samconfig.toml's `stack_name` (`--config-env`).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from runrelay_cli.errors import CliError, explain_aws_error

STATE_FILE_ENV = "RUNRELAY_STATE_FILE"
STATE_FILE_NAME = Path(".runrelay") / "local-stack.json"
# An editable install (`pip install -e .`) runs from the checkout: cli/runrelay_cli/targets.py.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
# The local services accept any credentials; clients of the local stack sign with these dummies.
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
NO_LOCAL_STACK = "no local stack running: start `make up` in another terminal, or pass --stack NAME"
REQUIRED_OUTPUTS = ("InputBucketName", "InputPrefix", "IngestQueueUrl", "TasksTableName")
_CLIENT_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"})


@dataclass(frozen=True)
class Target:
    """A stack's names plus how to reach its services (endpoint URLs are set only for the local stack)."""

    description: str
    region: str
    table_name: str
    bucket_name: str
    input_prefix: str
    ingest_queue_url: str
    webhook_url: str = ""
    endpoints: dict[str, str] = field(default_factory=dict)
    runware_api_url: str | None = None
    runware_api_key_secret_name: str | None = None
    dead_letter_queue_url: str = ""
    results_dead_letter_queue_url: str = ""
    event_bus_name: str = ""
    session: Any = field(default=None, compare=False, repr=False)

    @property
    def is_local(self) -> bool:
        return bool(self.endpoints)

    def client(self, service: str) -> Any:
        session = self.session or boto3.Session(region_name=self.region)
        endpoint = self.endpoints.get(service)
        extra = dict(LOCAL_CREDENTIALS) if endpoint else {}
        return session.client(service, endpoint_url=endpoint, config=_CLIENT_CONFIG, **extra)


def resolve_target(
    *,
    stack: str | None = None,
    region: str | None = None,
    config_env: str | None = None,
    state_file: Path | None = None,
    samconfig: Path | None = None,
) -> Target:
    """`--stack` wins, then `--config-env` (samconfig.toml), else the local stack."""
    if stack is None and config_env is not None:
        stack, configured_region = stack_from_samconfig(config_env, samconfig)
        region = region or configured_region
    if stack is not None:
        return deployed_target(stack, region)
    return local_target(state_file)


def state_file_path(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    from_env = os.environ.get(STATE_FILE_ENV)
    return Path(from_env) if from_env else default_state_file()


def default_state_file() -> Path:
    """`.runrelay/local-stack.json` in the working directory or its nearest parent that has one, else
    in the source checkout (where `make up` writes it)."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / STATE_FILE_NAME).is_file():
            return folder / STATE_FILE_NAME
    return SOURCE_ROOT / STATE_FILE_NAME


def local_target(state_file: Path | None = None) -> Target:
    path = state_file_path(state_file)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(NO_LOCAL_STACK) from None
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read {path}: {error}") from None
    if not isinstance(state, dict):
        raise CliError(f"{path} is not a local stack's description (a JSON object)")
    if not _process_alive(state.get("pid")):
        raise CliError(f"{NO_LOCAL_STACK} ({path} is stale: process {state.get('pid')} is gone)")
    try:
        return Target(
            description=f"local stack {state['stack_name']}",
            region=state["region"],
            table_name=state["table_name"],
            bucket_name=state["bucket_name"],
            input_prefix=state["input_prefix"],
            ingest_queue_url=state["ingest_queue_url"],
            webhook_url=state.get("webhook_url", ""),
            endpoints={
                "dynamodb": state["dynamodb_url"],
                "dynamodbstreams": state["dynamodb_url"],
                "s3": state["s3_url"],
                "sqs": state["sqs_url"],
                "secretsmanager": state["secretsmanager_url"],
                "events": state["s3_url"],  # moto serves EventBridge beside S3 and SQS
            },
            runware_api_url=state.get("runware_api_url"),
            runware_api_key_secret_name=state.get("runware_api_key_secret_name"),
            dead_letter_queue_url=state.get("dead_letter_queue_url", ""),
            results_dead_letter_queue_url=state.get("results_dead_letter_queue_url", ""),
            event_bus_name=state.get("event_bus_name", ""),
            session=boto3.Session(region_name=state["region"], **LOCAL_CREDENTIALS),
        )
    except KeyError as missing:
        raise CliError(f"{path} lacks {missing}: restart `make up`") from None


def _process_alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return True  # nothing to check against
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


def deployed_target(stack: str, region: str | None, session: Any = None) -> Target:
    session = session or boto3.Session(region_name=region)
    try:
        cloudformation = session.client("cloudformation", config=_CLIENT_CONFIG)
        answer = cloudformation.describe_stacks(StackName=stack)
    except ClientError as error:
        if "does not exist" in error.response.get("Error", {}).get("Message", ""):
            where = region or session.region_name
            raise CliError(f"stack {stack!r} not found in region {where}: check --stack / --region") from None
        raise explain_aws_error(error) from None
    except BotoCoreError as error:
        raise explain_aws_error(error) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in answer["Stacks"][0].get("Outputs", [])}
    missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
    if missing:
        raise CliError(f"stack {stack!r} has no output(s) {', '.join(missing)}: is it a runrelay stack?")
    return Target(
        description=f"stack {stack} ({cloudformation.meta.region_name})",
        region=cloudformation.meta.region_name,
        table_name=outputs["TasksTableName"],
        bucket_name=outputs["InputBucketName"],
        input_prefix=outputs["InputPrefix"],
        ingest_queue_url=outputs["IngestQueueUrl"],
        webhook_url=outputs.get("WebhookUrl", ""),
        dead_letter_queue_url=outputs.get("IngestDeadLetterQueueUrl", ""),
        results_dead_letter_queue_url=outputs.get("ResultsDeadLetterQueueUrl", ""),
        event_bus_name=outputs.get("EventBusName", ""),
        session=session,
    )


def stack_from_samconfig(config_env: str, samconfig: Path | None = None) -> tuple[str, str | None]:
    """(stack_name, region) of a samconfig.toml environment: global parameters, deploy overriding."""
    path = samconfig or _find_samconfig()
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"--config-env needs a samconfig.toml; none at {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise CliError(f"{path} is not valid TOML: {error}") from None
    env = config.get(config_env)
    if not isinstance(env, dict):
        known = ", ".join(k for k, v in config.items() if isinstance(v, dict)) or "none"
        raise CliError(f"no environment {config_env!r} in {path} (known: {known})")
    merged: dict[str, Any] = {}
    for command in ("global", "deploy"):
        merged.update((env.get(command) or {}).get("parameters") or {})
    if not merged.get("stack_name"):
        raise CliError(f"{path} sets no stack_name for environment {config_env!r}")
    return str(merged["stack_name"]), merged.get("region")


def _find_samconfig() -> Path:
    here = Path.cwd() / "samconfig.toml"
    return here if here.exists() else SOURCE_ROOT / "samconfig.toml"
