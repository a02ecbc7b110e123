"""`runrelay`: submit prompts, watch them complete, cancel, read results, tail completions, ask Runware.

Every command works against the local stack (`make up` in another terminal) or, with `--stack NAME` /
`--config-env ENV`, against a deployed stack. Exit status: 0 success, 1 some task FAILED, 2 an error
(bad input, unknown id, no stack, no credentials), 3 `wait` timed out.
"""

from __future__ import annotations

import enum
import functools
import getpass
import hashlib
import importlib.metadata
import inspect
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.markup import escape

from runrelay.adapters.dynamodb.jobs import DynamoJobRepository
from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.adapters.s3 import S3PayloadStore
from runrelay.contract import TextInferenceTask
from runrelay.deadline import Deadline
from runrelay.domain.jobs import has_job
from runrelay.domain.retries import RetryRequest, refusal_for_job
from runrelay.domain.tasks import TaskRecord
from runrelay.inputs import (
    CONTROL_KEY,
    ControlMessage,
    Rejection,
    TaskSpec,
    caller_id_of,
    control_message,
    object_format,
    parse_spec,
)
from runrelay.runware_client import RunwareClient
from runrelay.runware_errors import RunwareApiError
from runrelay.task_ids import MAX_ATTEMPTS
from runrelay_cli import render
from runrelay_cli.errors import CliError, explain_aws_error
from runrelay_cli.help_format import FlagCommand, FlagGroup
from runrelay_cli.ids import Ref, SourceRef, TaskRef, caller_task_uuid, expected_tasks, resolve
from runrelay_cli.progress import StatusReader, Tally, wait_settled
from runrelay_cli.specs import (
    check_file,
    message_bodies,
    option_spec,
    parse_metadata,
    prompt_spec,
    read_messages,
)
from runrelay_cli.tail import CompletionStream
from runrelay_cli.targets import Target, local_target, resolve_target

EXIT_FAILED_TASKS = 1
EXIT_ERROR = 2
EXIT_TIMEOUT = 3
# How long `submit` waits for the submit function to take SQS messages: until it has, their ids name
# nothing the other commands can find. On AWS the queue's batching window alone is 5 s.
PICKUP_SECONDS = 60.0

app = typer.Typer(
    name="runrelay",
    # The docstring's paragraphs, each on one line: typer keeps line breaks inside a paragraph.
    help="\n\n".join(" ".join(paragraph.split()) for paragraph in (__doc__ or "").split("\n\n")),
    cls=FlagGroup,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
command = app.command


def _version() -> str:
    try:
        return importlib.metadata.version("runrelay")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: run `make install`)"


def _show_version(value: bool) -> None:
    if value:
        print(f"runrelay {_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None,
        typer.Option("--version", help="Print the version and exit.", callback=_show_version, is_eager=True),
    ] = None,
) -> None:
    """Submit prompts, watch them complete, cancel, read results, tail completions, ask Runware."""


class Via(enum.StrEnum):
    s3 = "s3"
    sqs = "sqs"


# -- options shared by the commands ---------------------------------------------------------------

_TARGET = "Target (default: the local stack of `make up`)"
StackOpt = Annotated[
    str | None,
    typer.Option("--stack", envvar="RUNRELAY_STACK", help="Deployed stack name.", rich_help_panel=_TARGET),
]
RegionOpt = Annotated[
    str | None, typer.Option("--region", help="AWS region of the stack.", rich_help_panel=_TARGET)
]
ConfigEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--config-env", help="samconfig.toml environment naming the stack.", rich_help_panel=_TARGET
    ),
]
StateFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-file",
        envvar="RUNRELAY_STATE_FILE",
        help="Local stack description written by `make up`.",
        rich_help_panel=_TARGET,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output for scripts.")]
