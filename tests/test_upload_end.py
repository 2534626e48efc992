"""How an upload ends: every way a view can end, with every way it can read
the body, and the end of the body reaching every store at once.

The add-on records how the request ended (the response status, or the
exception / client disconnect); an upload whose response is 4xx/5xx, or
that ended in an exception, has state ``error``; otherwise it ends
``done``. Nothing may stay ``uploading`` once the server has closed the
response.

The read that returns the last byte of a sized body, or ``b""`` of a
chunked one, reaches every store when the app makes it, throttled or not:
from then on polls show every byte and a cancel answers 404. ``rate`` is
the body's, from its first byte to its last, so it does not fall while the
app works on the upload. Those tests run against the memory store and the
throttled SQLite and Redis stores, with an app that reads the body and then
holds, as an app that scans or stores an upload does.
"""
from __future__ import annotations

import itertools
import time

import pytest
import webob
import webtest
from pyramid.httpexceptions import HTTPForbidden, HTTPFound
from pyramid.response import Response
from webob.request import DisconnectionError

from pyramid_upload_progress import IUploadProgressStore, render_upload
from tests.apps import (
    WAIT,
    Background,
    Gate,
    basic_app,
    make_app,
    poll,
    serve_upload,
    store_of,
    stream_configure,
    upload,
    wsgi_call,
)
from tests.e2e.client import ALICE
from tests.forms import disposition, form
from tests.server_inputs import chunked_wire, gunicorn_chunked, gunicorn_length
from tests.store_kinds import each_store, store_settings


def test_a_413_response_ends_the_upload_in_error(app):
    upload(app, "/too-large", upload_id="big", status=413)
    answer = poll(app, "big").json
    assert answer["state"] == "error"
    assert answer["status"] == 413
    assert answer["finished"] is not None


def test_an_exception_ends_the_upload_in_error():
    app = webtest.TestApp(basic_app())
    with pytest.raises(RuntimeError):
        upload(app, "/explode", upload_id="boom")
    answer = poll(app, "boom").json
    assert answer["state"] == "error"
    assert answer["status"] is None
    assert answer["finished"] is not None


def test_an_exception_view_response_ends_the_upload_in_error():
    def configure(config):
        config.add_exception_view(lambda exc, request: Response("sorry", status=500),
                                  context=RuntimeError)

    app = webtest.TestApp(basic_app(configure=configure))
    upload(app, "/explode", upload_id="boom", status=500)
    assert poll(app, "boom").json["status"] == 500
    assert poll(app, "boom").json["state"] == "error"


def test_a_redirect_is_done():
    def configure(config):
        config.add_route("redirect", "/redirect")
        config.add_view(lambda r: Response(status=303, location="/x"), route_name="redirect")

    app = webtest.TestApp(basic_app(configure=configure))
    upload(app, "/redirect", upload_id="r", status=303)
    assert poll(app, "r").json["state"] == "done"


def test_the_record_ends_when_the_server_closes_the_response():
    app = basic_app(configure=stream_configure)
    statuses, app_iter = wsgi_call(app, b"x" * 1000, path="/stream")
    store = app.registry.getUtility(IUploadProgressStore)
    assert store.get("w1", "alice").state == "uploading"
    assert b"".join(app_iter) == b"." * 10
    assert store.get("w1", "alice").received == 1000
    assert store.get("w1", "alice").state == "uploading"
    app_iter.close()
    assert store.get("w1", "alice").state == "done"


def test_a_response_closed_before_it_was_exhausted_still_ends_the_record():
    app = basic_app(configure=stream_configure)
    _, app_iter = wsgi_call(app, b"x" * 1000, path="/stream")
    iterator = iter(app_iter)
    next(iterator)
    app_iter.close()
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    assert record.finished is not None
    assert record.state == "done"


def test_a_body_that_ends_early_is_a_disconnect():
    app = basic_app()
    with pytest.raises(DisconnectionError):
        wsgi_call(app, b"x" * 500, CONTENT_LENGTH="1000")
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    assert record.state == "error"
    assert record.received == 500


def test_received_never_exceeds_the_content_length():
    app = basic_app()
    _, app_iter = wsgi_call(app, b"x" * 1500, CONTENT_LENGTH="1000")
    app_iter.close()
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    assert record.received == record.size == 1000


def test_a_chunked_body_is_tracked_with_size_null():
    app = basic_app()
    _, app_iter = wsgi_call(app, b"x" * 3000, CONTENT_LENGTH="",
                            HTTP_TRANSFER_ENCODING="chunked",
                            **{"wsgi.input_terminated": True})
    app_iter.close()
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    answer = render_upload(record, record.finished)
    assert (answer["size"], answer["percent"], answer["received"]) == (None, None, 3000)
    assert answer["state"] == "done"


