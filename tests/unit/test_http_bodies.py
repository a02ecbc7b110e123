"""The one bounded request-body reader the API Gateway shim and the Runware emulator share."""

from __future__ import annotations

import io
from email.message import Message

import pytest

from local.http_bodies import BodyTooLarge, read_body


def _headers(**fields: str) -> Message:
    message = Message()
    for name, value in fields.items():
        message[name.replace("_", "-")] = value
    return message


CHUNKED = _headers(Transfer_Encoding="chunked")


def test_reads_a_chunked_body_with_extensions_and_trailers_and_leaves_the_next_request() -> None:
    stream = io.BytesIO(b"5;name=x\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT")
    assert read_body(stream, CHUNKED, 100) == b"hello, world"
    assert stream.read() == b"NEXT"


def test_reads_a_body_by_content_length_and_none_without_one() -> None:
    stream = io.BytesIO(b'{"a": 1}NEXT')
    assert read_body(stream, _headers(Content_Length="8"), 100) == b'{"a": 1}'
    assert stream.read() == b"NEXT"
    assert read_body(io.BytesIO(b"ignored"), _headers(), 100) == b""


@pytest.mark.parametrize("drain", [False, True])
def test_a_malformed_chunk_size_is_a_value_error(drain: bool) -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        read_body(io.BytesIO(b"zz\r\nhello\r\n0\r\n\r\n"), CHUNKED, 100, drain=drain)


def test_a_chunked_body_over_the_limit_is_refused_before_the_chunk_is_read() -> None:
    stream = io.BytesIO(b"4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\nNEXT")
    with pytest.raises(BodyTooLarge):
        read_body(stream, CHUNKED, 6)
    assert stream.read() == b"efgh\r\n0\r\n\r\nNEXT"


def test_with_drain_a_chunked_body_over_the_limit_is_read_to_its_end_first() -> None:
    stream = io.BytesIO(b"4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\nNEXT")
    with pytest.raises(BodyTooLarge):
        read_body(stream, CHUNKED, 6, drain=True)
    assert stream.read() == b"NEXT"


def test_a_body_exactly_at_the_limit_is_accepted() -> None:
    assert read_body(io.BytesIO(b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"), CHUNKED, 6) == b"abcdef"
    assert read_body(io.BytesIO(b"abcdef"), _headers(Content_Length="6"), 6) == b"abcdef"


@pytest.mark.parametrize("drain", [False, True])
def test_a_content_length_over_the_limit_is_refused(drain: bool) -> None:
    stream = io.BytesIO(b"x" * 10 + b"NEXT")
    with pytest.raises(BodyTooLarge):
        read_body(stream, _headers(Content_Length="10"), 6, drain=drain)
    assert stream.read() == (b"NEXT" if drain else b"x" * 10 + b"NEXT")
