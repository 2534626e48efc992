"""``demo.read_rate``: the demo reads request bodies at a set rate.

Over loopback a browser sends 64 MiB in a fraction of a second, and the bar
jumps from nothing to done. Reading the body slowly makes the server take
it slowly (the socket's buffers fill, and the browser waits), so that the
bar moves on localhost as it would over a real network. The throttle sits
in front of the Pyramid app, so the add-on counts the bytes as the app
gets them, exactly as with a slow client.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
         "kib": 1024, "mib": 1024**2, "gib": 1024**3}
RATE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|KiB|MiB|GiB)?")
PIECES_PER_SECOND = 20  # the pace is checked every 1/20 s of bytes


def parse_rate(text: str) -> int:
    """Bytes per second of ``text``: ``2MiB``, ``512 KiB``, ``3MB``, ``65536``;
    ``0``, ``off`` or nothing for no limit (0). Raises ``ValueError``."""
    text = text.strip()
    if text.lower() in ("", "off"):
        return 0
    match = RATE.fullmatch(text)
    if match is None:
        raise ValueError(text)
    number, unit = match.groups()
    return int(float(number) * UNITS[(unit or "").lower()])


class ThrottledInput:
    """A ``wsgi.input`` that gives its bytes no faster than ``rate`` bytes a
    second: each read is at most 1/20 s worth, and waits until the bytes
    read so far are due."""

    def __init__(self, raw, rate: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.raw, self.rate, self.clock, self.sleep = raw, rate, clock, sleep
        self.piece = max(1, rate // PIECES_PER_SECOND)
        self.started: float | None = None
        self.given = 0

    def _pace(self, size: int | None) -> int:
        """Wait until the bytes given so far are due; the size to read now."""
        now = self.clock()
        if self.started is None:
            self.started = now
        elif (early := self.given / self.rate - (now - self.started)) > 0:
            self.sleep(early)
        return self.piece if size is None or size < 0 else min(size, self.piece)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(self.piece), b""))
        data = self.raw.read(self._pace(size))
        self.given += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        line = b""
        while size is None or size < 0 or len(line) < size:
            left = None if size is None or size < 0 else size - len(line)
            part = self.raw.readline(self._pace(left))
            self.given += len(part)
            line += part
            if not part or part.endswith(b"\n"):
                break
        return line

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


class ReadRate:
    """WSGI middleware: every request's body read at ``rate`` bytes a second."""

    def __init__(self, app, rate: int) -> None:
        self.app, self.rate = app, rate

    def __call__(self, environ, start_response):
        environ["wsgi.input"] = ThrottledInput(environ["wsgi.input"], self.rate)
        return self.app(environ, start_response)