BOUNDARY = "outcome-boundary"


FILE = b"".join(b"row %d\n" % i for i in range(600))


BODY = form(BOUNDARY, [(disposition("title", None), b"line one\nline two\n"),
                       (disposition("file", "f.txt"), FILE)])


CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def read_loop(read):
    while read():
        pass


READS = {
    "none": lambda request: None,
    "part": lambda request: request.body_file.read(10),
    "body": lambda request: request.body,
    "body_file": lambda request: request.body_file.read(),
    "body_file_chunks": lambda request: read_loop(lambda: request.body_file.read(1000)),
    "seekable": lambda request: request.body_file_seekable.read(),
    "POST": lambda request: request.POST["file"].file.read(),
    "input_read_n": lambda request: read_loop(lambda: request.environ["wsgi.input"].read(333)),
    "input_readline": lambda request: read_loop(request.environ["wsgi.input"].readline),
    "input_iterate": lambda request: list(request.environ["wsgi.input"]),
    "input_readlines": lambda request: request.environ["wsgi.input"].readlines(),
}


READS_ALL = set(READS) - {"none", "part"}


def ends(how):
    def end(request):
        if how == "raise":
            raise RuntimeError("the view failed")
        if how == "raise-403":
            raise HTTPForbidden()
        if how == "302":
            return HTTPFound(location="/elsewhere")
        return Response(json={"ok": True}, status=int(how))
    return end


OUTCOMES = {"200": 200, "201": 201, "302": 302, "400": 400, "404": 404, "413": 413,
            "500": 500, "503": 503, "raise": None, "raise-403": 403}


def view_for(read, how):
    def view(request):
        READS[read](request)
        return ends(how)(request)
    return view


APP = make_app({f"{read}-{how}": view_for(read, how)
                for read, how in itertools.product(READS, OUTCOMES)})


@pytest.mark.parametrize("server", ["gunicorn", "cheroot"])
@pytest.mark.parametrize("read,how", list(itertools.product(READS, OUTCOMES)))
def test_each_record_ends_with_the_right_state(read, how, server):
    upload_id = f"{server}-{read}-{how}".replace("_", ".")
    status = OUTCOMES[how]
    try:
        response = serve_upload(APP, BODY, f"/{read}-{how}", content_type=CONTENT_TYPE,
                                headers={"X-User": "alice"}, server=server,
                                query=f"X-Progress-ID={upload_id}")
    except RuntimeError:
        assert how == "raise"
    else:
        assert response.status_int == status
    record = store_of(APP).get(upload_id, "alice")
    assert record is not None and record.finished is not None
    expected = "done" if status is not None and status < 400 else "error"
    assert (record.state, record.status) == (expected, status)
    # cheroot's KnownLengthRFile.readlines() answers [] (its own bug).
    if read in READS_ALL and not (server, read) == ("cheroot", "input_readlines"):
        assert record.received == len(BODY)
        assert record.files == [{"field": "file", "filename": "f.txt",
                                 "received": len(FILE), "done": True}]


SIZE = 100_000


class Hold(Gate):
    """The view reads the body in 8 KiB reads until ``b""``, then holds
    until the test lets it answer."""

    def __call__(self, request):
        data = b"".join(iter(lambda: request.body_file.read(8192), b""))
        self.hold()
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
    while while_arriving is not None and not hold.waiting.is_set() \
            and time.monotonic() < deadline:
        while_arriving(client)
    assert hold.waiting.wait(WAIT), "the view never read the body"
    return hold, thread, client


@each_store()
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "sized"])
def test_a_body_read_whole_shows_every_byte_and_refuses_a_cancel(kind, chunked):
    hold, thread, client = held(kind, "e1", chunked)
    try:
        answer = poll(client, "e1").json
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
        answer = poll(client, "r1").json
        if answer["state"] == "uploading" and SIZE // 2 <= answer["received"] < SIZE:
            arriving.append(answer["rate"])
        time.sleep(0.01)

    hold, thread, client = held(kind, "r1", chunked, delay=0.03,
                                while_arriving=poll_while_arriving)
    try:
        first = poll(client, "r1").json
        time.sleep(0.3)  # the app "works on the upload" for a while
        later = poll(client, "r1").json
    finally:
        hold.go.set()
    thread.result()
    final = poll(client, "r1").json
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
