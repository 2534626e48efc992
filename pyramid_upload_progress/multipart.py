"""Per-file progress: the file parts of a ``multipart/form-data`` body,
found in its bytes as they pass through the counting stream."""
from __future__ import annotations

import email.message
import re
from typing import Any

MAX_FILES = 1000
"""File parts listed per upload; later ones count in ``received`` alone."""
MAX_HEADER_BLOCK = 16384
"""A part's header block longer than this ends the scan (malformed body)."""

_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,200})"|([^;\s]{1,200}))', re.IGNORECASE)
_BODY, _HEAD, _END = 0, 1, 2


def boundary(content_type: str) -> bytes | None:
    """The boundary of a ``multipart/form-data`` Content-Type, else None."""
    if not content_type[:19].lower() == "multipart/form-data":
        return None
    found = _BOUNDARY.search(content_type)
    if found is None:
        return None
    return (found.group(1) or found.group(2)).encode("latin-1", "replace")


class FilePart:
    """One file part's progress."""

    __slots__ = ("field", "filename", "received", "done")

    def __init__(self, field: str, filename: str) -> None:
        self.field = field
        self.filename = filename
        self.received = 0
        self.done = False

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "filename": self.filename,
                "received": self.received, "done": self.done}


class MultipartScanner:
    """Fed each byte of a multipart body once, in order (:meth:`feed`), it
    keeps :attr:`parts`, the file parts seen so far.

    It holds back, for itself, at most one delimiter's length (a delimiter
    may be split between two reads) or one part's header block, capped; the
    application's reads are never delayed. A body that breaks the format
    stops the scan: the parts found so far stay listed.
    """

    __slots__ = ("_delimiter", "_state", "_held", "_current", "parts")

    def __init__(self, boundary: bytes) -> None:
        self._delimiter = b"\r\n--" + boundary
        self._state = _BODY
        # The first delimiter of a body has no line break before it.
        self._held = b"\r\n"
        self._current: FilePart | None = None
        self.parts: list[FilePart] = []

    def files(self) -> list[dict[str, Any]]:
        """The file parts as the UPLOAD's ``files`` lists them."""
        return [part.as_dict() for part in self.parts]

    def feed(self, data: bytes) -> None:
        while data:
            if self._state == _BODY:
                data = self._body(data)
            elif self._state == _HEAD:
                data = self._head(data)
            else:
                return

    def _body(self, data: bytes) -> bytes:
        delimiter = self._delimiter
        held = self._held
        if held:
            self._held = b""
            if len(data) < len(delimiter):
                data = held + data
            elif 0 <= (held + data[:len(delimiter)]).find(delimiter) < len(held):
                data = held + data
            else:
                self._count(len(held))
        # A delimiter begins with a CR: memchr finds none in most text at
        # once, where the search for the whole delimiter is far slower.
        at = data.find(b"\r")
        if at >= 0:
            at = data.find(delimiter, at)
        if at >= 0:
            self._count(at)
            if self._current is not None:
                self._current.done = True
                self._current = None
            self._state = _HEAD
            return data[at + len(delimiter):]
        keep = self._partial_delimiter(data)
        self._count(len(data) - keep)
        if keep:
            self._held = data[-keep:]
        return b""

    def _partial_delimiter(self, data: bytes) -> int:
        """The length of the longest end of ``data`` that begins a delimiter."""
        delimiter = self._delimiter
        at = data.find(b"\r", max(len(data) - len(delimiter) + 1, 0))
        while at >= 0:
            if delimiter.startswith(data[at:]):
                return len(data) - at
            at = data.find(b"\r", at + 1)
        return 0

    def _count(self, n: int) -> None:
        if n and self._current is not None:
            self._current.received += n

    def _head(self, data: bytes) -> bytes:
        """After a delimiter: ``--`` ends the body, else a header block."""
        block = self._held + data
        if len(block) < 2:
            self._held = block
            return b""
        if block.startswith(b"--"):
            self._state = _END
            return b""
        end = block.find(b"\r\n\r\n", 0, MAX_HEADER_BLOCK + 4)
        if end < 0:
            if len(block) >= MAX_HEADER_BLOCK + 4:
                self._state = _END
                return b""
            self._held = block
            return b""
        self._held = b""
        self._start_part(block[:end])
        self._state = _BODY
        return block[end + 4:]

    def _start_part(self, block: bytes) -> None:
        disposition = None
        for line in block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-disposition":
                disposition = _text(value.strip())
        if disposition is None:
            return
        header = email.message.Message()
        header["Content-Disposition"] = disposition
        filename = header.get_filename()
        if not filename:
            return
        if len(self.parts) >= MAX_FILES:
            return
        field = header.get_param("name", header="content-disposition")
        self._current = FilePart(field if isinstance(field, str) else "", filename)
        self.parts.append(self._current)


def _text(raw: bytes) -> str:
    """Browsers send a file name in UTF-8 as it is; older clients Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
