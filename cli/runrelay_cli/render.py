"""How the CLI shows things: rich tables and progress for people, plain JSON for scripts."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from runrelay.domain.tasks import TaskRecord, TaskStatus
from runrelay_cli.progress import Tally

STATUS_STYLES = {
    TaskStatus.COMPLETED: "green",
    TaskStatus.REJECTED: "yellow",
    TaskStatus.FAILED: "red",
    TaskStatus.SUBMITTED: "cyan",
    TaskStatus.PENDING: "dim",
    TaskStatus.CANCELLED: "magenta",
}
RESULT_FIELDS = ("text", "finishReason", "usage", "cost", "seed", "reasoningContent", "payloadRef")


def console() -> Console:
    """A console on the current stdout (CliRunner swaps it), wide enough for ids when piped."""
    return Console(width=None if sys.stdout.isatty() else 160)


def err_console() -> Console:
    return Console(stderr=True)


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))  # type: ignore[call-overload]


def excerpt(text: str | None, width: int = 60) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def when(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return ""
    return dt.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def money(cost: float) -> str:
    """Every cost the CLI prints, in one format (Runware bills fractions of a cent)."""
    return f"${cost:.6f}"


def tokens_and_cost(results: list[dict[str, Any]]) -> tuple[int, float]:
    tokens = sum(int((r.get("usage") or {}).get("totalTokens") or 0) for r in results)
    return tokens, sum(float(r.get("cost") or 0.0) for r in results)


def result_line(view: TaskRecord) -> dict[str, Any]:
    """One task as a results-file line (OpenAI Batch style): ids, status, results, error."""
    return {
        "sourceId": view.source_id,
        "seq": view.source_seq,
        "callerId": view.caller_id,
        "taskUUID": view.task_uuid,
        "status": view.status.value,
        "results": [{k: r[k] for k in RESULT_FIELDS if k in r} for r in view.results],
        "error": view.error,
    }


def task_summary(view: TaskRecord) -> dict[str, Any]:
    tokens, cost = tokens_and_cost(view.results)
    return {
        "taskUUID": view.task_uuid,
        "status": view.status.value,
        "callerId": view.caller_id,
        "sourceId": view.source_id,
        "seq": view.source_seq,
        "resultCount": len(view.results),
        "numberResults": view.number_results,
        "totalTokens": tokens,
        "costUSD": round(cost, 8),
        "error": view.error,
        "createdAt": view.created_at,
        "completedAt": view.completed_at,
        "attempt": view.attempt,
        "earlierAttempts": view.attempts,
    }


def task_table(view: TaskRecord) -> Table:
    summary = task_summary(view)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in summary.items():
        if name == "numberResults":
            continue  # shown with resultCount, as "results 1/2"
        if name == "resultCount":
            table.add_row("results", f"{value}/{summary['numberResults']}")
        elif name == "costUSD":
            table.add_row("cost", money(float(value)))
        elif name == "status":
            table.add_row(name, status_text(str(value)))
        elif name in ("createdAt", "completedAt"):
            table.add_row(name, when(value))
        elif name == "error" and value:
            table.add_row(name, Text(f"{value.get('code', '')}: {value.get('message', '')}", style="red"))
        elif name == "attempt":
            if value:
                table.add_row(name, f"{value + 1} of {value + 1} (retried)")
        elif name == "earlierAttempts":
            for earlier in value:
                error = earlier.get("error") or {}
                table.add_row(
                    f"attempt {earlier['attempt'] + 1}",
                    Text(
                        f"{earlier['status']} {error.get('code', '')}: {error.get('message', '')}",
                        style="red",
                    ),
                )
        elif value not in (None, ""):
            table.add_row(name, Text(str(value)))  # data, never markup
    for index, result in enumerate(view.results, start=1):
        table.add_row(f"result {index}", Text(excerpt(result.get("text"), 100)))
    return table


def tally_summary(label: str, tally: Tally) -> dict[str, Any]:
    return {
        "id": label,
        "tasks": tally.total,
        "final": tally.final,
        "counts": tally.counts,
        "settled": tally.settled(),
    }


def tally_table(rows: list[tuple[str, Tally]]) -> Table:
    statuses = [s.value for s in TaskStatus]
    table = Table(title="tasks by status")
    table.add_column("source", overflow="fold")
    table.add_column("tasks", justify="right")
    for status in statuses:
        table.add_column(status, justify="right", style=STATUS_STYLES[TaskStatus(status)])
    for label, tally in rows:
        counts = tally.counts
        table.add_row(Text(label), str(tally.total), *(str(counts.get(s, 0) or "") for s in statuses))
    return table


def wait_progress(out: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=out,
    )


def tally_detail(tally: Tally) -> str:
    counts = tally.counts
    parts = [f"{counts[s]} {s.lower()}" for s in ("FAILED", "REJECTED", "CANCELLED") if counts.get(s)]
    return ", ".join(parts)


def completion_line(task: TaskRecord) -> Text:
    """One completion on one line (`tail`): when, status, ids, tokens, cost, the start of the text."""
    tokens, cost = tokens_and_cost(task.results)
    first = task.results[0] if task.results else {}
    text = first.get("text") or (task.error or {}).get("message")
    line = Text(when(task.completed_at or task.updated_at) + "  ")
    line.append_text(status_text(task.status.value).append(" " * (10 - len(task.status.value))))
    line.append(f"{task.task_uuid}  ")
    if task.caller_id:
        line.append(f"{task.caller_id}  ", style="bold")
    if tokens:
        line.append(f"{tokens} tok  {money(cost)}  ", style="dim")
    line.append(excerpt(text, 60))
    return line


def completion_json(task: TaskRecord) -> dict[str, Any]:
    tokens, cost = tokens_and_cost(task.results)
    return {
        "taskUUID": task.task_uuid,
        "status": task.status.value,
        "callerId": task.caller_id,
        "sourceId": task.source_id,
        "completedAt": task.completed_at,
        "totalTokens": tokens,
        "costUSD": round(cost, 8),
        "text": (task.results[0].get("text") if task.results else None),
        "error": task.error,
    }
