"""bench.wan.WanLink: a faithful byte pipe that adds round trips, as a wide-area link would."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bench.wan import WanLink


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                while data := connection.recv(65536):
                    connection.sendall(data.upper())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    server.close()


def _exchange(connection: socket.socket, payload: bytes) -> bytes:
    connection.sendall(payload)
    received = b""
    while len(received) < len(payload):
        received += connection.recv(65536)
    return received


def test_bytes_cross_both_ways_unchanged_and_in_order(echo_port: int) -> None:
    payload = bytes(range(97, 123)) * 20_000  # 520 kB: many chunks each way
    with WanLink(echo_port, rtt=0.002) as link, socket.create_connection(("127.0.0.1", link.port)) as conn:
        assert _exchange(conn, payload) == payload.upper()
        assert _exchange(conn, b"again") == b"AGAIN"


def test_a_new_connection_costs_a_round_trip_more_than_a_reused_one(echo_port: int) -> None:
    # Lower bounds only: the link must add at least these delays, whatever the machine's speed.
    rtt = 0.05
    with WanLink(echo_port, rtt=rtt) as link, socket.create_connection(("127.0.0.1", link.port)) as conn:
        started = time.monotonic()
        assert _exchange(conn, b"first") == b"FIRST"
        first = time.monotonic() - started
        started = time.monotonic()
        assert _exchange(conn, b"second") == b"SECOND"
        second = time.monotonic() - started
    assert first >= 2 * rtt
    assert second >= rtt
