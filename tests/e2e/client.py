"""Raw-socket HTTP/1.1 client helpers for e2e upload tests on 127.0.0.1.

Uploads go through ``socket`` directly so the test decides when every byte
leaves: ``slow_upload`` sends a body a chunk at a time with a pause between
chunks, optionally as ``Transfer-Encoding: chunked``, as multipart form
data, or breaking the connection half-way. ``UploadThread`` runs it in the
background while the test polls with ``get_json`` from the main thread.
Every socket operation has a timeout. ``poll`` asks the report view about
one upload, ``listing`` for the user's uploads, ``ended`` waits (bounded)
for an upload's end, and ``wait_for`` is the bounded wait on a condition.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlsplit

HOST = "127.0.0.1"
REPORT = "/upload-progress"
"""Where the add-on's report view is unless the settings move it."""
ALICE = {"X-User": "alice"}
"""The headers of a request by user alice (``tests.plain_app``'s security
policy reads the principal from ``X-User``)."""
#: Multipart boundary and file name used by ``multipart_body``.
BOUNDARY = "e2e-boundary-7d3f1a"
FILENAME = "upload.bin"
#: 251 is prime, so the pattern never lines up with power-of-two chunks.
_PATTERN = bytes(range(251))
_MAX_LINE = 65536


@dataclass(frozen=True)
class Response:
    """A complete HTTP response; header names are lower-cased."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def payload(size: int) -> bytes:
    """The deterministic `size` bytes every upload sends as its file content."""
    return (_PATTERN * (size // len(_PATTERN) + 1))[:size]


def multipart_body(field: str, size: int) -> tuple[bytes, str]:
    """A multipart/form-data body holding one file field; returns (body, content type).

    The file is ``payload(size)`` named ``FILENAME``, with ``BOUNDARY``.
    """
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{FILENAME}"\r\n'
        "Content-Type: application/octet-stream\r\n"
        "\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head + payload(size) + tail, f"multipart/form-data; boundary={BOUNDARY}"


def address(url_or_port: str | int) -> tuple[str, int]:
    """(host, port) of a port number or an 'http://127.0.0.1:PORT' URL."""
    if isinstance(url_or_port, int):
        return HOST, url_or_port
    parts = urlsplit(url_or_port)
    if parts.scheme != "http" or parts.hostname != HOST or parts.port is None:
        raise ValueError(f"expected http://{HOST}:PORT, got {url_or_port!r}")
    return HOST, parts.port


def slow_upload(
    url_or_port: str | int,
    path: str,
    *,
    size: int,
    chunk: int,
    delay: float,
    headers: Mapping[str, str] | None = None,
    chunked: bool = False,
    multipart: str | None = None,
    disconnect_after: int | None = None,
    reset: bool = False,
    on_sent: Callable[[int], None] | None = None,
    timeout: float = 60,
) -> Response | None:
    """POST a body `chunk` bytes at a time, `delay` seconds apart; return the response.

    The body is ``payload(size)``, or with ``multipart=FIELD`` a multipart
    form (``multipart_body``) whose file field FIELD holds it. It is framed by
    Content-Length, or as chunked transfer coding (one HTTP chunk per send)
    with ``chunked=True``. ``headers`` are added to the request.

    With ``disconnect_after=N`` only the first N body bytes are sent, then
    the socket is shut down and closed (a FIN; with ``reset=True`` an RST)
    and None is returned. ``on_sent`` is called with the number of body
    bytes sent so far after each send. ``timeout`` bounds each socket call.
    """
    if multipart is None:
        body, content_type = payload(size), None
    else:
        body, content_type = multipart_body(multipart, size)
    host, port = address(url_or_port)
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    limit = len(body) if disconnect_after is None else min(disconnect_after, len(body))

    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.sendall(head)
        for start in range(0, limit, chunk):
            if start:
                time.sleep(delay)
            piece = body[start : min(start + chunk, limit)]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if on_sent is not None:
                on_sent(start + len(piece))
        if disconnect_after is not None:
            _disconnect(sock, reset)
            return None
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        with sock.makefile("rb") as stream:
            return read_response(stream)
    finally:
        sock.close()


def _disconnect(sock: socket.socket, reset: bool) -> None:
    """Drop the connection: FIN by default, RST (SO_LINGER 0) with `reset`."""
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def read_response(stream: BinaryIO) -> Response:
    """Read one response (skipping 1xx ones) from a socket file.

    The body is framed by chunked coding, Content-Length, or the close.
    """
    while True:
        status_line = stream.readline(_MAX_LINE)
        if not status_line:
            raise ConnectionError("connection closed before a response")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := stream.readline(_MAX_LINE)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if status >= 200:
            break
    if status in (204, 304):
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = _read_chunked(stream)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        body = stream.read(length)
        if len(body) != length:
            raise ConnectionError(f"body ended after {len(body)} of {length} bytes")
    else:
        body = stream.read()
    return Response(status, headers, body)


def _read_chunked(stream: BinaryIO) -> bytes:
    """Decode a chunked response body, discarding trailers."""
    parts = []
    while size := int(stream.readline(_MAX_LINE).split(b";")[0], 16):
        parts.append(stream.read(size))
        if stream.read(2) != b"\r\n":
            raise ConnectionError("bad chunk terminator")
    while stream.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
        pass
    return b"".join(parts)


def get_json(
    url_or_port: str | int,
    path_with_query: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], Any]:
    """GET on a fresh connection; return (status, lower-cased headers, parsed JSON)."""
    host, port = address(url_or_port)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path_with_query, headers=dict(headers or {}))
        response = connection.getresponse()
        body = response.read()
        response_headers = {name.lower(): value for name, value in response.getheaders()}
    finally:
        connection.close()
    try:
        return response.status, response_headers, json.loads(body)
    except ValueError as exc:
        raise ValueError(
            f"GET {path_with_query}: {response.status}, not JSON: {body[:500]!r}"
        ) from exc


class UploadThread(threading.Thread):
    """Runs ``slow_upload`` in the background; ``sent`` counts body bytes sent.

    Takes ``slow_upload``'s arguments (except ``on_sent``). Start it, poll
    from the test, then ``join_result()``.
    """

    def __init__(self, url_or_port: str | int, path: str, **kwargs: Any) -> None:
        super().__init__(name=f"upload {path}", daemon=True)
        self.sent = 0
        self._call = (url_or_port, path, kwargs)
        self._result: Response | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        url_or_port, path, kwargs = self._call
        try:
            self._result = slow_upload(url_or_port, path, on_sent=self._record, **kwargs)
        except BaseException as exc:
            self._error = exc

    def _record(self, sent: int) -> None:
        self.sent = sent

    def join_result(self, timeout: float = 60) -> Response | None:
        """Wait for the upload; return its response or re-raise its exception."""
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"upload still running after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._result


def poll(url_or_port: str | int, upload_id: str, headers: Mapping[str, str] | None = ALICE,
         *, report: str = REPORT, expect: int = 200, timeout: float = 10) -> Any:
    """The report view's answer about ``upload_id`` (in the query), asked on
    a fresh connection; its status must be ``expect``, and like every answer
    at the report path it is never cached."""
    status, response_headers, answer = get_json(
        url_or_port, f"{report}?X-Progress-ID={upload_id}", headers, timeout)
    assert status == expect, (status, answer)
    assert response_headers["cache-control"] == "no-store", response_headers
    return answer


def worker_answer(url_or_port: str | int, upload_id: str,
                  headers: Mapping[str, str] | None = ALICE) -> tuple[int, str | None, Any]:
    """A poll about ``upload_id`` on a fresh connection, whatever it
    answers: (status, the pid of the worker that answered, as
    ``tests/e2e/worker_app.py`` says it, answer)."""
    status, response_headers, answer = get_json(
        url_or_port, f"{REPORT}?X-Progress-ID={upload_id}", headers)
    return status, response_headers.get("x-worker-pid"), answer


def listing(url_or_port: str | int, headers: Mapping[str, str] | None = ALICE,
            *, report: str = REPORT, upload_id: str | None = None) -> list[Any]:
    """The uploads the report view lists for the user of ``headers``; with
    ``upload_id``, only those with that id."""
    status, _, answer = get_json(url_or_port, report, headers)
    assert status == 200, (status, answer)
    return [upload for upload in answer["uploads"]
            if upload_id is None or upload["id"] == upload_id]


def wait_for(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    """The first true value of ``condition()``, asked every 20 ms for at
    most ``seconds``; fails naming ``what`` when none came."""
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.02)
    return found


def ended(url_or_port: str | int, upload_id: str, headers: Mapping[str, str] | None = ALICE,
          *, report: str = REPORT, seconds: float = 5) -> Any:
    """The answer about ``upload_id`` once its upload has ended: a server
    ends a record when it closes the response, which may be just after the
    client has it."""

    def finished() -> Any:
        answer = poll(url_or_port, upload_id, headers, report=report)
        return answer if answer["finished"] is not None else None

    return wait_for(finished, seconds, f"end of upload {upload_id}")
