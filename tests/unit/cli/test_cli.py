"""The runrelay CLI without a running stack: arguments, target resolution, validation, rendering."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import NoCredentialsError
from rich.console import Console
from typer.testing import CliRunner

from runrelay.adapters.dynamodb.schema import task_key
from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
from runrelay.contract import InferenceResult
from runrelay.domain.tasks import NewTask, TaskRecord, TaskStatus
from runrelay.inputs import ControlMessage, classify_sqs_body
from runrelay_cli import app, render
from runrelay_cli import ids as app_ids
from runrelay_cli.errors import CliError, explain_aws_error
from runrelay_cli.progress import Tally, wait_settled
from runrelay_cli.render import STATUS_STYLES
from runrelay_cli.specs import MAX_SPECS_PER_MESSAGE, check_file, message_bodies
from runrelay_cli.tail import completion_of
from runrelay_cli.targets import (
    NO_LOCAL_STACK,
    SOURCE_ROOT,
    STATE_FILE_NAME,
    resolve_target,
    stack_from_samconfig,
    state_file_path,
)
from tests.support.finals import record_final

from ..conftest import BUCKET

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env=env)


@pytest.fixture
def no_local_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "local-stack.json"
    monkeypatch.setenv("RUNRELAY_STATE_FILE", str(path))
    return path


def test_every_command_has_help() -> None:
    for command in ("submit", "status", "wait", "results", "tail", "ask"):
        answer = invoke(command, "--help")
        assert answer.exit_code == 0, answer.output
        assert "--json" in answer.output


def test_missing_local_stack_is_a_clear_error(no_local_stack: Path) -> None:
    answer = invoke("status", "anything")
    assert answer.exit_code == 2
    assert NO_LOCAL_STACK in answer.output


def test_stale_local_stack_is_refused(no_local_stack: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    no_local_stack.write_text(json.dumps({"pid": gone.pid, "stack_name": "x"}))
    answer = invoke("wait", "anything")
    assert answer.exit_code == 2
    assert "stale" in answer.output
    assert NO_LOCAL_STACK in answer.output


def test_the_state_file_is_found_from_a_subfolder_else_in_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNRELAY_STATE_FILE", raising=False)
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    assert state_file_path() == SOURCE_ROOT / STATE_FILE_NAME  # none above: where `make up` writes it
    written = tmp_path / STATE_FILE_NAME
    written.parent.mkdir()
    written.write_text("{}")
    assert state_file_path() == written
    assert state_file_path(tmp_path / "given.json") == tmp_path / "given.json"


def test_invalid_specs_are_reported_by_line_before_anything_is_sent(
    tmp_path: Path, no_local_stack: Path
) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text('{"prompt": "ok"}\n\n{"prompt": "x", "numberResults": 9}\nnot json\n')
    answer = invoke("submit", str(batch))
    assert answer.exit_code == 2
    assert "2 invalid spec(s)" in answer.output
    assert "line 3: numberResults" in answer.output
    assert "line 4: not valid JSON" in answer.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a FILE, --prompt TEXT or --messages FILE"),
        (("--prompt", "hi", "--messages", "x.json"), "(one of them)"),
        (("--prompt", "hi", "--via", "s3"), "--prompt and --messages go over SQS"),
        (("--prompt", "hi", "--temperature", "0.07"), "use 0.06 or 0.08"),
        (("--prompt", "hi", "--number-results", "5"), "numberResults"),
    ],
)
def test_submit_argument_errors(args: tuple[str, ...], message: str, no_local_stack: Path) -> None:
    answer = invoke("submit", *args)
    assert answer.exit_code == 2
    assert message in answer.output


def test_settings_options_do_not_apply_to_spec_files(tmp_path: Path, no_local_stack: Path) -> None:
    batch = tmp_path / "batch.json"
    batch.write_text('[{"prompt": "a"}, {"prompt": "b"}]')
    answer = invoke("submit", str(batch), "--max-tokens", "10", "--via", "sqs")
    assert answer.exit_code == 2
    assert "put them in each spec" in answer.output


def test_check_file_reads_the_three_formats(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('[{"prompt": "a"}, {"prompt": "b", "bogus": 1}]')
    (tmp_path / "b.txt").write_text("Summarise this.")
    (tmp_path / "c.jsonl").write_text("\n\n")
    checked = check_file(tmp_path / "a.json")
    assert checked.task_count == 2
    assert [str(p) for p in checked.problems] == ["item 1: bogus: Extra inputs are not permitted"]
    assert check_file(tmp_path / "b.txt").specs == [{"prompt": "Summarise this."}]
    assert [str(p) for p in check_file(tmp_path / "c.jsonl").problems] == ["file: holds no task lines"]


def test_message_bodies_split_large_files_into_arrays() -> None:
    specs = [{"prompt": f"p{i}"} for i in range(2 * MAX_SPECS_PER_MESSAGE + 5)]
    bodies = list(message_bodies(specs))
    assert [count for _, count in bodies] == [MAX_SPECS_PER_MESSAGE, MAX_SPECS_PER_MESSAGE, 5]
    assert [spec for body, _ in bodies for spec in json.loads(body)] == specs
    assert list(message_bodies(specs[:1])) == [('{"prompt": "p0"}', 1)]


def test_samconfig_environment_names_the_stack(tmp_path: Path) -> None:
    config = tmp_path / "samconfig.toml"
    config.write_text(
        'version = 0.1\n[prod.global.parameters]\nstack_name = "rr-prod"\n'
        '[prod.deploy.parameters]\nregion = "eu-west-1"\n'
    )
    assert stack_from_samconfig("prod", config) == ("rr-prod", "eu-west-1")
    with pytest.raises(CliError, match=r"no environment 'dev' .*known: prod"):
        stack_from_samconfig("dev", config)


def test_missing_credentials_are_explained() -> None:
    assert "no AWS credentials" in str(explain_aws_error(NoCredentialsError()))


# -- a "deployed" stack on moto: CloudFormation outputs name the table ------------------------------


@pytest.fixture
def deployed(aws: dict[str, Any], store: DynamoTaskRepository) -> DynamoTaskRepository:
    queue_url = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="ingest")["QueueUrl"]
    outputs = {
        "TasksTableName": aws["table"],
        "InputBucketName": BUCKET,
        "InputPrefix": "incoming/",
        "IngestQueueUrl": queue_url,
    }
    template = {
        "Resources": {"Nothing": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    cloudformation.create_stack(StackName="rr", TemplateBody=json.dumps(template))
    return store


def _completed_task(
    store: DynamoTaskRepository, caller_id: str, task_uuid: str, source: str, seq: int
) -> None:
    store.create_pending(NewTask(task_uuid, f"id:{caller_id}", source, seq, caller_id=caller_id))
    store.store_result(
        InferenceResult(taskUUID=task_uuid, text=f"answer {seq}", cost=0.001, usage={"totalTokens": 7})
    )


def test_status_and_results_of_a_deployed_stack(deployed: DynamoTaskRepository, tmp_path: Path) -> None:
    from runrelay_cli.ids import caller_task_uuid

    first, second = caller_task_uuid("c1"), caller_task_uuid("c2")
    _completed_task(deployed, "c2", second, "sqs:m1", 1)
    _completed_task(deployed, "c1", first, "sqs:m1", 0)

    answer = invoke("status", "c1", "--stack", "rr", "--region", "us-east-1", "--json")
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.output) | {"createdAt": 0, "completedAt": 0} == {
        "taskUUID": first,
        "status": "COMPLETED",
        "callerId": "c1",
        "sourceId": "sqs:m1",
        "seq": 0,
        "resultCount": 1,
        "numberResults": 1,
        "totalTokens": 7,
        "costUSD": 0.001,
        "error": None,
        "createdAt": 0,
        "completedAt": 0,
        "attempt": 0,
        "earlierAttempts": [],
    }

    answer = invoke("status", "sqs:m1", "--stack", "rr", "--json")
    assert json.loads(answer.output)["counts"] == {"COMPLETED": 2}

    out = tmp_path / "out.jsonl"
    answer = invoke("results", "sqs:m1", "--stack", "rr", "-o", str(out))
    assert answer.exit_code == 0, answer.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["callerId"], line["status"]) for line in lines] == [
        ("c1", "COMPLETED"),
        ("c2", "COMPLETED"),
    ]
    assert lines[0]["results"] == [{"text": "answer 0", "usage": {"totalTokens": 7}, "cost": 0.001}]
    assert lines[0]["error"] is None


@pytest.mark.parametrize("verb", ["status", "wait", "results"])
def test_unknown_ids_and_stacks_are_clear_errors(deployed: DynamoTaskRepository, verb: str) -> None:
    # `wait` does not wait on a name that matches nothing: it fails as `status` does (and before its
    # --timeout, which would otherwise be the only way out).
    typo = f"s3://{BUCKET}/incoming/typo.jsonl#0123456789abcdef0123456789abcdef"  # waited 900 s before
    for unknown in ("no-such-thing", "sqs:no-such-message", "s3://unit-payloads/incoming/none.jsonl", typo):
        answer = invoke(verb, unknown, "--stack", "rr", "--timeout", "5") if verb == "wait" else None
        answer = answer or invoke(verb, unknown, "--stack", "rr")
        assert answer.exit_code == 2, answer.output
        assert f"unknown id '{unknown}'" in answer.output
    answer = invoke(verb, "00000000-0000-4000-8000-000000000000", "--stack", "rr")
    assert answer.exit_code == 2
    assert "unknown task" in answer.output
    answer = invoke("status", "x", "--stack", "missing")
    assert answer.exit_code == 2
    assert "stack 'missing' not found" in answer.output


# -- pieces of wait and tail -------------------------------------------------------------------------


class _ScriptedReader:
    """Each refresh reveals the next scripted view of the statuses."""

    def __init__(self, views: list[dict[str, str]]) -> None:
        self.views = views

    def refresh(self, _refs: Any, tally: Tally) -> Tally:
        tally.statuses = dict(self.views.pop(0) if len(self.views) > 1 else self.views[0])
        return tally


def test_wait_without_a_known_total_needs_a_stable_count() -> None:
    reader = _ScriptedReader(
        [{"a": "REJECTED"}, {"a": "REJECTED", "b": "PENDING"}, {"a": "REJECTED", "b": "FAILED"}]
    )
    polls: list[int] = []
    tally = Tally(exact=False)
    done = wait_settled(
        reader,  # type: ignore[arg-type]
        [],
        tally,
        timeout=30,
        poll_seconds=0,
        on_poll=lambda t: polls.append(t.final),
    )
    assert done
    assert polls == [1, 1, 2]  # the lone early REJECTED row did not end the wait
    assert tally.failed == 1


def test_wait_times_out() -> None:
    tally = Tally(expected=2, exact=True)
    done = wait_settled(
        _ScriptedReader([{"a": "COMPLETED"}]),  # type: ignore[arg-type]
        [],
        tally,
        timeout=0,
        poll_seconds=0,
        on_poll=lambda _: None,
    )
    assert not done
    assert (tally.final, tally.total) == (1, 2)


def _record(name: str, new: dict[str, Any] | None, old: dict[str, Any] | None = None) -> dict[str, Any]:
    def image(values: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if values is None else {k: TypeSerializer().serialize(v) for k, v in values.items()}

    task_uuid = str((new or old or {})["taskUUID"])
    keys = task_key(task_uuid)
    change = {"Keys": keys, "NewImage": image(new), "OldImage": image(old), "SequenceNumber": "7"}
    return {"eventName": name, "dynamodb": {k: v for k, v in change.items() if v is not None}}


def test_completions_are_status_changes_into_a_final_status() -> None:
    done = _record(
        "MODIFY", {"taskUUID": "t", "status": "COMPLETED"}, {"taskUUID": "t", "status": "SUBMITTED"}
    )
    rejected = _record("INSERT", {"taskUUID": "r", "status": "REJECTED"})
    rejected["dynamodb"]["NewImage"]["results"] = {}  # DynamoDB Local's empty map
    again = _record(
        "MODIFY", {"taskUUID": "t", "status": "COMPLETED"}, {"taskUUID": "t", "status": "COMPLETED"}
    )
    submitted = _record(
        "MODIFY", {"taskUUID": "t", "status": "SUBMITTED"}, {"taskUUID": "t", "status": "PENDING"}
    )
    removed = _record("REMOVE", None, {"taskUUID": "t", "status": "COMPLETED"})
    found = [completion_of(r) for r in (done, rejected, again, submitted, removed)]
    assert [(c.task.task_uuid, c.task.status) if c else None for c in found] == [
        ("t", "COMPLETED"),
        ("r", "REJECTED"),
        None,
        None,
        None,
    ]


# -- caller ids, flags, submit's options and answers --------------------------------------------------


def test_a_caller_id_on_a_file_line_resolves_like_an_sqs_one(deployed: DynamoTaskRepository) -> None:
    source = "s3://unit-payloads/incoming/batch.jsonl#e"
    deployed.create_pending(
        NewTask("5b0c0000-0000-4000-8000-000000000007", f"{source}:7", source, 7, caller_id="q-7")
    )
    deployed.create_rejected(
        NewTask("5b0c0000-0000-4000-8000-000000000008", f"{source}:8", source, 8, caller_id="q-8"),
        {"code": "invalidTaskSpec", "message": "line 8: numberResults: too many"},
    )
    for caller_id, status in (("q-7", "PENDING"), ("q-8", "REJECTED")):
        answer = invoke("status", caller_id, "--stack", "rr", "--json")
        assert answer.exit_code == 0, answer.output
        shown = json.loads(answer.output)
        assert (shown["callerId"], shown["status"], shown["sourceId"]) == (caller_id, status, source)


def test_the_same_caller_id_in_two_sources_names_both_tasks(deployed: DynamoTaskRepository) -> None:
    from runrelay_cli.ids import caller_task_uuid

    _completed_task(deployed, "twice", caller_task_uuid("twice"), "sqs:m1", 1)
    source = "s3://unit-payloads/incoming/a.jsonl#e"
    deployed.create_pending(
        NewTask("5b0c0000-0000-4000-8000-000000000001", f"{source}:1", source, 1, caller_id="twice")
    )
    answer = invoke("results", "twice", "--stack", "rr")
    assert answer.exit_code == 0, answer.output
    assert sorted(json.loads(line)["sourceId"] for line in answer.output.splitlines()) == [
        "s3://unit-payloads/incoming/a.jsonl#e",
        "sqs:m1",
    ]


def test_version_and_flags_in_help() -> None:
    from importlib.metadata import version

    answer = invoke("--version")
    assert answer.exit_code == 0
    assert answer.output.strip() == f"runrelay {version('runrelay')}"
    for args in ((), ("submit",), ("wait",), ("tail",), ("ask",)):
        shown = invoke(*args, "--help", env={"COLUMNS": "120"}).output
        assert "<bool>" not in shown
        assert "--help" in shown


def _queued(deployed: DynamoTaskRepository) -> list[Any]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.get_queue_url(QueueName="ingest")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def no_pickup_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing takes messages off the moto queue: do not wait for a submit function."""
    import importlib

    # `runrelay_cli.app` as an attribute is the Typer app the package exports; the module is in sys.modules.
    monkeypatch.setattr(importlib.import_module("runrelay_cli.app"), "PICKUP_SECONDS", 0.0)