IdsArg = Annotated[
    list[str],
    typer.Argument(
        help="taskUUID, caller id, source id (s3://bucket/key#etag, sqs:<messageId>), S3 key or file name.",
        show_default=False,
    ),
]
NumberResultsOpt = Annotated[int | None, typer.Option("--number-results", help="Results per task, 1-4.")]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", help="0.01-1, step 0.01.")]
TopPOpt = Annotated[float | None, typer.Option("--top-p", help="0-1, step 0.01.")]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", help="1-196608.")]
SystemPromptOpt = Annotated[str | None, typer.Option("--system-prompt", help="System prompt.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="0-4294967295.")]


@dataclass(frozen=True)
class TargetChoice:
    """The target options as given; `resolve()` (inside `_user_errors`) finds the stack they name."""

    stack: str | None = None
    region: str | None = None
    config_env: str | None = None
    state_file: Path | None = None

    def resolve(self) -> Target:
        if self.region is not None and self.stack is None and self.config_env is None:
            raise CliError(
                "--region applies to a deployed stack: give --stack NAME (or --config-env) with it"
            )
        return resolve_target(
            stack=self.stack, region=self.region, config_env=self.config_env, state_file=self.state_file
        )


_DEFAULT_TARGET = TargetChoice()  # no option given: the local stack
_TARGET_OPTIONS = (
    ("stack", StackOpt),
    ("region", RegionOpt),
    ("config_env", ConfigEnvOpt),
    ("state_file", StateFileOpt),
)


def _targeted(function: Callable[..., None]) -> Callable[..., None]:
    """Give a command the target options in place of its `where: TargetChoice` parameter.

    Each command still takes `--stack`, `--region`, `--config-env` and `--state-file` itself (and shows
    them in its `--help`, in the target panel), but they are declared here, once.
    """
    signature = inspect.signature(function, eval_str=True)
    if "where" not in signature.parameters:
        raise TypeError(f"{function.__name__} takes no `where: TargetChoice` parameter")
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name != "where":
            parameters.append(parameter)
            continue
        parameters.extend(
            inspect.Parameter(
                name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=annotation
            )
            for name, annotation in _TARGET_OPTIONS
        )

    @functools.wraps(function)
    def command_with_target(*args: Any, **kwargs: Any) -> None:
        where = TargetChoice(**{name: kwargs.pop(name, None) for name, _ in _TARGET_OPTIONS})
        function(*args, where=where, **kwargs)

    command_with_target.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    command_with_target.__annotations__ = {p.name: p.annotation for p in parameters}
    return command_with_target


@contextmanager
def _user_errors() -> Iterator[None]:
    """Every failure a user can act on becomes one `error:` line and exit status 2."""
    try:
        yield
    except CliError as error:
        _fail(str(error))
    except (BotoCoreError, ClientError) as error:
        _fail(str(explain_aws_error(error)))
    except RunwareApiError as error:
        _fail(str(error))


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    # The message carries the user's own names and AWS's words: never read as markup.
    render.err_console().print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class _Session:
    """The resolved target and the clients the commands use."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.dynamodb = target.client("dynamodb")
        self.s3 = target.client("s3")
        self.store = DynamoTaskRepository(
            target.table_name,
            payloads=S3PayloadStore(target.bucket_name, s3=self.s3),
            dynamodb=self.dynamodb,
        )

    def resolve(self, ids: list[str]) -> list[Ref]:
        return [ref for text in ids for ref in resolve(text, self.target, self.store, self.s3)]

    def task(self, ref: TaskRef) -> TaskRecord:
        view = self.store.get_task(ref.task_uuid)
        if view is None:
            raise CliError(f"unknown task {ref.label}: no such task in {self.target.description}")
        return view


# -- submit ---------------------------------------------------------------------------------------


@command(cls=FlagCommand)
@_targeted
def submit(
    file: Annotated[
        Path | None, typer.Argument(help="A .jsonl / .json / text file of task specs.", show_default=False)
    ] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="One prompt, sent over SQS.")] = None,
    messages: Annotated[
        Path | None,
        typer.Option("--messages", help='A JSON file: [{"role": "user"|"assistant", "content": …}, …].'),
    ] = None,
    number_results: NumberResultsOpt = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    max_tokens: MaxTokensOpt = None,
    system_prompt: SystemPromptOpt = None,
    seed: SeedOpt = None,
    metadata: Annotated[
        str | None, typer.Option("--metadata", help='JSON object kept with the task, e.g. \'{"team": "a"}\'.')
    ] = None,
    caller_id: Annotated[
        str | None, typer.Option("--id", help="Your idempotency key for --prompt / --messages.")
    ] = None,
    via: Annotated[Via | None, typer.Option("--via", help="s3 (default for a FILE) or sqs.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Object name under the input prefix.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Send invalid specs too (they are REJECTED).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the id(s).")] = False,
    where: TargetChoice = _DEFAULT_TARGET,
    as_json: JsonOpt = False,
) -> None:
    """Send a file (to the input bucket, or as SQS messages), or one --prompt / --messages; prints the id."""
    with _user_errors():
        settings: dict[str, Any] = {
            "number_results": number_results,
            "temperature": temperature,
            "top_p": top_p,
            "max_tokens": max_tokens,
            "system_prompt": system_prompt,
            "seed": seed,
            "metadata": None if metadata is None else _parsed(parse_metadata, metadata),
        }
        if sum(given is not None for given in (file, prompt, messages)) != 1:
            raise CliError("give a FILE, --prompt TEXT or --messages FILE (one of them)")
        if file is None:
            if via is Via.s3:
                raise CliError("--prompt and --messages go over SQS; to use S3, put the spec in a file")
            if key is not None:
                raise CliError("--key names the S3 object of a FILE; --prompt and --messages go over SQS")
            conversation = None if messages is None else _parsed(read_messages, messages)
            raw = option_spec(prompt=prompt, messages=conversation, caller_id=caller_id, **settings)
            plan = _Plan(
                Via.sqs, 1, bodies=[json.dumps(_checked_option_spec(raw, force), ensure_ascii=False)]
            )
        else:
            if caller_id is not None:
                raise CliError(
                    '--id applies to --prompt / --messages; in a file, give each spec its own "id"'
                )
            plan = _file_plan(file, via or Via.s3, settings, key, force)
        session = _Session(where.resolve())
        sent = _send(session, plan, file)
    ids = [caller_id] if caller_id is not None and sent.ids else sent.ids
    if as_json:
        answer: dict[str, Any] = {
            "ids": ids,
            "via": plan.via.value,
            "tasks": plan.tasks,
            "newTasks": plan.tasks - sent.known,
            "target": session.target.description,
        }
        if caller_id is not None:
            answer["taskUUID"] = caller_task_uuid(caller_id)
        if sent.not_taken:
            answer["notTakenYet"] = sent.not_taken
        render.emit_json(answer)
        return
    if quiet:
        for one in ids:
            print(one)
    else:
        _report_sent(session, plan, sent, ids)
    if sent.not_taken:
        render.err_console().print(
            f"[yellow]warning:[/] the stack has not taken {escape(', '.join(sent.not_taken))} within "
            f"{PICKUP_SECONDS:g}s (is the submit function running?); until it does, these ids are unknown",
            highlight=False,
            soft_wrap=True,
        )


def _parsed(parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except ValueError as error:
        raise CliError(str(error)) from None


def _checked_option_spec(raw: dict[str, Any], force: bool) -> dict[str, Any]:
    parsed = parse_spec(raw)
    if isinstance(parsed, TaskSpec):
        return _spec_body(parsed)
    if not force:
        raise CliError(f"invalid task: {parsed.message} (--force sends it anyway: it becomes REJECTED)")
    return raw


def _report_sent(session: _Session, plan: _Plan, sent: _Sent, ids: list[str]) -> None:
    out = render.console()
    where = session.target.description
    if sent.unchanged:
        out.print(
            f"unchanged: this file was already submitted to the {where} ({plan.tasks} task(s)); "
            "nothing new runs",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    elif sent.known == plan.tasks:
        out.print(
            f"nothing new runs: every spec's id already names a task in the {where}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    else:
        out.print(
            f"submitted {plan.tasks} task(s) via {plan.via.value.upper()} to the {where}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        if sent.known:
            out.print(
                f"{sent.known} of them carry an id that already names a task: those do not run again",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
    for one in ids:
        out.print(one, highlight=False, markup=False, soft_wrap=True)
    shown = " ".join(ids[:20])
    # One unwrapped line, without markup, so that it can be copied as it is.
    out.print(
        f"next: runrelay wait {shown} && runrelay results {shown} -o results.jsonl",
        style="dim",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _valid(parsed: TaskSpec | Rejection) -> TaskSpec:
    if isinstance(parsed, Rejection):
        raise CliError(f"invalid task: {parsed.message}")
    return parsed


def _spec_body(spec: TaskSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True)
class _Plan:
    """What submit sends: the file itself to S3 (under `s3_name`), or these SQS bodies."""

    via: Via
    tasks: int
    bodies: list[str] = field(default_factory=list)
    s3_name: str = ""


@dataclass
class _Sent:
    """What `_send` did: the ids to give the user, and how much of it was already known."""

    ids: list[str]
    known: int = 0  # specs whose `id` already names a task (SQS), or every task of an unchanged file
    unchanged: bool = False  # the same bytes are already in the bucket under that key, with their tasks
    not_taken: list[str] = field(default_factory=list)  # messages the submit function has not taken yet


def _checked_control(action: str, source_id: str, requested_by: str, **options: Any) -> str:
    """A control message's body, refused here if the submitter would refuse it (it would be logged as
    malformed there, and the request would silently come to nothing)."""
    body = control_message(action, source_id, requested_by, **options)
    try:
        ControlMessage.model_validate(json.loads(body)[CONTROL_KEY])
    except ValueError as error:
        raise CliError(f"this {action} request would be refused: {error}") from None
    return body


_READ_AS = {"lines": "JSON Lines", "json": "one JSON document", "prompt": "one plain-text prompt"}


def _read_as(name: str) -> str:
    """How the submitter reads an object of this name (`inputs.object_format`), in words."""
    return _READ_AS[object_format(name)]


def _file_plan(file: Path, via: Via, settings: dict[str, Any], key: str | None, force: bool) -> _Plan:
    checked = check_file(file)
    if not checked.specs:
        raise CliError(f"{file}: " + "; ".join(str(p) for p in checked.problems))
    if checked.problems and not force:
        shown = "\n  ".join(str(p) for p in checked.problems[:20])
        more = f"\n  … and {len(checked.problems) - 20} more" if len(checked.problems) > 20 else ""
        raise CliError(
            f"{len(checked.problems)} invalid spec(s) in {file} (nothing sent):\n  {shown}{more}\n"
            "fix them, or pass --force to send anyway (they become REJECTED tasks)"
        )
    given = any(value is not None for value in settings.values())
    if given and not (checked.is_prompt_text and via is Via.sqs):
        raise CliError(
            "settings options apply to --prompt, --messages or a text file sent --via sqs; "
            "in .jsonl/.json files put them in each spec"
        )
    if via is Via.s3:
        if key is not None and _read_as(key) != _read_as(file.name):
            # The submitter reads an object by its key's suffix: this file would become other tasks.
            raise CliError(
                f"--key {key} would be read as {_read_as(key)}, but {file.name} is {_read_as(file.name)}: "
                "give the key the file's suffix"
            )
        return _Plan(Via.s3, checked.task_count, s3_name=key or file.name)
    specs = checked.specs
    if checked.is_prompt_text:
        specs = [_checked_option_spec(option_spec(prompt=specs[0]["prompt"], **settings), force)]
    try:
        bodies = list(message_bodies(specs))
    except ValueError as error:
        raise CliError(str(error)) from None
    return _Plan(Via.sqs, checked.task_count, bodies=[body for body, _ in bodies])


def _send(session: _Session, plan: _Plan, file: Path | None) -> _Sent:
    """Upload or enqueue what is new; the ids the table will use."""
    if plan.via is Via.s3:
        assert file is not None
        return _upload(session, plan, file)
    known_uuids = _known_caller_tasks(session, plan.bodies)
    pending = [body for body in plan.bodies if not _all_known(body, known_uuids)]
    known = sum(1 for body in plan.bodies for spec in _specs_of(body) if _caller_uuid(spec) in known_uuids)
    if not pending:
        return _Sent([caller_id_of(spec) or "" for body in plan.bodies for spec in _specs_of(body)], known)
    sqs = session.target.client("sqs")
    queue = session.target.ingest_queue_url
    ids = [f"sqs:{sqs.send_message(QueueUrl=queue, MessageBody=body)['MessageId']}" for body in pending]
    return _Sent(ids, known, not_taken=_await_pickup(session, ids))


def _upload(session: _Session, plan: _Plan, file: Path) -> _Sent:
    target = session.target
    name = plan.s3_name
    object_key = name if name.startswith(target.input_prefix) else f"{target.input_prefix}{name}"
    # A single-part upload's ETag is the MD5 of its bytes (not with SSE-KMS: then the file goes up again,
    # and the submitter still runs nothing twice, as the README says).
    digest = hashlib.md5(file.read_bytes(), usedforsecurity=False).hexdigest()
    source_id = f"s3://{target.bucket_name}/{object_key}#{digest}"
    if _current_etag(session, object_key) == digest and session.store.source_has_tasks(source_id):
        return _Sent([source_id], known=plan.tasks, unchanged=True)
    with file.open("rb") as body:
        put = session.s3.put_object(Bucket=target.bucket_name, Key=object_key, Body=body)
    return _Sent([f"s3://{target.bucket_name}/{object_key}#{put['ETag'].strip(chr(34))}"])


def _current_etag(session: _Session, object_key: str) -> str | None:
    try:
        head = session.s3.head_object(Bucket=session.target.bucket_name, Key=object_key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise
    return str(head["ETag"]).strip('"')


def _specs_of(body: str) -> list[Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        return [None]
    return payload if isinstance(payload, list) else [payload]


def _caller_uuid(spec: Any) -> str | None:
    """The task a valid spec's `id` names (a refused spec's id is no idempotency key)."""
    caller_id = caller_id_of(spec)
    return caller_task_uuid(caller_id) if caller_id and isinstance(parse_spec(spec), TaskSpec) else None


def _known_caller_tasks(session: _Session, bodies: list[str]) -> set[str]:
    wanted = [uuid for body in bodies for spec in _specs_of(body) if (uuid := _caller_uuid(spec))]
    if not wanted:
        return set()
    return set(StatusReader(session.dynamodb, session.target.table_name).statuses(wanted))


def _all_known(body: str, known_uuids: set[str]) -> bool:
    specs = _specs_of(body)
    return bool(specs) and all(_caller_uuid(spec) in known_uuids for spec in specs)


def _await_pickup(session: _Session, source_ids: list[str]) -> list[str]:
    """Wait until the submit function has written each message's tasks; the ones it has not."""
    waiting = list(source_ids)
    deadline = time.monotonic() + PICKUP_SECONDS
    try:
        while waiting:
            waiting = [source for source in waiting if not session.store.source_has_tasks(source)]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.25)
    except KeyboardInterrupt:
        pass  # Ctrl-C while waiting: the messages are sent, so their ids are still printed
    return waiting


