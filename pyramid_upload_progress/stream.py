"""The counting request body stream that stands in for ``wsgi.input``."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


class CountingInput:
    """A WSGI input that counts the bytes the application reads through it.

    It never reads ahead and never buffers: each call is passed on to the
    server's input as it comes, asking for no more than the caller asked for
    and never past ``size`` (the Content-Length, ``None`` for a chunked
    body). ``received`` is the furthest position read to, so that an input
    that is rewound and read again (a seekable one, as ``Request.blank``
    makes) is counted once. ``on_progress(received)`` is called each time
    ``received`` grows.

    ``disconnected`` becomes true when the body ended before ``size`` bytes
    (a read came back short, as WebOb's ``LimitedLengthFile`` also judges)
    or the server's input raised: the client went away mid-upload.
    """

    __slots__ = ("_raw", "_size", "_pos", "_on_progress", "received", "disconnected")

    def __init__(self, raw: Any, size: int | None,
                 on_progress: Callable[[int], None]) -> None:
        self._raw = raw
        self._size = size
        self._pos = 0
        self._on_progress = on_progress
        self.received = 0
        self.disconnected = False

    def _limit(self, size: int | None) -> int | None:
        """``size`` capped to what is left of the body; None: no limit."""
        if self._size is None:
            return size if size is not None and size >= 0 else None
        left = max(self._size - self._pos, 0)
        if size is None or size < 0 or size > left:
            return left
        return size

    def _advance(self, data: bytes) -> None:
        if not data:
            return
        self._pos += len(data)
        if self._pos > self.received:
            self.received = self._pos
            self._on_progress(self._pos)

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left if -1 or None)."""
        limit = self._limit(size)
        if limit == 0:
            return b""
        try:
            data = self._raw.read() if limit is None else self._raw.read(limit)
        except Exception:
            self.disconnected = True
            raise
        if limit is not None and self._size is not None and len(data) < limit:
            self.disconnected = True
        self._advance(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line, of at most ``size`` bytes if given."""
        limit = self._limit(size)
        if limit == 0:
            return b""
        try:
            data = self._raw.readline() if limit is None else self._raw.readline(limit)
        except Exception:
            self.disconnected = True
            raise
        if (limit is not None and self._size is not None and len(data) < limit
                and not data.endswith(b"\n")):
            self.disconnected = True
        self._advance(data)
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """Read lines until the end, or until ``hint`` bytes have been read."""
        lines = []
        total = 0
        while hint is None or hint <= 0 or total < hint:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move in a seekable input; raises as the server's input does if not."""
        self._raw.seek(offset, whence)
        self._pos = self._raw.tell()
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        close = getattr(self._raw, "close", None)
        if close is not None:
            close()
