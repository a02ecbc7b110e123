"""`python -m local.runware_emulator`: the emulator in the foreground until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from local.runware_emulator.engine import ERROR_STYLES, WEBHOOK_SHAPES
from local.runware_emulator.faults import FaultConfig
from local.runware_emulator.server import EmulatorServer
from local.runware_emulator.sse import SSE_SHAPES
from local.runware_emulator.webhooks import RetryPolicy

DEFAULT_PORT = 8787


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.runware_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("EMULATOR_PORT") or DEFAULT_PORT))
    parser.add_argument(
        "--api-key",
        default=os.environ.get("EMULATOR_API_KEY") or None,
        help="accept only this key (default: $EMULATOR_API_KEY, else any non-empty key)",
    )
    parser.add_argument("--webhook-shape", choices=WEBHOOK_SHAPES, default="wrapped")
    parser.add_argument("--error-style", choices=ERROR_STYLES, default="errors")
    parser.add_argument("--sse-shape", choices=SSE_SHAPES, default="bare")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--webhook-max-attempts", type=int, default=RetryPolicy.max_attempts)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    faults = parser.add_argument_group("fault injection (probabilities 0..1, seconds)")
    defaults = FaultConfig()
    for name in ("rate_429", "rate_500", "rate_503", "drop_response_rate", "task_error_rate"):
        faults.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    for name in ("webhook_duplicate_rate", "webhook_late_rate", "webhook_reorder_rate", "webhook_drop_rate"):
        faults.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    faults.add_argument("--latency", type=float, default=defaults.latency)
    faults.add_argument("--late-delay", type=float, default=defaults.late_delay)
    faults.add_argument("--retry-after", type=int, default=defaults.retry_after)
    faults.add_argument(
        "--rate-limit", type=float, default=defaults.rate_limit, help="POSTs per second; past it, 429"
    )
    faults.add_argument("--fail-task-uuid", action="append", default=[], dest="fail_task_uuids")
    faults.add_argument(
        "--identical-results", action="store_true", help="one answer per prompt, every time, without a seed"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    fault_names = [name for name in FaultConfig.__dataclass_fields__ if name != "fail_task_uuids"]
    faults = FaultConfig(
        **{name: getattr(args, name) for name in fault_names},
        fail_task_uuids=frozenset(args.fail_task_uuids),
    )
    server = EmulatorServer(
        api_key=args.api_key,
        webhook_shape=args.webhook_shape,
        faults=faults,
        time_scale=args.time_scale,
        seed=args.seed,
        host=args.host,
        port=args.port,
        error_style=args.error_style,
        sse_shape=args.sse_shape,
        retry=RetryPolicy(max_attempts=args.webhook_max_attempts),
        verbose=args.verbose,
    )
    stopped = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _on_signal)
    # Explicitly, not via KeyboardInterrupt: a process started from a non-interactive shell in the
    # background inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, _on_signal)
    with server:
        keys = "only the configured API key" if args.api_key else "any non-empty API key"
        print(f"Runware emulator listening on {server.url} ({keys}); Ctrl-C to stop", flush=True)
        stopped.wait()
    print("Runware emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