# -- status / wait / results ----------------------------------------------------------------------


def _tally(session: _Session, refs: list[Ref]) -> Tally:
    """Statuses of the refs' tasks, with the total known in advance where it can be."""
    tally = Tally(exact=True)
    for ref in refs:
        if isinstance(ref, TaskRef):
            tally.expected += 1
            continue
        count = expected_tasks(session.s3, ref)
        tally.expected += count or 0
        tally.exact = tally.exact and count is not None
    return tally


@command(cls=FlagCommand)
@_targeted
def status(
    ids: IdsArg,
    where: TargetChoice = _DEFAULT_TARGET,
    as_json: JsonOpt = False,
) -> None:
    """One task's state (taskUUID or caller id), or a source's task counts by status."""
    with _user_errors():
        session = _Session(where.resolve())
        reader = StatusReader(session.dynamodb, session.target.table_name)
        out = render.console()
        source_rows: list[tuple[str, Tally]] = []
        for ref in session.resolve(ids):
            if isinstance(ref, TaskRef):
                view = session.task(ref)
                if as_json:
                    render.emit_json(render.task_summary(view))
                else:
                    out.print(render.task_table(view))
                continue
            tally = reader.refresh([ref], _tally(session, [ref]))
            if as_json:
                render.emit_json(render.tally_summary(ref.label, tally))
            else:
                source_rows.append((ref.label, tally))
        if source_rows:
            out.print(render.tally_table(source_rows))