def test_submit_sends_every_option_a_spec_can_hold(
    deployed: DynamoTaskRepository, tmp_path: Path, no_pickup_wait: None
) -> None:
    conversation = tmp_path / "chat.json"
    conversation.write_text(
        json.dumps(
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Name a sea."},
            ]
        )
    )
    answer = invoke(
        "submit",
        "--messages",
        str(conversation),
        "--top-p",
        "0.9",
        "--system-prompt",
        "Be brief.",
        "--metadata",
        '{"team": "a"}',
        "--seed",
        "3",
        "--id",
        "opt-1",
        "--stack",
        "rr",
    )
    assert answer.exit_code == 0, answer.output
    [body] = _queued(deployed)
    assert body == {
        "id": "opt-1",
        "messages": json.loads(conversation.read_text()),
        "settings": {"topP": 0.9, "systemPrompt": "Be brief."},
        "numberResults": 1,
        "seed": 3,
        "metadata": {"team": "a"},
    }
    assert "has not taken" in answer.output  # nothing ran it here, and submit says so


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--metadata", "[1]"), "--metadata must be a JSON object"),
        (("--metadata", "{"), "--metadata is not valid JSON"),
        (("--top-p", "1.5"), "topP"),
    ],
)
def test_bad_options_are_clear_errors(
    deployed: DynamoTaskRepository, args: tuple[str, ...], message: str
) -> None:
    answer = invoke("submit", "--prompt", "hi", *args, "--stack", "rr")
    assert answer.exit_code == 2
    assert message in answer.output


