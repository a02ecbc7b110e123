"""`make demo` as a person sees it: run in a real terminal (tmux) at 80x24 and 200x50, the screen read back.

The demo must show only its own output there (the functions' JSON logs, EMF lines and warnings go to
`.runrelay/demo-functions.log`), and its result table must keep every column readable at 80 columns.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXIT_MARK = "DEMO-EXIT="
DEMO_SECONDS = 400  # the demo itself gives up after 180 s; this covers the stack's start and stop


@pytest.fixture
def tmux() -> Iterator[list[str]]:
    """A tmux server of this test's own (its own socket), stopped afterwards."""
    binary = shutil.which("tmux")
    if binary is None:
        pytest.fail("tmux is not installed: `make test` installs it (apt-get install tmux)")
    command = [binary, "-L", f"runrelay-demo-{uuid.uuid4().hex[:8]}", "-f", "/dev/null"]
    yield command
    subprocess.run([*command, "kill-server"], capture_output=True, check=False)


def run_demo_in_terminal(tmux: list[str], columns: int, rows: int) -> str:
    """The whole screen, scrollback included, once the demo has exited."""
    demo = f"{shlex.quote(sys.executable)} -m local.tools.demo; echo {EXIT_MARK}$?; sleep 3600"
    subprocess.run(
        [
            *tmux,
            "new-session",
            "-d",
            "-s",
            "demo",
            "-x",
            str(columns),
            "-y",
            str(rows),
            "-c",
            str(ROOT),
            demo,
        ],
        check=True,
    )
    deadline = time.monotonic() + DEMO_SECONDS
    screen = ""
    while time.monotonic() < deadline:
        screen = subprocess.run(
            [*tmux, "capture-pane", "-p", "-J", "-S", "-", "-t", "demo"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if EXIT_MARK in screen:
            return screen
        time.sleep(1)
    raise AssertionError(f"the demo did not finish in {DEMO_SECONDS}s; screen:\n{screen}")


def table_rows(screen: str) -> list[list[str]]:
    """Cells of the result table's body rows (lines between │ borders)."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in screen.splitlines()
        if line.strip().startswith("│")
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("columns", "rows"), [(80, 24), (200, 50)])
def test_demo_in_a_terminal_shows_only_its_own_readable_output(
    tmux: list[str], columns: int, rows: int
) -> None:
    screen = run_demo_in_terminal(tmux, columns, rows)
    assert f"{EXIT_MARK}0" in screen, screen
    assert "Every valid task COMPLETED and every invalid one was REJECTED." in screen
    lines = screen.splitlines()
    # Nothing the functions print: no JSON log or EMF line, no Python warning.
    assert not [line for line in lines if line.lstrip().startswith("{") or '"_aws"' in line], screen
    assert "Warning" not in screen, screen
    body = table_rows(screen)
    assert len(body) == 10, screen  # the demo's ten tasks, one row each
    statuses = [next((cell for cell in row if cell in ("COMPLETED", "REJECTED")), None) for row in body]
    assert statuses.count("COMPLETED") == 8, screen
    assert statuses.count("REJECTED") == 2, screen
    for row, status in zip(body, statuses, strict=True):
        if status == "COMPLETED":  # results, tokens and cost are shown whole, not cut to nothing
            assert any(re.fullmatch(r"\d/\d", cell) for cell in row), row
            assert any(re.fullmatch(r"\$\d+\.\d{6}", cell) for cell in row), row
    assert "s3://runrelay-local-inputbucket/incoming/prompts.jsonl" in screen  # the bucket is named
    assert all(len(line) <= columns for line in lines)
