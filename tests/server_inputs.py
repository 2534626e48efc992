"""Real servers' request body inputs, built in memory, for the attack tests.

gunicorn hands the app a ``gunicorn.http.body.Body`` over a ``LengthReader``
(Content-Length) or a ``ChunkedReader`` (chunked), both reading an unreader
that takes what the socket gives; cheroot hands a ``KnownLengthRFile`` or a
``ChunkedRFile`` over a buffered socket file. Here the socket is a list of
pieces (the sizes ``recv`` happened to return), so a test decides how the
bytes arrived, and can build the same input twice to compare answers.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from cheroot.server import ChunkedRFile, KnownLengthRFile
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.unreader import IterUnreader


def chunked_wire(body: bytes, sizes: Sequence[int]) -> bytes:
    """``body`` in chunked transfer coding, in chunks of ``sizes`` (cycled),
    ended by the last chunk and an empty trailer section."""
    out = []
    pos = 0
    turn = 0
    while pos < len(body):
        size = max(1, sizes[turn % len(sizes)]) if sizes else len(body)
        turn += 1
        piece = body[pos:pos + size]
        pos += len(piece)
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def split(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    """``data`` cut into pieces of ``sizes`` (cycled; at least one byte each)."""
    if not sizes:
        return [data] if data else []
    pieces = []
    pos = 0
    turn = 0
    while pos < len(data):
        size = max(1, sizes[turn % len(sizes)])
        turn += 1
        pieces.append(data[pos:pos + size])
        pos += size
    return pieces


class _Socket(io.RawIOBase):
    """A socket's file: each read gives at most the next piece."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = list(pieces)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pieces:
            return 0
        piece = self._pieces[0]
        n = min(len(buffer), len(piece))
        buffer[:n] = piece[:n]
        if n == len(piece):
            self._pieces.pop(0)
        else:
            self._pieces[0] = piece[n:]
        return n


def gunicorn_length(wire: bytes, length: int, pieces: Sequence[int]) -> Body:
    """gunicorn's input for a Content-Length body arriving as ``wire``."""
    return Body(LengthReader(IterUnreader(split(wire, pieces)), length))


def gunicorn_chunked(wire: bytes, pieces: Sequence[int]) -> Body:
    """gunicorn's input for a chunked body arriving as ``wire``."""
    request = SimpleNamespace(limit_request_field_size=8190, max_buffer_headers=0,
                              trailers=None, parse_headers=lambda *a, **k: [])
    return Body(ChunkedReader(request, IterUnreader(split(wire, pieces))))


def cheroot_length(wire: bytes, length: int, pieces: Sequence[int]) -> KnownLengthRFile:
    """cheroot's input for a Content-Length body arriving as ``wire``."""
    return KnownLengthRFile(io.BufferedReader(_Socket(split(wire, pieces))), length)


def cheroot_chunked(wire: bytes, pieces: Sequence[int]) -> ChunkedRFile:
    """cheroot's input for a chunked body arriving as ``wire``."""
    return ChunkedRFile(io.BufferedReader(_Socket(split(wire, pieces))), 0)


Maker = Callable[[], Any]