@command(cls=FlagCommand)
@_targeted
def wait(
    ids: IdsArg,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait before giving up.")] = 900.0,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between polls.", min=0.1)] = 0.5,
    where: TargetChoice = _DEFAULT_TARGET,
    as_json: JsonOpt = False,
) -> None:
    """Wait, with a progress bar, until every task is final.

    Exit 0 if none FAILED, 1 if some did, 3 on timeout.
    """
    with _user_errors():
        session = _Session(where.resolve())
        refs = session.resolve(ids)
        reader = StatusReader(session.dynamodb, session.target.table_name)
        tally = _tally(session, refs)
        if as_json:
            done = wait_settled(
                reader, refs, tally, timeout=timeout, poll_seconds=poll, on_poll=lambda _: None
            )
        else:
            with render.wait_progress(render.console()) as progress:
                bar = progress.add_task("tasks final", total=tally.total or None, detail="")

                def show(current: Tally) -> None:
                    progress.update(
                        bar, total=current.total, completed=current.final, detail=render.tally_detail(current)
                    )

                done = wait_settled(reader, refs, tally, timeout=timeout, poll_seconds=poll, on_poll=show)
    summary = {**render.tally_summary(" ".join(ids), tally), "timedOut": not done}
    if as_json:
        render.emit_json(summary)
    else:
        render.console().print(render.tally_table([(" ".join(ids), tally)]))
    if not done:
        _fail(f"timed out after {timeout:g}s: {tally.final} of {tally.total} task(s) final", EXIT_TIMEOUT)
    if tally.failed:
        _fail(f"{tally.failed} task(s) FAILED: see `runrelay results {' '.join(ids)}`", EXIT_FAILED_TASKS)


