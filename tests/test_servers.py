"""Smoke tests of the e2e harness that pin the WSGI server facts we rely on.

Through ``tests/e2e/echo_app.py`` they check, over real loopback sockets,
which servers hand a request body to the app while it is still arriving,
that chunked and multipart bodies arrive whole, and what ``wsgi.input``
does when the client goes away mid-body.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import webob

from tests.e2e.client import (
    Response,
    UploadThread,
    get_json,
    multipart_body,
    payload,
    slow_upload,
)
from tests.e2e.servers import Server, serve

pytestmark = pytest.mark.e2e

ECHO_APP = "tests.e2e.echo_app:app"
SIZE = 1024 * 1024
CHUNK = 64 * 1024
DELAY = 0.05  # 16 chunks: the body takes about 0.75 s to arrive

#: Whether each server sets wsgi.input_terminated for a Content-Length body
#: (all three set it for a chunked one).
TERMINATED_WITH_LENGTH = {"gunicorn": True, "cheroot": False, "waitress": True}

#: What the app's read loop ends with when the client drops the connection
#: half-way, by (server, chunked, RST instead of FIN): the qualified name of
#: the exception wsgi.input.read raises, or None when read() just returns
#: b"" before Content-Length is reached.
DISCONNECT_ERRORS = {
    ("gunicorn", False, False): None,
    ("gunicorn", False, True): "builtins.ConnectionResetError",
    ("gunicorn", True, False): "gunicorn.http.errors.NoMoreData",
    ("gunicorn", True, True): "builtins.ConnectionResetError",
    ("cheroot", False, False): None,
    ("cheroot", False, True): "builtins.ConnectionResetError",
    ("cheroot", True, False): "builtins.ValueError",  # "Bad chunked transfer size: b''"
    ("cheroot", True, True): "builtins.ConnectionResetError",
}


#: The echo_server fixture: server name -> running server.
ServerFor = Callable[[str], Server]


@pytest.fixture(scope="module")
def echo_server() -> Iterator[ServerFor]:
    """Start each server (running the echo app) once for the module."""
    with contextlib.ExitStack() as stack:
        running: dict[str, Server] = {}

        def get(name: str) -> Server:
            if name not in running:
                running[name] = stack.enter_context(serve(name, ECHO_APP))
            return running[name]

        yield get


def sha256(data: bytes) -> str:
    """Hex SHA-256, as the echo app reports it."""
    return hashlib.sha256(data).hexdigest()


def watch_upload(server: Server, **upload: object) -> tuple[list[tuple[int, int]], Response]:
    """Run a slow upload while polling /seen; return (polls, response).

    Each poll is (bytes the app had read, bytes the client had sent once the
    poll was answered); only polls answered before the client sent its last
    body byte are kept.
    """
    test_id = uuid.uuid4().hex
    thread = UploadThread(server.port, "/upload", headers={"X-Test-ID": test_id}, **upload)
    thread.start()
    polls = []
    deadline = time.monotonic() + 30
    while thread.is_alive() and time.monotonic() < deadline:
        _, _, seen = get_json(server.port, f"/seen?id={test_id}")
        sent = thread.sent
        if sent < SIZE:
            polls.append((seen["read"], sent))
        time.sleep(0.02)
    response = thread.join_result(timeout=10)
    assert response is not None
    return polls, response


@pytest.mark.parametrize("name", ["gunicorn", "cheroot"])
def test_body_reaches_app_while_it_arrives(echo_server: ServerFor, name: str) -> None:
    server = echo_server(name)
    polls, response = watch_upload(server, size=SIZE, chunk=CHUNK, delay=DELAY)

    assert response.status == 200, response
    answer = response.json()
    assert answer["read"] == SIZE
    assert answer["sha256"] == sha256(payload(SIZE))
    assert answer["span"] > 0.5  # reads spread over the arrival
    assert answer["input_terminated"] is TERMINATED_WITH_LENGTH[name]
    assert all(read <= sent for read, sent in polls)
    intermediate = [read for read, _ in polls if 0 < read < SIZE]
    assert intermediate == sorted(intermediate)
    assert len(set(intermediate)) >= 3, polls


def test_waitress_reads_whole_body_before_calling_app(echo_server: ServerFor) -> None:
    server = echo_server("waitress")
    polls, response = watch_upload(server, size=SIZE, chunk=CHUNK, delay=DELAY)

    assert response.status == 200, response
    answer = response.json()
    assert answer["read"] == SIZE
    assert answer["sha256"] == sha256(payload(SIZE))
    assert answer["span"] < 0.2  # read from waitress's buffer at once
    assert answer["input_terminated"] is TERMINATED_WITH_LENGTH["waitress"]
    assert len(polls) >= 3, polls
    assert [read for read, _ in polls] == [0] * len(polls)


@pytest.mark.parametrize("name", ["gunicorn", "cheroot", "waitress"])
def test_chunked_body_arrives_whole(echo_server: ServerFor, name: str) -> None:
    size, chunk = 300_001, 10_007  # odd sizes: chunks never line up with reads
    response = slow_upload(
        echo_server(name).port, "/upload", size=size, chunk=chunk, delay=0.001, chunked=True
    )

    assert response is not None and response.status == 200, response
    answer = response.json()
    assert answer["read"] == size
    assert answer["sha256"] == sha256(payload(size))
    assert answer["input_terminated"] is True


def test_multipart_body_arrives_whole(echo_server: ServerFor) -> None:
    size = 200_000
    body, content_type = multipart_body("file", size)
    response = slow_upload(
        echo_server("gunicorn").port,
        "/upload",
        size=size,
        chunk=CHUNK,
        delay=0.001,
        multipart="file",
    )

    assert response is not None and response.status == 200, response
    assert response.json()["read"] == len(body)
    assert response.json()["sha256"] == sha256(body)
    form = webob.Request.blank("/", method="POST", body=body, content_type=content_type).POST
    assert form["file"].file.read() == payload(size)


@pytest.mark.parametrize(("name", "chunked", "reset"), sorted(DISCONNECT_ERRORS))
def test_streaming_server_survives_client_leaving_mid_body(
    echo_server: ServerFor, name: str, chunked: bool, reset: bool
) -> None:
    server = echo_server(name)
    size, half = 256 * 1024, 128 * 1024
    test_id = uuid.uuid4().hex
    dropped = slow_upload(
        server.port,
        "/upload",
        size=size,
        chunk=32 * 1024,
        delay=0.01,
        chunked=chunked,
        disconnect_after=half,
        reset=reset,
        headers={"X-Test-ID": test_id},
    )
    assert dropped is None

    deadline = time.monotonic() + 10
    while not (seen := get_json(server.port, f"/seen?id={test_id}")[2])["done"]:
        assert time.monotonic() < deadline, f"app still reading: {seen}"
        time.sleep(0.02)
    assert seen["error"] == DISCONNECT_ERRORS[name, chunked, reset]
    if reset:
        assert seen["read"] <= half  # an RST discards what was not yet read
    else:
        assert seen["read"] == half
    assert_still_serving(server)


@pytest.mark.parametrize("chunked", [False, True])
def test_waitress_survives_client_leaving_mid_body(echo_server: ServerFor, chunked: bool) -> None:
    server = echo_server("waitress")
    test_id = uuid.uuid4().hex
    dropped = slow_upload(
        server.port,
        "/upload",
        size=256 * 1024,
        chunk=32 * 1024,
        delay=0.01,
        chunked=chunked,
        disconnect_after=128 * 1024,
        headers={"X-Test-ID": test_id},
    )
    assert dropped is None

    assert_still_serving(server)
    # waitress never calls the app for a body that did not arrive whole.
    assert get_json(server.port, f"/seen?id={test_id}")[2] == {
        "read": 0,
        "done": False,
        "error": None,
    }


def assert_still_serving(server: Server) -> None:
    """A fresh upload on a new connection is answered in full."""
    response = slow_upload(server.port, "/upload", size=50_000, chunk=50_000, delay=0, timeout=10)
    assert response is not None and response.status == 200, response
    assert response.json()["sha256"] == sha256(payload(50_000))


def test_serve_reports_an_app_that_fails_to_load() -> None:
    with pytest.raises(RuntimeError, match="No module named 'tests.e2e.missing'"):
        with serve("gunicorn", "tests.e2e.missing:app"):
            pass