def test_force_sends_an_invalid_prompt(deployed: DynamoTaskRepository, no_pickup_wait: None) -> None:
    refused = invoke("submit", "--prompt", "hi", "--number-results", "9", "--stack", "rr")
    assert refused.exit_code == 2
    assert "--force" in refused.output
    assert _queued(deployed) == []
    forced = invoke("submit", "--prompt", "hi", "--number-results", "9", "--force", "--stack", "rr")
    assert forced.exit_code == 0, forced.output
    assert _queued(deployed) == [{"prompt": "hi", "numberResults": 9}]


def test_the_next_hint_is_one_line_that_can_be_copied(deployed: DynamoTaskRepository, tmp_path: Path) -> None:
    batch = tmp_path / "a-rather-long-file-name-so-that-the-hint-is-wider-than-any-terminal.jsonl"
    batch.write_text('{"prompt": "a"}\n')
    answer = invoke("submit", str(batch), "--stack", "rr")
    assert answer.exit_code == 0, answer.output
    [hint] = [line for line in answer.output.splitlines() if line.startswith("next:")]
    [source] = [line for line in answer.output.splitlines() if line.startswith("s3://")]
    assert hint == f"next: runrelay wait {source} && runrelay results {source} -o results.jsonl"


def test_resubmitting_an_identical_file_says_nothing_new_runs(
    deployed: DynamoTaskRepository, tmp_path: Path
) -> None:
    batch = tmp_path / "same.jsonl"
    batch.write_text('{"prompt": "a"}\n')
    first = invoke("submit", str(batch), "--stack", "rr", "--json")
    [source] = json.loads(first.output)["ids"]
    deployed.create_pending(NewTask("5b0c0000-0000-4000-8000-00000000000a", f"{source}:1", source, 1))
    again = invoke("submit", str(batch), "--stack", "rr")
    assert again.exit_code == 0, again.output
    assert "nothing new runs" in again.output
    assert source in again.output
    batch.write_text('{"prompt": "b"}\n')
    changed = invoke("submit", str(batch), "--stack", "rr")
    assert "submitted 1 task(s) via S3" in changed.output