@command(cls=FlagCommand)
@_targeted
def results(
    ids: IdsArg,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write JSONL here.")] = None,
    where: TargetChoice = _DEFAULT_TARGET,
    as_json: JsonOpt = False,
) -> None:
    """One JSON line per task, in input order: callerId, taskUUID, status, results, error."""
    with _user_errors():
        session = _Session(where.resolve())
        views: list[TaskRecord] = []
        for ref in session.resolve(ids):
            if isinstance(ref, TaskRef):
                views.append(session.task(ref))
                continue
            found = session.store.tasks_of_source(ref.source_id)
            if not found:
                raise CliError(f"no tasks for {ref.label} yet: see `runrelay status {ref.label}`")
            views.extend(found)
    lines = [json.dumps(render.result_line(view), ensure_ascii=False) for view in views]
    if output is None:
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        return
    try:
        output.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    except OSError as error:
        _fail(f"cannot write {output}: {error.strerror or error}")
    counts: dict[str, int] = {}
    for view in views:
        counts[view.status] = counts.get(view.status, 0) + 1
    if as_json:
        render.emit_json({"path": str(output), "tasks": len(views), "counts": counts})
    else:
        shown = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        render.console().print(
            f"wrote {len(views)} line(s) to {output} ({shown})", highlight=False, markup=False
        )


