"""Servers' request body inputs, built in memory.

gunicorn hands the app a ``gunicorn.http.body.Body`` over a ``LengthReader``
(Content-Length) or a ``ChunkedReader`` (chunked), both reading an unreader
that takes what the socket gives; cheroot hands a ``KnownLengthRFile`` or a
``ChunkedRFile`` over a buffered socket file. Here the socket is a list of
pieces (the sizes ``recv`` happened to return), so a test decides how the
bytes arrived, and can build the same input twice to compare answers.

``ServerInput`` is a hand-built one: not seekable, and it records every
call, so that a test sees what the counting stream asks of the server.
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


NO_ARGUMENT = object()


class ServerInput:
    """A server's request body input: not seekable, records every call.

    It holds ``data`` (which may be longer than the Content-Length, or
    shorter when the client went away); each read hands out at most
    ``chunk`` bytes, as a socket may; from byte ``fail_at`` on, reads raise
    ``error``.
    """

    def __init__(self, data: bytes, *, chunk: int | None = None,
                 fail_at: int | None = None,
                 error: Exception | None = None) -> None:
        self._data = data
        self._pos = 0
        self._chunk = chunk
        self._fail_at = fail_at
        self._error = error or ConnectionResetError("client went away")
        self.calls: list[tuple[str, object]] = []
        self.closed = False

    def _take(self, want: int) -> bytes:
        if self._fail_at is not None and self._pos >= self._fail_at:
            raise self._error
        if self._chunk is not None:
            want = min(want, self._chunk)
        data = self._data[self._pos:self._pos + want]
        self._pos += len(data)
        return data

    def read(self, *args: int | None) -> bytes:
        self.calls.append(("read", args[0] if args else NO_ARGUMENT))
        size = args[0] if args else -1
        if size is None or size < 0:
            size = len(self._data)
        return self._take(size)

    def readline(self, *args: int | None) -> bytes:
        self.calls.append(("readline", args[0] if args else NO_ARGUMENT))
        size = args[0] if args else -1
        end = self._data.find(b"\n", self._pos)
        line_length = (len(self._data) if end < 0 else end + 1) - self._pos
        if size is not None and size >= 0:
            line_length = min(line_length, size)
        return self._take(line_length)

    def close(self) -> None:
        self.calls.append(("close", NO_ARGUMENT))
        self.closed = True


class LinesServerInput(ServerInput):
    """A server input that also has ``readlines`` and iteration, answering
    them its own way, as gunicorn's ``Body`` does: ``readlines`` reads the
    whole rest of the body, whatever the hint."""

    def readlines(self, *args: int | None) -> list[bytes]:
        self.calls.append(("readlines", args[0] if args else NO_ARGUMENT))
        rest = self._take(len(self._data) - self._pos)
        return rest.splitlines(keepends=True)

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def sizes_asked(self) -> list[object]:
        return [size for name, size in self.calls if name in ("read", "readline")]