def test_resending_known_ids_over_sqs_says_nothing_new_runs(
    deployed: DynamoTaskRepository, tmp_path: Path, no_pickup_wait: None
) -> None:
    from runrelay_cli.ids import caller_task_uuid

    _completed_task(deployed, "done-1", caller_task_uuid("done-1"), "sqs:m1", 1)
    again = invoke("submit", "--prompt", "hi", "--id", "done-1", "--stack", "rr")
    assert again.exit_code == 0, again.output
    assert "nothing new runs" in again.output
    assert _queued(deployed) == []
    batch = tmp_path / "mixed.jsonl"
    batch.write_text('{"id": "done-1", "prompt": "hi"}\n{"id": "new-1", "prompt": "hi"}\n')
    mixed = invoke("submit", str(batch), "--via", "sqs", "--stack", "rr")
    assert "1 of them carry an id that already names a task" in mixed.output


def test_status_and_tail_print_cost_alike() -> None:
    result = {"text": "x", "cost": 0.0012, "usage": {"totalTokens": 5}}
    task = TaskRecord("t", TaskStatus.COMPLETED, "sqs:m1", 0, result_count=1, results=[result])
    console = Console(width=200, record=True)
    console.print(render.completion_line(task))
    console.print(render.task_table(task))
    shown = console.export_text()
    assert shown.count("$0.001200") == 2


