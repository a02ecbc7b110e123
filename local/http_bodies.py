"""Reading a request body off a stdlib `BaseHTTPRequestHandler`, bounded: one reader for the local servers.

It imports nothing else of the project, so the Runware emulator stays runnable on its own.
"""

from __future__ import annotations

from email.message import Message
from io import BufferedIOBase

_DRAIN_STEP = 1 << 20


class BodyTooLarge(Exception):
    """The request body is longer than the server accepts."""


def read_body(rfile: BufferedIOBase, headers: Message, limit: int, *, drain: bool = False) -> bytes:
    """The body of the request whose `headers` were just read from `rfile`: chunked or by Content-Length.

    BodyTooLarge when it is longer than `limit` bytes: at once, or with `drain` only after reading the
    rest of it (and dropping it), so that the client gets the answer rather than a reset connection.
    ValueError on a chunk size or Content-Length that is not a number.
    """
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return _read_chunked(rfile, limit, drain)
    length = int(headers.get("Content-Length") or 0)
    if length > limit:
        if drain:
            _discard(rfile, length)
        raise BodyTooLarge
    return rfile.read(length) if length > 0 else b""


def _read_chunked(rfile: BufferedIOBase, limit: int, drain: bool) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            break
        total += size
        if total > limit and not drain:
            raise BodyTooLarge
        chunk = rfile.read(size)
        rfile.readline()
        if total <= limit:
            parts.append(chunk)
    if total > limit:
        raise BodyTooLarge
    return b"".join(parts)


def _discard(rfile: BufferedIOBase, length: int) -> None:
    remaining = length
    while remaining > 0:
        chunk = rfile.read(min(remaining, _DRAIN_STEP))
        if not chunk:
            break
        remaining -= len(chunk)
