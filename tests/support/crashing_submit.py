"""Run the real SubmitFunction handler once, as a fresh Lambda container would, and SIGKILL it on cue.

    python tests/support/crashing_submit.py <crash point> <event.json>

The environment must point at a running local stack (`LocalStack.environments["SubmitFunction"]`).
Crash points, injected by wrapping library functions here (the product has no crash code path):
- `none`          — run to the end and print the handler's response as JSON;
- `before-post`   — the PENDING rows are written, then the process dies as the Runware POST starts;
- `after-accept`  — Runware answered the POST (tasks accepted), then the process dies before the
                    record is answered.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parents[2]
# What Lambda puts on sys.path: the function's code, then its layer.
sys.path[:0] = [str(ROOT / "functions" / "submit"), str(ROOT / "layers" / "common"), str(ROOT)]

CRASH_POINTS = ("none", "before-post", "after-accept")


def _die(*_args: Any, **_kwargs: Any) -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise SystemExit(137)  # not reached


def _install_crash(point: str) -> None:
    from runrelay.runware_client import RunwareClient

    if point == "before-post":
        RunwareClient.submit = _die  # type: ignore[method-assign]
    elif point == "after-accept":
        post = RunwareClient.submit

        def post_then_die(self: RunwareClient, *args: Any, **kwargs: Any) -> NoReturn:
            post(self, *args, **kwargs)  # Runware has accepted (and started) the tasks
            _die()

        RunwareClient.submit = post_then_die  # type: ignore[method-assign]


def main(point: str, event_file: str) -> None:
    if point not in CRASH_POINTS:
        raise SystemExit(f"crash point must be one of {CRASH_POINTS}")
    from tests.support.lambda_context import FakeLambdaContext

    _install_crash(point)
    import app  # functions/submit/app.py, imported after the environment is in place

    event = json.loads(Path(event_file).read_text(encoding="utf-8"))
    response = app.lambda_handler(event, FakeLambdaContext("SubmitFunction", 120, 512))
    sys.stdout.write("\nRESPONSE " + json.dumps(response) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
