"""What a deliberate attack on the core broke (issue 14), one test a finding,
each as a user meets it: through the app, with a server's non-seekable input.
"""
from __future__ import annotations

import json
import logging
import time

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.response import Response
from zope.interface import alsoProvides

from pyramid_upload_progress import IUploadProgressStore, MemoryUploadProgressStore
from pyramid_upload_progress.policy import UploadProgressPolicy

from .test_functional import app, make_app, poll, upload, wsgi_call  # noqa: F401

# -- 1. the stream has exactly the methods of the server's input ---------------


def duck_typed_upload(request):
    """What boto3's s3transfer does with a file it is handed."""
    body = request.environ["wsgi.input"]
    if hasattr(body, "seek"):
        try:
            body.seek(0, 1)
        except OSError:
            pass
    return Response(json={"read": len(body.read())})


def test_a_library_that_duck_types_the_body_gets_the_servers_interface():
    app = make_app(configure=lambda config: (
        config.add_route("duck", "/duck"), config.add_view(duck_typed_upload, route_name="duck")))
    statuses, app_iter = wsgi_call(app, b"x" * 5000, path="/duck")
    assert statuses == ["200 OK"]
    assert json.loads(b"".join(app_iter)) == {"read": 5000}
    app_iter.close()


# -- 2. a poll of your own id answers your upload, not someone else's ---------

def test_an_anonymous_body_with_my_id_does_not_take_over_my_poll(app):
    upload(app, upload_id="X", size=5000)
    app.post("/nowhere?X-Progress-ID=X", b"abc", status=404)
    answer = poll(app, "X").json
    assert (answer["state"], answer["received"], answer["path"]) == ("done", 5000, "/upload")


# -- 3. a flood of small uploads cannot switch tracking off -------------------

def test_a_flood_of_finished_uploads_leaves_a_users_upload_tracked():
    app = webtest.TestApp(make_app({"upload_progress.max_uploads": "50"}))
    for n in range(200):
        app.post(f"/nowhere?X-Progress-ID=flood{n}", b"x", status=404)
    upload(app, upload_id="mine", size=5000)
    assert poll(app, "mine").json["state"] == "done"


# -- 4. the report route keeps its place in the app's route order -------------

def test_a_catch_all_route_added_after_the_include_does_not_hide_the_report():
    def page(request):
        return Response("a page")

    def routes(config):
        config.add_route("page", "/{name}")
        config.add_view(page, route_name="page")

    app = webtest.TestApp(make_app(configure=routes))
    res = poll(app)
    assert res.content_type == "application/json"
    assert res.json == {"uploads": []}


# -- 5. every answer at the report path is JSON ----------------------------

@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "OPTIONS"])
def test_another_method_gets_a_json_405_with_allow(app, method):
    res = app.request("/upload-progress", method=method, headers={"X-User": "alice"},
                      status=405)
    assert res.content_type == "application/json"
    assert res.headers["Cache-Control"] == "no-store"
    assert set(res.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "DELETE"}
    assert "error" in res.json


def owner_that_raises(request):
    raise RuntimeError("the session backend is down")


def test_an_owner_lookup_that_raises_in_the_report_answers_json_500(caplog):
    app = webtest.TestApp(make_app({"upload_progress.owner": f"{__name__}.owner_that_raises"}))
    with caplog.at_level(logging.ERROR):
        res = poll(app, status=500)
    assert res.content_type == "application/json"
    assert res.headers["Cache-Control"] == "no-store"
    assert "error" in res.json
    assert "the session backend is down" in caplog.text


def test_the_apps_default_permission_answers_json_403():
    app = webtest.TestApp(make_app(configure=lambda config: config.set_default_permission("view")))
    res = poll(app, user=None, status=403)
    assert res.content_type == "application/json"
    assert res.headers["Cache-Control"] == "no-store"
    assert poll(app, user="alice").json == {"uploads": []}


def test_head_answers_like_get_without_a_body(app):
    upload(app, upload_id="h1")
    res = app.head("/upload-progress?X-Progress-ID=h1", headers={"X-User": "alice"})
    assert res.status_int == 200
    assert res.body == b""
    assert res.content_type == "application/json"
    assert res.headers["Cache-Control"] == "no-store"


# -- 6. the stream passes calls through (see test_stream for every method) -----

def readlines_view(request):
    return Response(json={"lines": len(request.environ["wsgi.input"].readlines(10))})


def test_readlines_hint_is_the_servers_to_answer():
    class GunicornLikeInput:
        """readlines() reads the whole rest, whatever the hint."""

        def __init__(self, data):
            self._data = data

        def read(self, size=-1):
            data, self._data = self._data, b""
            return data

        def readline(self, size=-1):
            return self.read()

        def readlines(self, hint=None):
            return self.read().splitlines(keepends=True)

    body = b"first\nsecond\nthird\n"
    app = make_app(configure=lambda config: (
        config.add_route("lines", "/lines"), config.add_view(readlines_view, route_name="lines")))
    statuses, app_iter = wsgi_call(app, body, path="/lines",
                                   **{"wsgi.input": GunicornLikeInput(body)})
    assert json.loads(b"".join(app_iter)) == {"lines": 3}
    app_iter.close()


# -- 7. a poll that carries a body is never tracked ----------------------------

