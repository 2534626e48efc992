"""What the add-on tells from a server's environ: when progress cannot be
seen there (a warning, once), and when a body never reached the app (the
record ends ``error``). The same facts on the real servers are in
``tests/test_servers_more.py``; here each environ is built by hand, as
gunicorn's sync worker and uWSGI 2.0.31 give it."""
from __future__ import annotations

import io
import logging
import sys
from types import SimpleNamespace

import pytest

from pyramid_upload_progress import IUploadProgressStore, render_upload
from tests.apps import basic_app, wsgi_call


GUNICORN_SYNC = {"SERVER_SOFTWARE": "gunicorn/27.0.1", "wsgi.multithread": False,
                 "wsgi.multiprocess": False}


UWSGI = {"uwsgi.version": b"2.0.31", "wsgi.multithread": False, "wsgi.multiprocess": False}


ONE_AT_A_TIME = "serves one request at a time"


BUFFERED = "read the whole request body"


def warnings_after(caplog, uploads, **environ):
    """The add-on's warnings after ``uploads`` tracked uploads with ``environ``."""
    app = basic_app()
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        for n in range(uploads):
            wsgi_call(app, b"x" * 5000, query=f"X-Progress-ID=s{n}", **environ)[1].close()
    return [record.getMessage() for record in caplog.records]


@pytest.fixture
def uwsgi_module(monkeypatch):
    """The ``uwsgi`` module uWSGI gives the app: ``cores`` and ``opt``."""
    module = SimpleNamespace(cores=1, opt={"http-socket": b"127.0.0.1:8080"})
    monkeypatch.setitem(sys.modules, "uwsgi", module)
    return module


def test_gunicorns_sync_worker_with_the_memory_store_is_warned_about_once(caplog):
    [warning] = [m for m in warnings_after(caplog, 3, **GUNICORN_SYNC) if ONE_AT_A_TIME in m]
    assert "gunicorn/27.0.1" in warning and "gthread" in warning


def test_gunicorns_threaded_worker_is_not_warned_about(caplog):
    messages = warnings_after(caplog, 1, **{**GUNICORN_SYNC, "wsgi.multithread": True})
    assert not [m for m in messages if ONE_AT_A_TIME in m]


def test_a_server_that_says_no_threads_is_not_taken_at_its_word(caplog):
    """gevent's pywsgi says neither multithread nor multiprocess, and
    serves many requests at once."""
    messages = warnings_after(caplog, 1, **{**GUNICORN_SYNC, "SERVER_SOFTWARE": "gevent/24.2"})
    assert not [m for m in messages if ONE_AT_A_TIME in m]


def test_uwsgi_with_one_core_is_warned_about(caplog, uwsgi_module):
    [warning] = [m for m in warnings_after(caplog, 2, **UWSGI) if ONE_AT_A_TIME in m]
    assert "uWSGI 2.0.31" in warning


def test_uwsgi_with_async_cores_is_not_warned_about(caplog, uwsgi_module):
    uwsgi_module.cores = 100  # --gevent 100: one thread, many requests at once
    assert not [m for m in warnings_after(caplog, 1, **UWSGI) if ONE_AT_A_TIME in m]


@pytest.mark.parametrize("value", [b"8192", [b"0", b"65536"]])
def test_uwsgi_post_buffering_is_warned_about_once(caplog, uwsgi_module, value):
    uwsgi_module.cores = 4
    uwsgi_module.opt["post-buffering"] = value
    [warning] = [m for m in warnings_after(caplog, 3, **UWSGI) if BUFFERED in m]
    assert "uWSGI 2.0.31" in warning and "post-buffering" in warning


@pytest.mark.parametrize("value", [None, b"0"])
def test_uwsgi_without_post_buffering_is_not_warned_about(caplog, uwsgi_module, value):
    uwsgi_module.cores = 4
    if value is not None:
        uwsgi_module.opt["post-buffering"] = value
    assert not [m for m in warnings_after(caplog, 1, **UWSGI) if BUFFERED in m]


def chunked_upload(app, **environ):
    """A chunked upload of which the app reads what WebOb gives it; its record."""
    _, app_iter = wsgi_call(app, b"x" * 3000, CONTENT_LENGTH="",
                            HTTP_TRANSFER_ENCODING="chunked", **environ)
    app_iter.close()
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    return render_upload(record, record.finished)


def test_a_chunked_body_the_server_gives_no_way_to_read_ends_in_error(caplog):
    """uWSGI 2.0: no Content-Length, no ``wsgi.input_terminated``; the app
    sees an empty body and answers while the client is still sending."""
    app = basic_app()
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        answers = [chunked_upload(app, **UWSGI) for _ in range(2)]
    assert [(a["state"], a["received"], a["status"]) for a in answers] == [("error", 0, 200)] * 2
    [warning] = [r.getMessage() for r in caplog.records if "chunked" in r.getMessage()]
    assert "uWSGI 2.0.31" in warning and "wsgi.input_terminated" in warning


def test_a_readable_chunked_body_still_ends_done(caplog):
    app = basic_app()
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        answer = chunked_upload(app, **{"wsgi.input_terminated": True})
    assert (answer["state"], answer["received"]) == ("done", 3000)
    assert "chunked" not in caplog.text


def test_a_buffering_server_is_warned_about_once(caplog):
    app = basic_app()
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        for _ in range(3):
            wsgi_call(app, b"x" * 10, SERVER_SOFTWARE="waitress")[1].close()
    warnings = [r for r in caplog.records if "read the whole request body" in r.message]
    assert len(warnings) == 1
    assert "waitress" in warnings[0].message


def test_a_streaming_server_is_not_warned_about(caplog):
    app = basic_app()
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        wsgi_call(app, b"x" * 10, SERVER_SOFTWARE="gunicorn/27.0.1")[1].close()
    assert "read the whole request body" not in caplog.text


def test_an_in_memory_input_is_told_apart_as_buffered(caplog):
    app = basic_app()
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        _, app_iter = wsgi_call(app, b"x" * 10, **{"wsgi.input": io.BytesIO(b"x" * 10)})
        app_iter.close()
    assert "read the whole request body" in caplog.text


def test_the_memory_store_warns_once_under_a_server_with_several_processes(caplog):
    app = basic_app()
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        for n in range(3):
            statuses, app_iter = wsgi_call(app, b"x" * 5000, query=f"X-Progress-ID=m{n}",
                                           **{"wsgi.multiprocess": True})
            app_iter.close()
    [warning] = [r.getMessage() for r in caplog.records if "processes" in r.getMessage()]
    assert "sqlite" in warning and "redis" in warning