# -- cancel ---------------------------------------------------------------------------------------


@command(cls=FlagCommand)
@_targeted
def cancel(
    ids: Annotated[
        list[str],
        typer.Argument(
            help="Source: a file name or S3 key, s3://bucket/key#etag, or sqs:<messageId>.",
            show_default=False,
        ),
    ],
    by: Annotated[
        str | None, typer.Option("--by", help="Who asks, recorded on every cancelled line (default: you).")
    ] = None,
    where: TargetChoice = _DEFAULT_TARGET,
    as_json: JsonOpt = False,
) -> None:
    """Stop a source: lines not yet sent to Runware end CANCELLED and are never sent.

    Tasks Runware already has cannot be stopped (Runware has no cancel): their results are still stored.
    The job still closes, and its results file lists every line. Sent as a control message on the ingest
    queue; the first cancellation of a source is the one kept."""
    requested_by = by or _user_name()
    with _user_errors():
        session = _Session(where.resolve())
        sources = [source for text in ids for source in _sources_named(session, text)]
        sqs = session.target.client("sqs")
        for source in sources:
            sqs.send_message(
                QueueUrl=session.target.ingest_queue_url,
                MessageBody=_checked_control("cancel", source.source_id, requested_by),
            )
    if as_json:
        render.emit_json({"cancelRequested": [s.source_id for s in sources], "requestedBy": requested_by})
        return
    for source in sources:
        render.console().print(
            f"cancel requested for {source.label} (by {requested_by}): lines not yet sent will end "
            f"CANCELLED; see `runrelay status {source.label}`",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


# -- retry ----------------------------------------------------------------------------------------


@command(cls=FlagCommand)
@_targeted
def retry(
    ids: Annotated[
        list[str],
        typer.Argument(
            help="A file name or S3 key, s3://bucket/key#etag, sqs:<messageId>, or a caller id / taskUUID.",
            show_default=False,
        ),
    ],
    error_codes: Annotated[
        list[str] | None,
        typer.Option(
            "--error-code", help="Only lines failed with this code (repeatable), e.g. timeoutProvider."
        ),
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            "--max-attempts", help="At most this many attempts per line in all.", min=2, max=MAX_ATTEMPTS
        ),
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who asks (default: you).")] = None,
    where: TargetChoice = _DEFAULT_TARGET,
    as_json: JsonOpt = False,
) -> None:
    """Run the FAILED lines of a file (or tasks of an SQS message) again, each as a new attempt.

    COMPLETED lines never run again. Each retried line gets taskUUIDs of its own (so the attempt is itself
    exactly-once) and keeps its earlier attempts. Once every retried line of a file is final, its results
    file is rewritten (latest attempt per line) and JobCompleted is published again with the round. Sent
    as a control message on the ingest queue."""
    requested_by = by or _user_name()
    request_options = {"errorCodes": error_codes or None, "maxAttempts": max_attempts}
    planned: list[dict[str, Any]] = []
    with _user_errors():
        session = _Session(where.resolve())
        jobs = DynamoJobRepository(session.target.table_name, dynamodb=session.dynamodb)
        for source_id in _sources_of(session, ids):
            request = RetryRequest(
                source_id,
                requested_by,
                frozenset(error_codes) if error_codes else None,
                max_attempts or MAX_ATTEMPTS,
            )
            next_round = None
            if has_job(source_id):  # a file: retried as a whole round, once it is done
                job = jobs.get(source_id)
                if job is None:
                    raise CliError(f"{source_id} has no job: nothing of it has been submitted yet")
                refusal = refusal_for_job(job.expected, job.finals, job.held, job.announced)
                if refusal is not None:
                    raise CliError(f"{source_id}: {refusal}")
                next_round = job.retry_round + 1
            tasks = list(session.store.tasks_in_order(session.store.task_uuids_of_source(source_id)))
            lines = [task.source_seq for task in tasks if request.wants(task)]
            planned.append({"sourceId": source_id, "lines": lines, "round": next_round})
        sqs = session.target.client("sqs")
        for plan in planned:
            if plan["lines"]:
                body = _checked_control("retry", plan["sourceId"], requested_by, **request_options)
                sqs.send_message(QueueUrl=session.target.ingest_queue_url, MessageBody=body)
    if as_json:
        render.emit_json({"retryRequested": planned, "requestedBy": requested_by})
        return
    for plan in planned:
        if not plan["lines"]:
            text = f"nothing to retry in {plan['sourceId']}: no FAILED line matches"
        else:
            shown = ", ".join(map(str, plan["lines"][:10])) + (" …" if len(plan["lines"]) > 10 else "")
            round_note = f"round {plan['round']}, " if plan["round"] else ""
            text = (
                f"retry requested for {plan['sourceId']} ({round_note}by {requested_by}): "
                f"{len(plan['lines'])} failed line(s) will run again: {shown}; see `runrelay status`"
            )
        render.console().print(text, highlight=False, markup=False, soft_wrap=True)


def _sources_of(session: _Session, ids: list[str]) -> list[str]:
    """The sources named, directly or by one of their tasks, each once, in the order given."""
    sources: list[str] = []
    for text in ids:
        for ref in session.resolve([text]):  # an SQS message with no task names nothing to retry
            source_id = session.task(ref).source_id if isinstance(ref, TaskRef) else ref.source_id
            if source_id not in sources:
                sources.append(source_id)
    return sources


def _sources_named(session: _Session, text: str) -> list[SourceRef]:
    """`text` as sources; an SQS message id is taken as given (it may not have been taken yet)."""
    name = text.strip()
    if name.startswith("sqs:") and len(name) > len("sqs:"):
        return [SourceRef(name)]
    refs = session.resolve([text])
    tasks = [ref for ref in refs if isinstance(ref, TaskRef)]
    if tasks:
        raise CliError(
            f"{text!r} names a task, not a source: cancel takes a file name, s3://bucket/key#etag or "
            "sqs:<messageId> (a single task already sent cannot be cancelled)"
        )
    return [ref for ref in refs if isinstance(ref, SourceRef)]


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "unknown"


# -- tail -----------------------------------------------------------------------------------------


@command(cls=FlagCommand)
@_targeted
def tail(
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many recent completions.", min=0)] = 10,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new ones (Ctrl-C stops).")
    ] = False,
    where: TargetChoice = _DEFAULT_TARGET,
    as_json: JsonOpt = False,
) -> None:
    """Latest completions (tasks reaching a final status), from the table's stream."""
    out = render.console()

    def show(item: TaskRecord) -> None:
        if as_json:
            render.emit_json(render.completion_json(item))
        else:
            out.print(render.completion_line(item), highlight=False, soft_wrap=True)

    with _user_errors():
        target = where.resolve()
        stream = CompletionStream(
            target.client("dynamodb"), target.client("dynamodbstreams"), target.table_name
        )
        for completion in stream.latest(lines):
            show(completion.task)
        if follow:
            try:
                for completion in stream.follow():
                    show(completion.task)
            except KeyboardInterrupt:
                return


