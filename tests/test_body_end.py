"""The end of a body reaches every store at once (issue 20, items 4 and 10).

DESIGN.md, "The end of a body": the read that returns the last byte of a
sized body, or ``b""`` of a chunked one, reaches every store when the app
makes it, throttled or not: from then on polls show every byte and a cancel
answers 404. ``rate`` is the body's, from its first byte to its last, so it
does not fall while the app works on the upload.

Each test runs against the memory store and the throttled SQLite and Redis
stores, with an app that reads the body and then holds, as an app that
scans or stores an upload does.
"""
from __future__ import annotations

import threading
import time

import pytest
import webob
import webtest
from pyramid.response import Response

from tests.apps import WAIT, Background, make_app, store_of
from tests.server_inputs import chunked_wire, gunicorn_chunked, gunicorn_length
from tests.store_kinds import each_store, store_settings
from tests.e2e.client import ALICE

SIZE = 100_000


class Hold:
    """The view reads the body in 8 KiB reads until ``b""``, then holds
    until the test lets it answer."""

    def __init__(self) -> None:
        self.read = threading.Event()
        self.go = threading.Event()

    def __call__(self, request):
        data = b"".join(iter(lambda: request.body_file.read(8192), b""))
        self.read.set()
        if not self.go.wait(WAIT):
            raise TimeoutError("the test never let the view answer")
        return Response(json={"read": len(data)})


class SlowInput:
    """A server input that waits ``delay`` seconds before each read, so
    that the body takes a measurable time to arrive."""

    def __init__(self, raw, delay: float) -> None:
        self._raw = raw
        self._delay = delay

    def read(self, size=-1):
        time.sleep(self._delay)
        return self._raw.read(size)


def body_input(body: bytes, chunked: bool):
    if chunked:
        return gunicorn_chunked(chunked_wire(body, [5000]), [4096])
    return gunicorn_length(body, len(body), [4096])


def serve(app, raw, upload_id: str, chunked: bool, size: int) -> Background:
    """POST the body of ``raw`` to ``/hold`` in a thread, as gunicorn
    would: a chunked body without a Content-Length."""
    environ = webob.Request.blank(f"/hold?X-Progress-ID={upload_id}", method="POST",
                                  headers=ALICE).environ
    environ.pop("webob.is_body_seekable", None)
    environ.update({"wsgi.input": raw, "CONTENT_TYPE": "application/octet-stream",
                    "SERVER_SOFTWARE": "gunicorn", "wsgi.input_terminated": True})
    if chunked:
        environ.pop("CONTENT_LENGTH", None)
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        environ["CONTENT_LENGTH"] = str(size)

    def call():
        status, headers, app_iter = webob.Request(environ).call_application(app)
        try:
            return status, b"".join(app_iter)
        finally:
            app_iter.close()

    thread = Background(call)
    thread.start()
    return thread


def held(kind: str, upload_id: str, chunked: bool, delay: float = 0.0,
         while_arriving=None):
    """An app on store ``kind``, its view holding after it read a body of
    ``SIZE`` bytes: (the view, the thread serving the upload, a client).
    ``while_arriving(client)`` is called again and again until the view
    has read the body."""
    hold = Hold()
    app = make_app({"hold": hold}, store_settings(kind))
    client = webtest.TestApp(app)
    raw = body_input(b"b" * SIZE, chunked)
    if delay:
        raw = SlowInput(raw, delay)
    thread = serve(app, raw, upload_id, chunked, SIZE)
    deadline = time.monotonic() + WAIT
    while while_arriving is not None and not hold.read.is_set() \
            and time.monotonic() < deadline:
        while_arriving(client)
    assert hold.read.wait(WAIT), "the view never read the body"
    return hold, thread, client


def poll(client, upload_id):
    return client.get(f"/upload-progress?X-Progress-ID={upload_id}", headers=ALICE).json


@each_store()
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "sized"])
def test_a_body_read_whole_shows_every_byte_and_refuses_a_cancel(kind, chunked):
    hold, thread, client = held(kind, "e1", chunked)
    try:
        answer = poll(client, "e1")
        assert (answer["state"], answer["received"]) == ("uploading", SIZE)
        assert answer["size"] == (None if chunked else SIZE)
        refused = client.delete("/upload-progress?X-Progress-ID=e1", headers=ALICE,
                                expect_errors=True)
        assert refused.status_int == 404
    finally:
        hold.go.set()
    status, body = thread.result()
    assert status == "200 OK"
    record = store_of(client.app).get("e1", "alice")
    assert (record.state, record.cancelled, record.received) == ("done", False, SIZE)
    assert record.body_end is not None and record.started <= record.body_end <= record.finished


@each_store()
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "sized"])
def test_the_rate_is_the_bodys_and_stays_while_the_app_works(kind, chunked):
    """The body takes a fraction of a second to arrive, polled meanwhile;
    then the app holds. The rate polled at once, polled later while the
    app holds, and at the end are the same number - bytes over the time
    from the first byte to the last - and close to the rate polled while
    the body arrived."""
    arriving = []

    def poll_while_arriving(client):
        answer = poll(client, "r1")
        if answer["state"] == "uploading" and SIZE // 2 <= answer["received"] < SIZE:
            arriving.append(answer["rate"])
        time.sleep(0.01)

    hold, thread, client = held(kind, "r1", chunked, delay=0.03,
                                while_arriving=poll_while_arriving)
    try:
        first = poll(client, "r1")
        time.sleep(0.3)  # the app "works on the upload" for a while
        later = poll(client, "r1")
    finally:
        hold.go.set()
    thread.result()
    final = poll(client, "r1")
    assert first["received"] == SIZE
    assert first["rate"] == later["rate"] == final["rate"]
    record = store_of(client.app).get("r1", "alice")
    body_time = record.body_end - record.started
    assert first["rate"] == pytest.approx(SIZE / body_time, rel=0.01)
    # It really is the body's: the response ended much later.
    assert record.finished - record.started > body_time + 0.25
    assert (first["eta"], later["eta"], final["eta"]) == (0.0, 0.0, 0.0)
    # As measured while the body arrived (a throttled store's polls lag by
    # up to one update interval; the machine may be loaded).
    assert arriving, "no poll saw the second half of the body arrive"
    assert arriving[-1] == pytest.approx(first["rate"], rel=0.5)
