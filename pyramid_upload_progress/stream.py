"""The counting request body stream that stands in for ``wsgi.input``."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Observer = Callable[[bytes], None]

_AS_CALLED: Any = object()
"""The default size of ``read`` and ``readline``: the caller gave none, so
neither is the server's input given one."""


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
    (the Content-Length ``size``; ``None`` for a chunked body), which
    changes no answer of a server's input; what an input that does not stop
    at the Content-Length by itself hands out past it is cut off.

    ``received`` is the furthest position read to, so that an input that is
    rewound and read again (a seekable one, as ``Request.blank`` makes) is
    counted once; ``observe(new_bytes)``, if given, sees each byte once, as
    it is first read. ``ended`` is true once the body has been read whole,
    and ``on_end()``, if given, is called once at that moment: after the
    read that returned the last byte of a sized body (and after ``observe``
    saw it), or the one that returned ``b""`` (or all that was left) of a
    chunked body; never for a body that ended early.
    ``disconnected`` becomes true when the body ended before ``size`` bytes
    (a read came back short, as WebOb's ``LimitedLengthFile`` also judges)
    or the server's input raised: the client went away. ``cancelled``, once
    set, makes the next read raise :class:`UploadCancelled` (and
    ``cancel_raised`` true).

    Every read passes through here, so the methods are written for speed:
    a read costs a few attribute look-ups beyond the server's own.
    """

    __slots__ = ("_raw", "_size", "_left", "_behind", "_eof", "received",
                 "disconnected", "cancelled", "cancel_raised", "observe", "on_end")

    def __init__(self, raw: Any, size: int | None,
                 observe: Observer | None = None,
                 on_end: Callable[[], None] | None = None) -> None:
        self._raw = raw
        self._size = size
        self._left = size
        """Bytes of the body not yet read (None: chunked)."""
        self._behind = 0
        """Bytes to read again before new ones come (after a seek back)."""
        self._eof = False
        self.received = 0
        self.disconnected = False
        self.cancelled = False
        self.cancel_raised = False
        self.observe = observe
        self.on_end = on_end

    @property
    def ended(self) -> bool:
        """The body has been read whole (a seek back does not undo that)."""
        return self._eof or (self._size is not None and self.received >= self._size)

    def _end(self) -> None:
        """The body has just been read whole: tell ``on_end``, once."""
        self._eof = True
        on_end = self.on_end
        if on_end is not None:
            self.on_end = None
            on_end()

    def _refuse(self) -> UploadCancelled:
        self.cancel_raised = True
        return UploadCancelled("upload cancelled")

    def _count(self, data: bytes, n: int, asked: int | None) -> bytes:
        """Count a read of ``n`` bytes that asked for ``asked``."""
        left = self._left
        if left is not None:
            self._left = left - n
        if not n:
            if asked != 0:
                if left is None:
                    self._end()
                    if self.cancelled:
                        raise self._refuse()
                else:
                    self._eof = True
                    if left:
                        self.disconnected = True
            return data
        behind = self._behind
        if behind:
            if n <= behind:
                self._behind = behind - n
                return data
            self._behind = 0
            new = data[behind:]
        else:
            new = data
        self.received += len(new)
        if self.observe is not None:
            self.observe(new)
        if left is not None and n >= left:
            self._end()
        if self.cancelled:
            raise self._refuse()
        return data

    def _count_line(self, size: Any) -> bytes:
        """``readline`` of a chunked body, or of bytes read again."""
        left = self._left
        if left is not None:
            if not left:
                self._eof = True
                return b""
            if size is not _AS_CALLED and size is not None and 0 <= left < size:
                size = left
        try:
            data = self._raw.readline() if size is _AS_CALLED else self._raw.readline(size)
        except Exception:
            self.disconnected = True
            raise
        if left is not None and len(data) > left:
            data = data[:left]
        return self._count(data, len(data), size)

    def read(self, size: Any = _AS_CALLED) -> bytes:
        """Read up to ``size`` bytes; without one, what the server's
        ``read()`` gives (all that is left)."""
        return self._through(self._raw.read, size, whole=True)

    def _into(self, method: Callable[[Any], int | None], buffer: Any,
              whole: bool) -> int:
        """A ``readinto`` of the server's input, counted as a read."""
        view = memoryview(buffer).cast("B")

        def read_into(size: int) -> bytes:
            return view[:method(view[:size]) or 0].tobytes()

        return len(self._through(read_into, len(view), whole))

    def _through(self, method: Callable[..., bytes], size: Any, whole: bool) -> bytes:
        """A read by ``method``; ``whole``: it answers all that was asked
        unless the body ends (``read``), so a short answer is a client gone;
        else only an empty one is (``read1``)."""
        if self.cancelled:
            raise self._refuse()
        left = self._left
        if left is not None:
            if size is _AS_CALLED or size is None or size < 0 or size > left:
                size = left
            if size == 0:
                if left == 0:
                    self._eof = True
                return b""
        try:
            data = method() if size is _AS_CALLED else method(size)
        except Exception:
            self.disconnected = True
            raise
        n = len(data)
        if left is None:
            data = self._count(data, n, size)
            if whole and n and (size is _AS_CALLED or size is None or size < 0):
                self._end()  # a chunked body's read of all that was left
                if self.cancelled:
                    raise self._refuse()
            return data
        if n < size and whole:
            self.disconnected = True
        return self._count(data, n, size)


class _Methods:
    """The optional methods of a WSGI input, as :class:`CountingInput`
    answers them; :func:`counting_input` takes those the server's has."""

    def readline(self: Any, size: Any = _AS_CALLED) -> bytes:
        """Read one line, of at most ``size`` bytes if given (the server's
        ``readline`` is asked with a size only when the caller gave one)."""
        if self.cancelled:
            raise self._refuse()
        left = self._left
        if left is None or self._behind:
            return self._count_line(size)
        if not left:
            self._eof = True
            return b""
        try:
            if size is _AS_CALLED or size is None or size < 0:
                limit = left
                data = self._raw.readline() if size is _AS_CALLED else self._raw.readline(size)
            else:
                limit = size if size < left else left
                if not limit:
                    return b""
                data = self._raw.readline(limit)
        except Exception:
            self.disconnected = True
            raise
        # _count written out: a line is a short read, and calls add up.
        n = len(data)
        if n >= limit:
            if n > left:
                data = data[:left]
                n = left
        elif data[-1:] != b"\n":
            self.disconnected = True
            if not n:
                self._eof = True
                return data
        self._left = left - n
        self.received += n
        if self.observe is not None:
            self.observe(data)
        if n >= left:
            self._end()
        if self.cancelled:
            raise self._refuse()
        return data

    def readlines(self: Any, *hint: int | None) -> list[bytes]:
        """The server's ``readlines``, called as it was called, counted."""
        if self.cancelled:
            raise self._refuse()
        if self._left == 0:
            self._eof = True
            return []
        try:
            lines = self._raw.readlines(*hint)
        except Exception:
            self.disconnected = True
            raise
        if self._left is not None:
            lines = _cap(lines, self._left)
        for line in lines:
            self._count(line, len(line), None)
        if lines and self._left != 0 and not (hint and hint[0] is not None and hint[0] > 0):
            # Every line was asked for: a chunked body is in whole, a sized
            # one came short. (No line at all tells nothing: cheroot's
            # readlines() always answers [].)
            if self._left is None:
                self._end()
                if self.cancelled:
                    raise self._refuse()
            else:
                self._eof = self.disconnected = True
        return lines

    def read1(self: Any, size: int = -1) -> bytes:
        """The server's ``read1``, within the Content-Length, counted."""
        return self._through(self._raw.read1, size, whole=False)

    def readinto(self: Any, buffer: Any) -> int:
        """The server's ``readinto``, within the Content-Length, counted."""
        return self._into(self._raw.readinto, buffer, whole=True)

    def readinto1(self: Any, buffer: Any) -> int:
        """The server's ``readinto1``, within the Content-Length, counted."""
        return self._into(self._raw.readinto1, buffer, whole=False)

    def __iter__(self: Any) -> Iterator[bytes]:
        return self

    def __next__(self: Any) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    next = __next__

    def seek(self: Any, offset: int, whence: int = 0) -> int:
        """Move in a seekable input: bytes read again are not counted again."""
        position = self._raw.seek(offset, whence)
        if position is None:
            position = self._raw.tell()
        if self._size is not None:
            self._left = max(self._size - position, 0)
        self._behind = max(self.received - position, 0)
        self._eof = False
        return position

    def tell(self: Any) -> int:
        return self.received - self._behind

    def close(self: Any) -> None:
        self._raw.close()


def _cap(lines: list[bytes], left: int) -> list[bytes]:
    """``lines`` cut at ``left`` bytes (an input that does not stop at the
    Content-Length by itself)."""
    if sum(map(len, lines)) <= left:
        return lines
    kept = []
    for line in lines:
        if left <= 0:
            break
        kept.append(line[:left])
        left -= len(line)
    return kept


_OPTIONAL = ("readline", "readlines", "read1", "readinto", "readinto1", "__iter__",
             "next", "seek", "tell", "close")
_classes: dict[type, type[CountingInput]] = {}


def _forward(name: str) -> Callable[..., Any]:
    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._raw, name)(*args, **kwargs)

    forward.__name__ = name
    forward.__doc__ = f"The server's input's ``{name}``, as it is."
    return forward


def _class_for(raw_type: type) -> type[CountingInput]:
    """A class with the methods of ``raw_type``: the reading ones counted,
    any other public one (gunicorn's ``getsize``, cheroot's
    ``read_trailer_lines``, which reads after the body) passed on as it is;
    ``readall``, which would read the body uncounted, left out."""
    names = [name for name in _OPTIONAL if hasattr(raw_type, name)]
    if "__iter__" in names:
        names.append("__next__")
    namespace: dict[str, Any] = {name: _Methods.__dict__[name] for name in names}
    for name in dir(raw_type):
        if not name.startswith("_") and name not in namespace \
                and name not in ("read", "readall") and callable(getattr(raw_type, name)):
            namespace[name] = _forward(name)
    namespace["__slots__"] = ()
    cls = type(f"CountingInput[{raw_type.__name__}]", (CountingInput,), namespace)
    _classes[raw_type] = cls
    return cls


def counting_input(raw: Any, size: int | None, observe: Observer | None = None,
                   on_end: Callable[[], None] | None = None) -> CountingInput:
    """A :class:`CountingInput` around ``raw`` with exactly its methods."""
    cls = _classes.get(type(raw)) or _class_for(type(raw))
    return cls(raw, size, observe, on_end)