def test_every_status_has_a_style_in_the_tables() -> None:
    assert set(STATUS_STYLES) == set(TaskStatus)


def test_cancel_sends_one_control_message_per_source(deployed: DynamoTaskRepository) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    etag = s3.put_object(Bucket=BUCKET, Key="incoming/batch.jsonl", Body=b'{"prompt": "a"}\n')["ETag"]
    answer = invoke("cancel", "batch.jsonl", "sqs:not-taken-yet", "--by", "alice", "--stack", "rr", "--json")
    assert answer.exit_code == 0, answer.output
    file_source = f"s3://{BUCKET}/incoming/batch.jsonl#{etag.strip(chr(34))}"
    assert json.loads(answer.output) == {
        "cancelRequested": [file_source, "sqs:not-taken-yet"],
        "requestedBy": "alice",
    }
    bodies = _queued(deployed)
    asked = sorted(b["runrelayControl"]["sourceId"] for b in bodies)
    assert asked == sorted([file_source, "sqs:not-taken-yet"])
    for body in bodies:  # what the submitter accepts, not only what this test expects
        assert classify_sqs_body("m", json.dumps(body)) == ControlMessage(
            action="cancel", sourceId=body["runrelayControl"]["sourceId"], requestedBy="alice"
        )


def test_cancel_refuses_a_task_and_an_unknown_name(deployed: DynamoTaskRepository) -> None:
    _completed_task(deployed, "c1", app_ids.caller_task_uuid("c1"), "sqs:m1", 0)
    answer = invoke("cancel", "c1", "--stack", "rr")
    assert answer.exit_code == 2
    assert "names a task, not a source" in answer.output
    answer = invoke("cancel", "no-such-file.jsonl", "--stack", "rr")
    assert answer.exit_code == 2
    assert "unknown id" in answer.output
    assert _queued(deployed) == []  # nothing sent