# -- redrive --------------------------------------------------------------------------------------


class Queue(enum.StrEnum):
    ingest = "ingest"
    results = "results"
    all = "all"


@command(cls=FlagCommand)
@_targeted
def redrive(
    queue: Annotated[
        Queue, typer.Argument(help="Which dead-letter queue: ingest, results or all.")
    ] = Queue.all,
    where: TargetChoice = _DEFAULT_TARGET,
    as_json: JsonOpt = False,
) -> None:
    """Run again what ended in a dead-letter queue, once the cause is fixed; nothing runs twice.

    ingest: the ingest DLQ's messages go back to the ingest queue (their tasks keep their taskUUIDs).
    results: the results DLQ's stream batches are replayed through the results logic, which writes only the
    tallies, TaskCompleted/JobCompleted events and results files still missing."""
    from runrelay_cli.redrive import RedriveReport, ResultsRedrive, redrive_ingest

    report = RedriveReport()
    with _user_errors():
        target = where.resolve()
        sqs = target.client("sqs")
        if queue in (Queue.ingest, Queue.all):
            if not target.dead_letter_queue_url:
                raise CliError(f"{target.description} names no ingest dead-letter queue")
            report.moved = redrive_ingest(sqs, target.dead_letter_queue_url, target.ingest_queue_url)
        if queue in (Queue.results, Queue.all):
            if not (target.results_dead_letter_queue_url and target.event_bus_name):
                raise CliError(f"{target.description} names no results dead-letter queue or event bus")
            ResultsRedrive(
                sqs=sqs,
                streams=target.client("dynamodbstreams"),
                dynamodb=target.client("dynamodb"),
                s3=target.client("s3"),
                events=target.client("events"),
                table_name=target.table_name,
                bus_name=target.event_bus_name,
            ).run(target.results_dead_letter_queue_url, report)
    if as_json:
        render.emit_json(
            {
                "ingestMessagesMoved": report.moved,
                "resultsBatchesReplayed": report.batches,
                "tasksMadeFinal": report.tasks_final,
                "jobsCompleted": report.jobs_completed,
                "left": report.left,
            }
        )
    else:
        out = render.console()
        out.print(f"ingest DLQ: {report.moved} message(s) sent back to the ingest queue", highlight=False)
        out.print(
            f"results DLQ: {report.batches} stream batch(es) replayed, {report.tasks_final} task(s) "
            f"announced and counted, {len(report.jobs_completed)} job(s) completed",
            highlight=False,
        )
        for reason in report.left:
            out.print(f"  left in the results DLQ: {reason}", highlight=False, markup=False)
    if report.left:
        raise typer.Exit(EXIT_ERROR)


