"""Fixtures shared by every test package. Each section belongs to one area; append new sections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.runware_emulator import EmulatorServer
from tests.support.webhook_sink import WebhookSink

# ==== Runware emulator and webhook sink (owner: local/runware_emulator) =================================

# Emulator timings (result spacing 20 ms, webhook backoff 250 ms .. 8 s) multiplied by this in tests.
EMULATOR_TEST_TIME_SCALE = 0.02


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., EmulatorServer]]:
    """Start emulators with custom options (`EmulatorServer` keywords); all are stopped afterwards."""
    started: list[EmulatorServer] = []

    def start(**options: Any) -> EmulatorServer:
        options.setdefault("time_scale", EMULATOR_TEST_TIME_SCALE)
        server = EmulatorServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def emulator(emulator_factory: Callable[..., EmulatorServer]) -> EmulatorServer:
    """A fresh strict Runware emulator on an ephemeral 127.0.0.1 port, any API key, no faults."""
    return emulator_factory()


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    """A local server recording webhook POSTs; `webhook_sink.fail_first(n)` makes it answer 500 n times."""
    with WebhookSink() as sink:
        yield sink


# ==== end of the Runware emulator section ============================================================
