"""The counting request body stream that stands in for ``wsgi.input``."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Observer = Callable[[bytes], None]


class UploadCancelled(Exception):
    """Raised by a read of a tracked upload's body once the upload has been
    cancelled (``DELETE`` on the report view). The add-on answers it with
    409 JSON ``{"error": "upload cancelled"}`` unless the app has its own
    exception view for it."""


class CountingInput:
    """A WSGI input that counts the bytes the application reads through it.

    Made by :func:`counting_input`, which gives it exactly the methods of the
    server's input it wraps (no ``seek`` where the server's input has none:
    libraries such as boto3 decide by ``hasattr``), each answering as the
    server's input would. It never reads ahead and never buffers: each call
    is passed on as it comes, a size capped to what is left of the body
    (``size``, the Content-Length; ``None`` for a chunked body), which
    changes no answer of a server's input.

    ``received`` is the furthest position read to, so that an input that is
    rewound and read again (a seekable one, as ``Request.blank`` makes) is
    counted once; ``observe(new_bytes)``, if given, sees each byte once, as
    it is first read. ``ended`` becomes true once a read found the end of
    the body. ``disconnected`` becomes true when the body ended before
    ``size`` bytes (a read came back short, as WebOb's ``LimitedLengthFile``
    also judges) or the server's input raised: the client went away.
    ``cancelled``, once set, makes the next read raise
    :class:`UploadCancelled` (and ``cancel_raised`` true).
    """

    __slots__ = ("_raw", "_size", "_pos", "received", "ended", "disconnected",
                 "cancelled", "cancel_raised", "observe")

    def __init__(self, raw: Any, size: int | None,
                 observe: Observer | None = None) -> None:
        self._raw = raw
        self._size = size
        self._pos = 0
        self.received = 0
        self.ended = False
        self.disconnected = False
        self.cancelled = False
        self.cancel_raised = False
        self.observe = observe

    def _refuse(self) -> UploadCancelled:
        self.cancel_raised = True
        return UploadCancelled("upload cancelled")

    def _counted(self, data: bytes, asked: int | None) -> bytes:
        """Count what a read brought; ``asked``: the size it asked for."""
        n = len(data)
        if not n:
            if asked != 0:
                self.ended = True
                if self._size is not None and self._pos < self._size:
                    self.disconnected = True
            return data
        pos = self._pos = self._pos + n
        if pos > self.received:
            new = pos - self.received
            self.received = pos
            if self.observe is not None:
                self.observe(data if new == n else data[n - new:])
            if pos == self._size:
                self.ended = True
        return data

    def _left(self, size: int | None) -> int | None:
        """``size`` capped to what is left of the body; None: as asked."""
        if self._size is None:
            return size
        left = self._size - self._pos
        if left < 0:
            return 0
        return left if size is None or size < 0 or size > left else size

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left if -1 or None)."""
        if self.cancelled:
            raise self._refuse()
        asked = self._left(size)
        if asked == 0:
            if size != 0:
                self.ended = True
            return b""
        try:
            data = self._raw.read(asked)
        except Exception:
            self.disconnected = True
            raise
        if asked is not None and asked > len(data) and self._size is not None:
            self.disconnected = True
        return self._counted(data, asked)


class _Methods:
    """The optional methods of a WSGI input, as :class:`CountingInput`
    answers them; :func:`counting_input` takes those the server's has."""

    def readline(self: Any, *size: int | None) -> bytes:
        """Read one line, of at most ``size`` bytes if given (the server's
        ``readline`` is asked with a size only when the caller gave one)."""
        if self.cancelled:
            raise self._refuse()
        asked = self._left(size[0] if size else None)
        if asked == 0:
            if not size or size[0] != 0:
                self.ended = True
            return b""
        try:
            data = self._raw.readline(asked) if size else self._raw.readline()
        except Exception:
            self.disconnected = True
            raise
        if asked is not None and asked >= 0:
            data = data[:asked]
            if len(data) < asked and not data.endswith(b"\n") \
                    and self._size is not None:
                self.disconnected = True
        return self._counted(data, asked)

    def readlines(self: Any, *hint: int | None) -> list[bytes]:
        """The server's ``readlines``, hint included, counted."""
        if self.cancelled:
            raise self._refuse()
        if self._left(None) == 0:
            self.ended = True
            return []
        try:
            lines = self._raw.readlines(*hint)
        except Exception:
            self.disconnected = True
            raise
        if self._size is not None:
            lines = _cap(lines, self._size - self._pos)
        for line in lines:
            self._counted(line, None)
        if not lines:
            self._counted(b"", None)
        return lines

    def __iter__(self: Any) -> Iterator[bytes]:
        return self

    def __next__(self: Any) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def seek(self: Any, offset: int, whence: int = 0) -> int:
        """Move in a seekable input: bytes read again are not counted again."""
        position = self._raw.seek(offset, whence)
        self._pos = position if position is not None else self._raw.tell()
        self.ended = False
        return self._pos

    def tell(self: Any) -> int:
        return self._pos

    def close(self: Any) -> None:
        self._raw.close()


def _cap(lines: list[bytes], left: int) -> list[bytes]:
    """``lines`` cut at ``left`` bytes (an input that does not stop at the
    Content-Length by itself)."""
    total = sum(map(len, lines))
    if total <= left:
        return lines
    kept = []
    for line in lines:
        if left <= 0:
            break
        kept.append(line[:left])
        left -= len(line)
    return kept


_OPTIONAL = ("readline", "readlines", "__iter__", "seek", "tell", "close")
_classes: dict[type, type[CountingInput]] = {}


def _class_for(raw_type: type) -> type[CountingInput]:
    names = [name for name in _OPTIONAL if hasattr(raw_type, name)]
    if "__iter__" in names:
        names.append("__next__")
    namespace = {name: _Methods.__dict__[name] for name in names}
    namespace["__slots__"] = ()
    cls = type(f"CountingInput[{raw_type.__name__}]", (CountingInput,), namespace)
    _classes[raw_type] = cls
    return cls


def counting_input(raw: Any, size: int | None,
                   observe: Observer | None = None) -> CountingInput:
    """A :class:`CountingInput` around ``raw`` with exactly its methods."""
    cls = _classes.get(type(raw)) or _class_for(type(raw))
    return cls(raw, size, observe)
