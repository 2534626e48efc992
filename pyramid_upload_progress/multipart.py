"""Per-file progress: the file parts of a ``multipart/form-data`` body,
found in its bytes as they pass through the counting stream."""
from __future__ import annotations

import re

from .record import FileProgress

MAX_FILES = 1000
"""File parts listed per upload; later ones count in ``received`` alone."""
MAX_HEADER_BLOCK = 16384
"""A part's header block longer than this ends the scan (malformed body)."""

_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,200})"|([^;\s]{1,200}))', re.IGNORECASE)
# The first Content-Disposition field of a header block, with its folded
# lines, line ends as the e-mail parser behind WebOb has them (CR, LF, CRLF).
_DISPOSITION = re.compile(rb"(?:\A|[\r\n])content-disposition:"
                          rb"([^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*)", re.IGNORECASE)
# Where a part's header fields end for WebOb (Python's cgi module): at a
# line of whitespace alone (lines end at LF there), or at a line that the
# e-mail parser behind it takes for no header field (nor a folded line, nor
# "From "): what follows is the part's content, never a field.
_FIELDS_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:[ \t\x0b\x0c\r]*(?:\n|\Z)"
                         rb"|(?![\x21-\x39\x3b-\x7e]*:|[ \t]|From ))")
# One ";"-separated segment, as Python's cgi.parse_header (WebOb's parser)
# splits them: a ";" inside a quoted string does not split, a quote right
# after a backslash neither opens nor closes one, an unclosed quote runs to
# the end. A segment ends only at a ";" or at the end, and what follows it
# always matches, so the engine never backtracks into one: time is linear
# in the value. ``\s`` is the whitespace ``str.strip()`` removes, as there.
_SEGMENT = r'(?:[^";\\]+|\\"?|"(?:[^"\\]+|\\"?)*(?:"|\Z))*'
_KEY = "[Nn][Aa][Mm][Ee]|[Ff][Ii][Ll][Ee][Nn][Aa][Mm][Ee]"
# From a segment's end (the first segment, the disposition type, is no
# parameter): the other parameters, skipped in one match, then one ``name``
# or ``filename`` and its value (or nothing, at the end).
_PARAMS = re.compile(rf"(?:\A{_SEGMENT})?(?:;(?!\s*(?:{_KEY})\s*=){_SEGMENT})*"
                     rf"(?:;\s*({_KEY})\s*=({_SEGMENT}))?")
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

    def as_dict(self) -> FileProgress:
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

    def files(self) -> list[FileProgress]:
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
        if len(self.parts) >= MAX_FILES:
            return
        field, filename = part_names(block)
        if filename:
            self._current = FilePart(field or "", filename)
            self.parts.append(self._current)


def part_names(block: bytes) -> tuple[str | None, str | None]:
    """The ``name`` and ``filename`` of a part's header block, as WebOb's
    ``request.POST`` gives them to the application; None where absent.

    Only the first ``Content-Disposition`` field counts, folded lines
    included, among the fields before a line that is none; it is read as
    UTF-8, an invalid byte becoming U+FFFD. Never raises; time linear in
    the block.
    """
    end = _FIELDS_END.search(block)
    if end is not None:
        block = block[:end.start()]
    found = _DISPOSITION.search(block)
    if found is None:
        return None, None
    return disposition_names(found.group(1).decode("utf-8", "replace"))


def disposition_names(value: str) -> tuple[str | None, str | None]:
    """The ``name`` and ``filename`` parameters of a Content-Disposition
    value, read exactly as Python's ``cgi.parse_header`` reads them (the
    last of a name wins; ``filename*`` is another parameter, RFC 7578 4.2)
    but in linear time."""
    found: dict[str, str] = {}
    for key, raw in _PARAMS.findall(value):
        if key:
            found[key.lower()] = raw
    return _unquoted(found.get("name")), _unquoted(found.get("filename"))


def _unquoted(raw: str | None) -> str | None:
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace("\\\\", "\\").replace('\\"', '"')
    return value
