"""A strict local emulator of Runware's REST API for MiniMax M2.7 `textInference` tasks.

It validates every task against the shared OpenAPI file (`openapi_contract.py` beside it), never
imports `runrelay`, and injects faults on request. Run it with `python -m local.runware_emulator`.
"""

from local.runware_emulator.engine import EngineOptions, ErrorStyle, WebhookShape
from local.runware_emulator.faults import FaultConfig, task_fails
from local.runware_emulator.server import EmulatorServer
from local.runware_emulator.sse import SseShape
from local.runware_emulator.webhooks import RetryPolicy

__all__ = [
    "EmulatorServer",
    "EngineOptions",
    "ErrorStyle",
    "FaultConfig",
    "RetryPolicy",
    "SseShape",
    "WebhookShape",
    "task_fails",
]
