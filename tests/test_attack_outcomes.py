"""Attack: every way a view can end, with every way it can read the body.

DESIGN.md: the add-on records "how the request ended (the response status,
or the exception / client disconnect)"; an upload whose response is
4xx/5xx, or that ended in an exception, has state ``error``; otherwise it
ends ``done``. Nothing may stay ``uploading`` once the server has closed
the response.
"""
from __future__ import annotations

import itertools

import pytest
from pyramid.httpexceptions import HTTPForbidden, HTTPFound
from pyramid.response import Response

from tests.apps import make_app, serve_upload, store_of
from tests.test_attack_multipart import disposition, form

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
