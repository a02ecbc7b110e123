"""`runrelay`: submit prompts, watch them complete, read results, tail completions, ask Runware directly.

Every command works against the local stack (`make up` in another terminal) or, with `--stack NAME` /
`--config-env ENV`, against a deployed stack. Exit status: 0 success, 1 some task FAILED, 2 an error
(bad input, unknown id, no stack, no credentials), 3 `wait` timed out.
"""

from __future__ import annotations

import enum
import json
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError

from local.cli import render
from local.cli.errors import CliError, explain_aws_error
from local.cli.ids import Ref, TaskRef, caller_task_uuid, expected_tasks, resolve
from local.cli.progress import StatusReader, Tally, wait_settled
from local.cli.specs import check_file, message_bodies, prompt_spec
from local.cli.tail import CompletionStream
from local.cli.targets import Target, local_target, resolve_target
from runrelay.contract import TextInferenceTask
from runrelay.deadline import Deadline
from runrelay.inputs import Rejection, TaskSpec
from runrelay.runware_client import RunwareClient
from runrelay.runware_errors import RunwareApiError
from runrelay.task_store import TaskStore, TaskView

EXIT_FAILED_TASKS = 1
EXIT_ERROR = 2
EXIT_TIMEOUT = 3

app = typer.Typer(
    name="runrelay",
    help=__doc__,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", help="1-196608.")]
SystemPromptOpt = Annotated[str | None, typer.Option("--system-prompt", help="System prompt.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="0-4294967295.")]


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
    render.err_console().print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class _Session:
    """The resolved target and the clients the commands use."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.dynamodb = target.client("dynamodb")
        self.s3 = target.client("s3")
        self.store = TaskStore(
            target.table_name, payload_bucket=target.bucket_name, dynamodb=self.dynamodb, s3=self.s3
        )

    @classmethod
    def open(
        cls, stack: str | None, region: str | None, config_env: str | None, state_file: Path | None
    ) -> _Session:
        return cls(resolve_target(stack=stack, region=region, config_env=config_env, state_file=state_file))

    def resolve(self, ids: list[str], *, pending_ok: bool = False) -> list[Ref]:
        return [resolve(text, self.target, self.store, self.s3, pending_ok=pending_ok) for text in ids]

    def task(self, ref: TaskRef) -> TaskView:
        view = self.store.get_task(ref.task_uuid)
        if view is None:
            raise CliError(f"unknown task {ref.label}: no such task in {self.target.description}")
        return view


# -- submit ---------------------------------------------------------------------------------------


@app.command()
def submit(
    file: Annotated[
        Path | None, typer.Argument(help="A .jsonl / .json / text file of task specs.", show_default=False)
    ] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="One prompt, sent over SQS.")] = None,
    number_results: NumberResultsOpt = None,
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
    system_prompt: SystemPromptOpt = None,
    seed: SeedOpt = None,
    caller_id: Annotated[str | None, typer.Option("--id", help="Your idempotency key for --prompt.")] = None,
    via: Annotated[Via | None, typer.Option("--via", help="s3 (default for a FILE) or sqs.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Object name under the input prefix.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Send invalid specs too (they are REJECTED).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the id(s).")] = False,
    stack: StackOpt = None,
    region: RegionOpt = None,
    config_env: ConfigEnvOpt = None,
    state_file: StateFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a file (to the input bucket, or as SQS messages) or one --prompt; prints the id to wait on."""
    settings: dict[str, Any] = {
        "number_results": number_results,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "system_prompt": system_prompt,
        "seed": seed,
    }
    with _user_errors():
        if (file is None) == (prompt is None):
            raise CliError("give a FILE or --prompt TEXT (one of them)")
        if prompt is not None:
            if via is Via.s3:
                raise CliError("--prompt goes over SQS; to use S3, put it in a file")
            spec = _valid(prompt_spec(prompt, caller_id=caller_id, **settings))
            plan = _Plan(Via.sqs, 1, bodies=[json.dumps(_spec_body(spec), ensure_ascii=False)])
        else:
            assert file is not None
            if caller_id is not None:
                raise CliError('--id applies to --prompt; in a file, give each spec its own "id"')
            plan = _file_plan(file, via or Via.s3, settings, key, force)
        session = _Session.open(stack, region, config_env, state_file)
        ids = _send(session, plan, file)
    tasks, kind = plan.tasks, plan.via.value
    if caller_id is not None:
        ids = [caller_id]
    if as_json:
        answer: dict[str, Any] = {
            "ids": ids,
            "via": kind,
            "tasks": tasks,
            "target": session.target.description,
        }
        if caller_id is not None:
            answer["taskUUID"] = caller_task_uuid(caller_id)
        render.emit_json(answer)
    elif quiet:
        for one in ids:
            print(one)
    else:
        out = render.console()
        out.print(
            f"submitted {tasks} task(s) via {kind.upper()} to the {session.target.description}",
            highlight=False,
        )
        joined = " ".join(ids)
        for one in ids:
            out.print(one, highlight=False, soft_wrap=True)
        out.print(f"[dim]next: runrelay wait {joined} && runrelay results {joined} -o results.jsonl[/]")


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
            "settings options apply to --prompt or a text file sent --via sqs; "
            "in .jsonl/.json files put them in each spec"
        )
    if via is Via.s3:
        return _Plan(Via.s3, checked.task_count, s3_name=key or file.name)
    specs = checked.specs
    if checked.is_prompt_text:
        specs = [_spec_body(_valid(prompt_spec(specs[0]["prompt"], **settings)))]
    try:
        bodies = list(message_bodies(specs))
    except ValueError as error:
        raise CliError(str(error)) from None
    return _Plan(Via.sqs, checked.task_count, bodies=[body for body, _ in bodies])


def _send(session: _Session, plan: _Plan, file: Path | None) -> list[str]:
    """Upload or enqueue; the source ids the table will use."""
    target = session.target
    if plan.via is Via.s3:
        assert file is not None
        name = plan.s3_name
        object_key = name if name.startswith(target.input_prefix) else f"{target.input_prefix}{name}"
        with file.open("rb") as body:
            put = session.s3.put_object(Bucket=target.bucket_name, Key=object_key, Body=body)
        return [f"s3://{target.bucket_name}/{object_key}#{put['ETag'].strip(chr(34))}"]
    sqs = target.client("sqs")
    sent = [sqs.send_message(QueueUrl=target.ingest_queue_url, MessageBody=body) for body in plan.bodies]
    return [f"sqs:{answer['MessageId']}" for answer in sent]


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


@app.command()
def status(
    ids: IdsArg,
    stack: StackOpt = None,
    region: RegionOpt = None,
    config_env: ConfigEnvOpt = None,
    state_file: StateFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One task's state (taskUUID or caller id), or a source's task counts by status."""
    with _user_errors():
        session = _Session.open(stack, region, config_env, state_file)
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


@app.command()
def wait(
    ids: IdsArg,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait before giving up.")] = 900.0,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between polls.", min=0.1)] = 0.5,
    stack: StackOpt = None,
    region: RegionOpt = None,
    config_env: ConfigEnvOpt = None,
    state_file: StateFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait, with a progress bar, until every task is final.

    Exit 0 if none FAILED, 1 if some did, 3 on timeout.
    """
    with _user_errors():
        session = _Session.open(stack, region, config_env, state_file)
        refs = session.resolve(ids, pending_ok=True)
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


@app.command()
def results(
    ids: IdsArg,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write JSONL here.")] = None,
    stack: StackOpt = None,
    region: RegionOpt = None,
    config_env: ConfigEnvOpt = None,
    state_file: StateFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One JSON line per task, in input order: callerId, taskUUID, status, results, error."""
    with _user_errors():
        session = _Session.open(stack, region, config_env, state_file)
        views: list[TaskView] = []
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
    output.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    counts: dict[str, int] = {}
    for view in views:
        counts[view.status] = counts.get(view.status, 0) + 1
    if as_json:
        render.emit_json({"path": str(output), "tasks": len(views), "counts": counts})
    else:
        shown = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        render.console().print(f"wrote {len(views)} line(s) to {output} ({shown})", highlight=False)


# -- tail -----------------------------------------------------------------------------------------


@app.command()
def tail(
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many recent completions.", min=0)] = 10,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new ones (Ctrl-C stops).")
    ] = False,
    stack: StackOpt = None,
    region: RegionOpt = None,
    config_env: ConfigEnvOpt = None,
    state_file: StateFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Latest completions (tasks reaching COMPLETED/FAILED/REJECTED), from the table's stream."""
    out = render.console()

    def show(item: dict[str, Any]) -> None:
        if as_json:
            render.emit_json(render.completion_json(item))
        else:
            out.print(render.completion_line(item), highlight=False, soft_wrap=True)

    with _user_errors():
        target = resolve_target(stack=stack, region=region, config_env=config_env, state_file=state_file)
        stream = CompletionStream(
            target.client("dynamodb"), target.client("dynamodbstreams"), target.table_name
        )
        for completion in stream.latest(lines):
            show(completion.item)
        if follow:
            try:
                for completion in stream.follow():
                    show(completion.item)
            except KeyboardInterrupt:
                return


# -- ask ------------------------------------------------------------------------------------------


@app.command()
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
    out.print(f"[dim]{result.finishReason} · {usage} tokens · ${result.cost or 0:.6f}[/]", highlight=False)


def _runware_client(api_url: str | None, api_key: str | None, state_file: Path | None) -> RunwareClient:
    if api_url:
        if not api_key:
            raise CliError("RUNWARE_API_KEY is not set (needed with RUNWARE_API_URL / --api-url)")
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
    render.console().print(
        f"\n[dim]{closing.get('finishReason')} · {tokens} tokens · ${closing.get('cost') or 0:.6f}[/]",
        highlight=False,
    )
