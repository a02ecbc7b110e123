"""`make demo`: the main job end to end on the embedded local stack.

Starts DynamoDB Local, the S3/SQS/Secrets Manager server, the Runware emulator (unless RUNWARE_API_URL is
set) and the webhook route; uploads the sample prompt files to S3 and sends task messages to SQS; waits
with a progress bar; prints every task with its completion; stops everything. Exit status 0 only if
every valid task COMPLETED and every invalid one was REJECTED.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from local.stack.local_stack import LocalStack
from runrelay.adapters.dynamodb.schema import LAYOUT
from runrelay.adapters.dynamodb.tasks import INLINE_RESULT_LIMIT, DynamoTaskRepository
from runrelay.adapters.s3 import S3PayloadStore
from runrelay.domain.tasks import TaskRecord, TaskStatus

INPUTS = Path(__file__).resolve().parent / "demo_inputs"
FUNCTION_LOG = Path(__file__).resolve().parents[2] / ".runrelay" / "demo-functions.log"

# What the demo sends over SQS: a single spec, an array of two, and a malformed body.
SQS_MESSAGES: list[tuple[str, int, int]] = [
    (json.dumps({"id": "sqs-single", "prompt": "Summarise what AWS Lambda does in one sentence."}), 1, 0),
    (
        json.dumps(
            [
                {"id": "sqs-array-1", "prompt": "List three uses of Amazon SQS."},
                {
                    "id": "sqs-array-2",
                    "messages": [{"role": "user", "content": "Name a colour of the sea."}],
                    "numberResults": 2,
                    "seed": 7,
                },
            ]
        ),
        2,
        0,
    ),
    ("this message is not JSON", 0, 1),
]
# Expected (valid, invalid) tasks per uploaded file.
S3_FILES: dict[str, tuple[int, int]] = {"prompts.jsonl": (4, 1), "story.txt": (1, 0)}


@dataclass
class Source:
    label: str
    source_id: str
    valid: int
    invalid: int

    @property
    def expected(self) -> int:
        return self.valid + self.invalid


def send_inputs(stack: LocalStack) -> list[Source]:
    assert stack.clients is not None
    endpoints = stack.endpoints
    sources: list[Source] = []
    for name, (valid, invalid) in S3_FILES.items():
        key = f"{endpoints.input_prefix}{name}"
        put = stack.clients.s3.put_object(
            Bucket=endpoints.bucket_name, Key=key, Body=(INPUTS / name).read_bytes()
        )
        etag = put["ETag"].strip('"')
        uri = f"s3://{endpoints.bucket_name}/{key}"
        sources.append(Source(uri, f"{uri}#{etag}", valid, invalid))
    for index, (body, valid, invalid) in enumerate(SQS_MESSAGES, start=1):
        sent = stack.clients.sqs.send_message(QueueUrl=endpoints.ingest_queue_url, MessageBody=body)
        sources.append(Source(f"sqs message {index}", f"sqs:{sent['MessageId']}", valid, invalid))
    return sources


def settled(views: list[TaskRecord]) -> int:
    return sum(view.is_final for view in views)


def wait_for(
    store: DynamoTaskRepository, sources: list[Source], timeout: float, console: Console
) -> dict[str, list[TaskRecord]]:
    total = sum(source.expected for source in sources)
    found: dict[str, list[TaskRecord]] = {source.source_id: [] for source in sources}
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("[bold]tasks settled"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # No stdout/stderr redirection: rich's default would print the functions' log lines above the bar.
    with Progress(
        *columns, console=console, transient=False, redirect_stdout=False, redirect_stderr=False
    ) as progress:
        bar = progress.add_task("settled", total=total)
        while time.monotonic() < deadline:
            for source in sources:
                found[source.source_id] = store.tasks_of_source(source.source_id)
            done = sum(settled(views) for views in found.values())
            progress.update(bar, completed=done)
            if done >= total:
                break
            time.sleep(0.5)
    return found


def excerpt(text: str | None, width: int = 48) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# Below this many columns the table leaves out the taskUUID and numbers the sources in a legend, so
# that status, results, tokens and cost keep their width in an 80-column terminal.
WIDE_TABLE_COLUMNS = 140


@dataclass(frozen=True)
class Row:
    source: int  # index into the sources
    seq: str
    task_uuid: str
    status: str
    results: str
    tokens: str
    cost: str
    text: str


def rows_of(sources: list[Source], found: dict[str, list[TaskRecord]]) -> list[Row]:
    rows = []
    for index, source in enumerate(sources):
        for view in found[source.source_id]:
            tokens = sum(int((r.get("usage") or {}).get("totalTokens") or 0) for r in view.results)
            cost = sum(float(r.get("cost") or 0.0) for r in view.results)
            first = view.results[0] if view.results else {}
            rows.append(
                Row(
                    source=index,
                    seq=str(view.source_seq),
                    task_uuid=view.task_uuid,
                    status=view.status,
                    results=f"{len(view.results)}/{view.number_results}",
                    tokens=str(tokens) if tokens else "",
                    cost=f"${cost:.6f}" if cost else "",
                    text=" ".join(str(first.get("text") or (view.error or {}).get("message") or "").split()),
                )
            )
    return rows


def result_table(sources: list[Source], rows: list[Row], width: int) -> Table:
    wide = width >= WIDE_TABLE_COLUMNS
    table = Table(title="runrelay demo: every task and its completion", expand=True, pad_edge=False)
    table.add_column("source" if wide else "src", no_wrap=True, overflow="fold" if wide else "ellipsis")
    table.add_column("seq", justify="right", no_wrap=True, min_width=3)
    if wide:
        table.add_column("taskUUID", no_wrap=True, min_width=36)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("res", justify="right", no_wrap=True, min_width=3)
    table.add_column("tokens", justify="right", no_wrap=True, min_width=6)
    table.add_column("cost", justify="right", no_wrap=True, min_width=9)
    table.add_column("text / reason", no_wrap=True, overflow="ellipsis", ratio=1, min_width=12)
    for row in rows:
        style = {"COMPLETED": "green", "REJECTED": "yellow"}.get(row.status, "red")
        source = sources[row.source].label if wide else str(row.source + 1)
        cells = [source, row.seq, *([row.task_uuid] if wide else [])]
        cells += [f"[{style}]{row.status}[/{style}]", row.results, row.tokens, row.cost, row.text]
        table.add_row(*cells)
    return table


def report(
    console: Console, sources: list[Source], found: dict[str, list[TaskRecord]], table_name: str
) -> bool:
    ok = True
    for source in sources:
        views = found[source.source_id]
        completed = sum(v.status == TaskStatus.COMPLETED for v in views)
        rejected = sum(v.status == TaskStatus.REJECTED for v in views)
        if (completed, rejected, len(views)) != (source.valid, source.invalid, source.expected):
            ok = False
    if console.width < WIDE_TABLE_COLUMNS:
        console.print("Sources:")
        for index, source in enumerate(sources, start=1):
            console.print(f"  {index}  {source.label}", highlight=False, overflow="fold")
    console.print(result_table(sources, rows_of(sources, found), console.width))
    console.print(
        f"Completions are stored in DynamoDB table [bold]{table_name}[/bold], one item per task "
        f"({LAYOUT}; texts over {INLINE_RESULT_LIMIT // 1024} KB go to the input bucket "
        "under completions/ with a pointer in the item)."
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.tools.demo", description=__doc__)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for every task")
    args = parser.parse_args(argv)
    # Piped output (CI, logs) gets a width the table fits in; a terminal keeps its own.
    console = Console(file=sys.stdout, width=None if Console().is_terminal else 170)
    console.print(
        "[bold]Starting the local stack[/bold] (DynamoDB Local, S3/SQS, Runware emulator, webhook API)…"
    )
    FUNCTION_LOG.parent.mkdir(exist_ok=True)
    # The functions' log streams (JSON lines, EMF metrics, Powertools warnings, START/END/REPORT) go to a
    # file so the terminal shows the demo's own output only; so does anything this process prints
    # outside `console`, which keeps the terminal.
    with (
        FUNCTION_LOG.open("w", encoding="utf-8") as function_log,
        contextlib.redirect_stdout(function_log),
        contextlib.redirect_stderr(function_log),
        # Reconcile every few seconds and call tasks overdue after 20 s, so a lost webhook heals
        # within the demo.
        LocalStack(
            parameter_overrides={"OverdueAfterSeconds": "20"},
            schedule_period_seconds=5.0,
            retry_delay_seconds=2,
            state_file=None,
            function_log=function_log,
        ) as stack,
    ):
        endpoints = stack.endpoints
        console.print(f"  Runware API: {endpoints.runware_api_url}")
        console.print(f"  webhook URL: {endpoints.webhook_url}")
        console.print(f"  input:       s3://{endpoints.bucket_name}/{endpoints.input_prefix}")
        console.print(f"               {endpoints.ingest_queue_url}")
        assert stack.clients is not None
        store = DynamoTaskRepository(
            endpoints.table_name,
            payloads=S3PayloadStore(endpoints.bucket_name, s3=stack.clients.s3),
            dynamodb=stack.clients.dynamodb,
        )
        sources = send_inputs(stack)
        console.print(f"Sent {len(S3_FILES)} files to S3 and {len(SQS_MESSAGES)} messages to SQS.")
        found = wait_for(store, sources, args.timeout, console)
        ok = report(console, sources, found, endpoints.table_name)
    console.print(f"Function logs (JSON, with EMF metrics): {FUNCTION_LOG}")
    if ok:
        console.print(
            "[bold green]Every valid task COMPLETED and every invalid one was REJECTED.[/bold green]"
        )
        return 0
    console.print("[bold red]Some tasks did not reach the expected state (see the table above).[/bold red]")
    return 1


if __name__ == "__main__":
    sys.exit(main())