def test_retry_sends_a_control_message_for_a_finished_file_and_refuses_what_it_cannot_retry(
    deployed: DynamoTaskRepository,
) -> None:
    from runrelay.adapters.dynamodb.jobs import DynamoJobRepository

    s3 = boto3.client("s3", region_name="us-east-1")
    etag = s3.put_object(Bucket=BUCKET, Key="incoming/batch.jsonl", Body=b"{}\n{}\n{}\n")["ETag"].strip('"')
    source = f"s3://{BUCKET}/incoming/batch.jsonl#{etag}"
    lines = [
        NewTask(f"00000000-0000-4000-8000-00000000000{n}", f"{source}:{n}", source, n) for n in (1, 2, 3)
    ]
    deployed.create_many([(task, None) for task in lines])
    deployed.mark_failed(lines[0].task_uuid, {"code": "timeoutProvider", "message": "slow"})
    deployed.mark_failed(lines[1].task_uuid, {"code": "invalidPrompt", "message": "no"})
    deployed.store_result(InferenceResult(taskUUID=lines[2].task_uuid, text="fine"))
    jobs = DynamoJobRepository(deployed.table_name, dynamodb=deployed.dynamodb)
    jobs.record_total(source, 3, bucket=BUCKET, key="incoming/batch.jsonl", etag=etag)

    running = invoke("retry", "batch.jsonl", "--stack", "rr")
    assert running.exit_code == 2
    assert "still running" in running.output
    for task in lines:
        record_final(jobs, task.task_uuid, source, seq=task.source_seq)
    jobs.mark_results_written(source, f"s3://{BUCKET}/results/incoming/batch.jsonl", {"FAILED": 2})
    jobs.mark_announced(source)

    answer = invoke(
        "retry",
        "batch.jsonl",
        "--error-code",
        "timeoutProvider",
        "--max-attempts",
        "3",
        "--by",
        "alice",
        "--stack",
        "rr",
        "--json",
    )
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.output) == {
        "retryRequested": [{"sourceId": source, "lines": [1], "round": 1}],
        "requestedBy": "alice",
    }
    [body] = _queued(deployed)
    assert classify_sqs_body("m", json.dumps(body)) == ControlMessage(
        action="retry", sourceId=source, requestedBy="alice", errorCodes=["timeoutProvider"], maxAttempts=3
    )
    nothing = invoke("retry", lines[2].task_uuid, "--error-code", "providerDown", "--stack", "rr")
    assert nothing.exit_code == 0, nothing.output
    assert "nothing to retry" in nothing.output
    assert _queued(deployed) == []

    _completed_task(deployed, "c1", app_ids.caller_task_uuid("c1"), "sqs:m1", 0)
    failed = NewTask(app_ids.caller_task_uuid("c2"), "id:c2", "sqs:m1", 1, caller_id="c2")
    deployed.create_many([(failed, None)])
    deployed.mark_failed(failed.task_uuid, {"code": "timeoutProvider", "message": "slow"})
    message = invoke("retry", "c1", "--stack", "rr", "--json")  # a task of a message: the message
    assert message.exit_code == 0, message.output
    assert json.loads(message.output)["retryRequested"] == [
        {"sourceId": "sqs:m1", "lines": [1], "round": None}
    ]
    [body] = _queued(deployed)
    assert body["runrelayControl"]["sourceId"] == "sqs:m1"


