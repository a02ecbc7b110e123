"""A loopback TCP proxy that behaves like a wide-area link in front of the Runware emulator.

Every byte takes rtt/2 each way, and a new connection costs one round trip before its first byte can
reach the server (the TCP handshake). So a client that reuses connections pays one round trip per
request, and one that opens a connection per request (as `requests.post` does) pays two, as it would
against the real API. TLS handshakes (another round trip per new connection) are not modelled, which
favours the connection-per-request baseline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from types import TracebackType

_CHUNK = 65536


class WanLink:
    def __init__(self, target_port: int, rtt: float, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.rtt = rtt
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wan-link", daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> WanLink:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _shutdown(self) -> None:
        """Stop listening and end every open connection's pumps before the loop stops."""
        if self._server is not None:
            self._server.close()
        running = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def _listen(self) -> asyncio.Server:
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _connection(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        open_at = time.monotonic() + self.rtt  # SYN out, SYN-ACK back: only then can data leave
        try:
            server_in, server_out = await asyncio.open_connection(*self.target)
        except OSError:
            client_out.close()
            return
        half = self.rtt / 2
        await asyncio.gather(
            _pump(client_in, server_out, lambda now: max(now, open_at) + half),
            _pump(server_in, client_out, lambda now: now + half),
            return_exceptions=True,
        )
        for writer in (server_out, client_out):
            writer.close()


async def _pump(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, due: Callable[[float], float]
) -> None:
    """Forward bytes in order, each chunk delivered at `due(arrival time)` (a delay, not a bandwidth cap)."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while True:
            try:
                data = await source.read(_CHUNK)
            except (ConnectionError, OSError):
                data = b""
            await queue.put((due(time.monotonic()), data))
            if not data:
                return

    reader = asyncio.create_task(read())
    try:
        while True:
            at, data = await queue.get()
            wait = at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        reader.cancel()
        try:
            if sink.can_write_eof():
                sink.write_eof()
        except (ConnectionError, OSError, RuntimeError):
            pass