def test_a_poll_with_a_body_neither_wipes_nor_answers_about_itself(app):
    upload(app, upload_id="p1", size=5000)
    res = app.request("/upload-progress?X-Progress-ID=p1", method="GET", body=b"x" * 10,
                      headers={"X-User": "alice"})
    assert (res.json["path"], res.json["received"], res.json["state"]) == ("/upload", 5000, "done")
    assert poll(app, "p1").json["received"] == 5000


# -- 9. the throttle counts from the end of the previous write -----------------

class SlowStore(MemoryUploadProgressStore):
    """A throttled store whose progress writes take 50 ms."""

    throttled = True

    def __init__(self):
        super().__init__()
        self.writes = 0

    def update(self, key, received, files, ended=False):
        self.writes += 1
        time.sleep(0.05)
        return super().update(key, received, files)


class SlowInput:
    """A client whose every piece takes 5 ms to arrive."""

    def __init__(self, data):
        self._data = data

    def read(self, size=-1):
        time.sleep(0.005)
        data, self._data = self._data[:size], self._data[size:]
        return data


def read_in_pieces(request):
    while request.body_file_raw.read(16384):
        pass
    return Response("ok")


def test_a_slow_store_is_not_written_on_every_read():
    store = SlowStore()
    app = make_app({"upload_progress.update_interval": "0.04"}, store=store,
                   configure=lambda config: (config.add_route("pieces", "/pieces"),
                                             config.add_view(read_in_pieces, route_name="pieces")))
    body = b"x" * 1_000_000
    statuses, app_iter = wsgi_call(app, body, path="/pieces", **{"wsgi.input": SlowInput(body)})
    app_iter.close()
    # 62 reads in about 0.4 s. Each write takes longer than the interval:
    # counted from the start of a write, nearly every read would be written.
    assert 1 <= store.writes <= 10


# -- 10. the id parameter's name is matched as sent ----------------------------

@pytest.mark.parametrize("query", [
    "X%2DProgress%2DID=abc",
    "X%2DProgress%2DID=abc&note=X-Progress-ID",
])
def test_a_percent_encoded_parameter_name_is_not_the_id(app, query):
    app.post(f"/upload?{query}", b"x" * 5000, headers={"X-User": "alice"})
    assert poll(app, "abc").json["state"] == "starting"


def test_the_id_parameter_as_sent_is_the_id(app):
    app.post("/upload?note=1&X-Progress-ID=abc", b"x" * 5000, headers={"X-User": "alice"})
    assert poll(app, "abc").json["state"] == "done"


def test_a_store_without_every_method_stops_the_app_at_start_up():
    class Incomplete:
        throttled = False

        def start(self, upload_id, path, size, progress):
            return None

    store = Incomplete()
    alsoProvides(store, IUploadProgressStore)
    with pytest.raises(ConfigurationError, match="IUploadProgressStore"):
        make_app(store=store)


def test_the_store_and_the_counting_policy_show_in_the_introspection():
    app = make_app()
    [store] = app.registry.introspector.get_category("upload progress store")
    assert store["introspectable"]["store"] is app.registry.getUtility(IUploadProgressStore)
    [policy] = app.registry.introspector.get_category("upload progress execution policy")
    assert isinstance(policy["introspectable"]["policy"], UploadProgressPolicy)


def test_the_memory_store_warns_once_under_a_server_with_several_processes(caplog):
    app = make_app()
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        for n in range(3):
            statuses, app_iter = wsgi_call(app, b"x" * 5000, query=f"X-Progress-ID=m{n}",
                                           **{"wsgi.multiprocess": True})
            app_iter.close()
    [warning] = [r.getMessage() for r in caplog.records if "processes" in r.getMessage()]
    assert "sqlite" in warning and "redis" in warning


class FlappingStore(MemoryUploadProgressStore):
    """A store that is down while ``down`` is true."""

    def __init__(self):
        super().__init__()
        self.down = False

    def start(self, *args):
        if self.down:
            raise ConnectionError("store is down")
        return super().start(*args)

    def get(self, *args):
        if self.down:
            raise ConnectionError("store is down")
        return super().get(*args)


def test_an_outage_is_logged_once_and_its_end_once(caplog):
    store = FlappingStore()
    app = webtest.TestApp(make_app(store=store))
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        store.down = True
        for n in range(5):
            upload(app, upload_id=f"o{n}", size=5000)
            poll(app, f"o{n}", status=503)
        store.down = False
        upload(app, upload_id="back", size=5000)
        assert poll(app, "back").json["state"] == "done"
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "failed" in m]) == 1
    assert messages.count("upload progress: the store answers again") == 1


def test_a_cancel_in_an_app_that_requires_csrf_still_answers_json():
    app = webtest.TestApp(make_app(
        configure=lambda config: config.set_default_csrf_options(require_csrf=True)))
    res = app.delete("/upload-progress?X-Progress-ID=c1", headers={"X-User": "alice"},
                     status=404)
    assert res.content_type == "application/json"
    assert res.headers["Cache-Control"] == "no-store"


def test_the_report_path_under_a_route_prefix_is_never_tracked():
    with Configurator(settings={"upload_progress.threshold": "0"}) as config:
        config.include("pyramid_upload_progress", route_prefix="/api")
        app = webtest.TestApp(config.make_wsgi_app())
    app.request("/api/upload-progress?X-Progress-ID=p1", method="GET", body=b"x" * 10)
    assert app.get("/api/upload-progress?X-Progress-ID=p1").json["state"] == "starting"