# -- bad input and odd names: a clear error (exit 2), never a traceback ------------------------------


def test_names_that_look_like_markup_are_printed_as_they_are(
    deployed: DynamoTaskRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, rich read them as markup: a MarkupError traceback (exit 1), or a wrong file name shown.
    monkeypatch.chdir(tmp_path)
    answer = invoke("submit", "[/x].jsonl", "--stack", "rr")
    assert answer.exit_code == 2, answer.output
    assert "cannot read [/x].jsonl" in answer.output
    task_uuid = app_ids.caller_task_uuid("run[/2]")
    _completed_task(deployed, "run[/2]", task_uuid, "sqs:[/m]", 1)
    answer = invoke("status", task_uuid, "--stack", "rr")
    assert answer.exit_code == 0, answer.output
    assert "run[/2]" in answer.output
    answer = invoke("status", "sqs:[/m]", "--stack", "rr")
    assert answer.exit_code == 0, answer.output
    assert "sqs:[/m]" in answer.output


def test_results_to_a_path_that_cannot_be_written_is_a_clear_error(
    deployed: DynamoTaskRepository, tmp_path: Path
) -> None:
    _completed_task(deployed, "w1", app_ids.caller_task_uuid("w1"), "sqs:w", 1)
    for output in (tmp_path / "no" / "such" / "dir.jsonl", tmp_path):
        answer = invoke("results", "sqs:w", "--stack", "rr", "-o", str(output))
        assert answer.exit_code == 2, answer.output
        assert f"cannot write {output}" in answer.output


def test_a_key_the_submitter_would_read_otherwise_is_refused(tmp_path: Path, no_local_stack: Path) -> None:
    # The submitter reads an object by its key's suffix: `--key batch1` made this JSONL file one prompt.
    lines = tmp_path / "three.jsonl"
    lines.write_text("".join(json.dumps({"prompt": f"q{i}"}) + "\n" for i in range(3)))
    for key, read_as in (("batch1", "one plain-text prompt"), ("batch1.json", "one JSON document")):
        answer = invoke("submit", str(lines), "--key", key)
        assert answer.exit_code == 2, answer.output
        assert f"--key {key} would be read as {read_as}" in answer.output
    answer = invoke("submit", str(lines), "--key", "batch1.ndjson")
    assert "would be read as" not in answer.output  # the same format: on to the (missing) stack
    assert NO_LOCAL_STACK in answer.output


def test_a_control_request_the_submitter_would_refuse_is_not_sent(deployed: DynamoTaskRepository) -> None:
    # Before: "cancel requested", exit 0, and the submitter dropped the message as malformed.
    _completed_task(deployed, "k1", app_ids.caller_task_uuid("k1"), "sqs:k", 1)
    answer = invoke("cancel", "sqs:k", "--stack", "rr", "--by", "x" * 300)
    assert answer.exit_code == 2, answer.output
    assert "this cancel request would be refused" in answer.output
    queue_url = boto3.client("sqs", region_name="us-east-1").get_queue_url(QueueName="ingest")["QueueUrl"]
    got = boto3.client("sqs", region_name="us-east-1").receive_message(QueueUrl=queue_url)
    assert not got.get("Messages")


def test_a_state_file_that_is_not_an_object_and_a_bad_api_url_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "local-stack.json"
    state.write_text("[1]")
    monkeypatch.setenv("RUNRELAY_STATE_FILE", str(state))
    answer = invoke("status", "x")
    assert answer.exit_code == 2, answer.output
    assert "is not a local stack's description" in answer.output
    answer = invoke("ask", "hi", "--api-url", "not-a-url", env={"RUNWARE_API_KEY": "k"})
    assert answer.exit_code == 2, answer.output
    assert "must be http(s)://host" in answer.output


def test_an_s3_id_is_split_at_its_etag_and_a_key_may_hold_a_hash(deployed: DynamoTaskRepository) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key="incoming/run#2.jsonl", Body=b'{"prompt": "a"}\n')
    etag = s3.head_object(Bucket=BUCKET, Key="incoming/run#2.jsonl")["ETag"].strip('"')
    target = resolve_target(stack="rr", region="us-east-1")
    for text in (f"s3://{BUCKET}/incoming/run#2.jsonl", f"s3://{BUCKET}/incoming/run#2.jsonl#{etag}"):
        [ref] = app_ids.resolve(text, target, deployed, s3)
        assert isinstance(ref, app_ids.SourceRef)
        assert ref.source_id == f"s3://{BUCKET}/incoming/run#2.jsonl#{etag}"