# -- ask ------------------------------------------------------------------------------------------


@command(cls=FlagCommand)
def ask(
    prompt: Annotated[str, typer.Argument(help="What to ask MiniMax M2.7.", show_default=False)],
    stream: Annotated[bool, typer.Option("--stream", help="Print the answer as it is generated.")] = False,
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
    system_prompt: SystemPromptOpt = None,
    seed: SeedOpt = None,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url", envvar="RUNWARE_API_URL", help="Runware API (default: the local emulator)."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds before giving up.")] = 120.0,
    state_file: StateFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask Runware directly (sync, or --stream); the key comes from RUNWARE_API_KEY or the local stack."""
    with _user_errors():
        spec = _valid(
            prompt_spec(
                prompt, temperature=temperature, max_tokens=max_tokens, system_prompt=system_prompt, seed=seed
            )
        )
        client = _runware_client(api_url, os.environ.get("RUNWARE_API_KEY"), state_file)
        task = TextInferenceTask(
            taskUUID=uuid.uuid4(),
            messages=spec.conversation(),
            settings=spec.settings,
            seed=spec.seed,
            includeUsage=True,
            includeCost=True,
            deliveryMethod=None if stream else "sync",
        )
        deadline = Deadline.after(timeout)
        if stream:
            _ask_streaming(client, task, deadline, as_json)
            return
        outcome = client.submit([task], deadline)
        if outcome.rejected:
            error = next(iter(outcome.rejected.values()))
            raise CliError(f"Runware refused the task: {error.code}: {error.message}")
        if not outcome.results:
            raise CliError("Runware answered without a result")
    result = outcome.results[0]
    if as_json:
        render.emit_json(result.model_dump(mode="json", exclude_none=True))
        return
    out = render.console()
    out.print(result.text or "", highlight=False, markup=False)
    usage = result.usage.totalTokens if result.usage else None
    out.print(
        f"[dim]{escape(str(result.finishReason))} · {usage} tokens · {render.money(result.cost or 0)}[/]",
        highlight=False,
    )


def _runware_client(api_url: str | None, api_key: str | None, state_file: Path | None) -> RunwareClient:
    if api_url:
        if not api_key:
            raise CliError("RUNWARE_API_KEY is not set (needed with RUNWARE_API_URL / --api-url)")
        parsed = urlsplit(api_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CliError(f"the Runware API URL must be http(s)://host/..., got {api_url!r}")
        return RunwareClient(api_url, api_key)
    target = local_target(state_file)
    if not target.runware_api_url or not target.runware_api_key_secret_name:
        raise CliError("the local stack names no Runware API: set RUNWARE_API_URL and RUNWARE_API_KEY")
    if not api_key:
        secret = target.client("secretsmanager").get_secret_value(SecretId=target.runware_api_key_secret_name)
        api_key = _api_key_of(secret["SecretString"])
    return RunwareClient(target.runware_api_url, api_key)


def _api_key_of(secret: str) -> str:
    """The secret is the key itself or JSON {"apiKey": ...} (as in the deployed stack)."""
    try:
        parsed = json.loads(secret)
    except ValueError:
        return secret
    return str(parsed.get("apiKey", "")) if isinstance(parsed, dict) else secret


def _ask_streaming(client: RunwareClient, task: TextInferenceTask, deadline: Deadline, as_json: bool) -> None:
    closing: dict[str, Any] = {}
    for event in client.stream(task, deadline):
        if event.text:
            if as_json:
                render.emit_json({"delta": event.text})
            else:
                sys.stdout.write(event.text)
                sys.stdout.flush()
        for name, value in (
            ("finishReason", event.finish_reason),
            ("usage", event.usage),
            ("cost", event.cost),
        ):
            if value is not None:
                closing[name] = value
    if as_json:
        render.emit_json(closing)
        return
    tokens = (closing.get("usage") or {}).get("totalTokens")
    cost = render.money(closing.get("cost") or 0)
    render.console().print(
        f"\n[dim]{escape(str(closing.get('finishReason')))} · {tokens} tokens · {cost}[/]",
        highlight=False,
    )