def test_ctrl_c_while_waiting_for_pickup_still_prints_the_ids(
    deployed: DynamoTaskRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, the message was sent but Ctrl-C ended the run before its `sqs:<messageId>` was printed.
    def interrupted(self: DynamoTaskRepository, source_id: str) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(DynamoTaskRepository, "source_has_tasks", interrupted)
    answer = invoke("submit", "--prompt", "hi", "--stack", "rr")
    assert answer.exit_code == 0, answer.output
    assert "sqs:" in answer.output
    assert "has not taken" in answer.output


def test_options_that_would_be_ignored_are_refused(
    deployed: DynamoTaskRepository, no_local_stack: Path
) -> None:
    answer = invoke("submit", "--prompt", "hi", "--key", "a.jsonl", "--stack", "rr")
    assert answer.exit_code == 2, answer.output
    assert "--key names the S3 object of a FILE" in answer.output
    answer = invoke("status", "x", "--region", "eu-west-1")
    assert answer.exit_code == 2, answer.output
    assert "--region applies to a deployed stack" in answer.output
    answer = invoke("retry", "sqs:no-such-message", "--stack", "rr")  # was "nothing to retry", exit 0
    assert answer.exit_code == 2, answer.output
    assert "unknown id 'sqs:no-such-message'" in answer.output
