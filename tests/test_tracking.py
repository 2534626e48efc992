"""Which requests are tracked, and how the store is written while the body
arrives.

A body from the threshold on, or any body with an id, is tracked; a
request without a body, a poll (even one carrying a body) and the report
path never are. The counting starts in the execution policy, so that a
body read before any tween (pyramid_retry's copy) is still counted. A
throttled store is written at most once an interval, counted from the end
of the previous write, and the body's end at once; an unthrottled store is
written nothing while the body arrives. The response keeps its
Content-Length.
"""
from __future__ import annotations

import io
import time

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.interfaces import IExecutionPolicy
from pyramid.response import Response

from pyramid_upload_progress import MemoryUploadProgressStore
from pyramid_upload_progress.policy import UploadProgressPolicy
from tests.apps import basic_app, poll, store_of, stream_configure, upload, wsgi_call


def test_a_body_below_the_threshold_is_not_tracked(app):
    upload(app, size=999)
    assert poll(app).json == {"uploads": []}


def test_a_body_at_the_threshold_is_tracked(app):
    upload(app, size=1000)
    assert len(poll(app).json["uploads"]) == 1


def test_an_id_tracks_a_body_below_the_threshold(app):
    upload(app, size=1, upload_id="tiny")
    assert poll(app, "tiny").json["received"] == 1


def test_threshold_zero_tracks_every_request_with_a_body():
    app = webtest.TestApp(basic_app({"upload_progress.threshold": "0"}))
    upload(app, size=1)
    assert len(poll(app).json["uploads"]) == 1


def test_a_request_without_a_body_is_never_tracked(app):
    app.get("/upload?X-Progress-ID=get1", headers={"X-User": "alice"})
    app.post("/upload?X-Progress-ID=empty", b"", headers={"X-User": "alice"})
    assert store_of(app).get("get1", "alice") is None
    assert store_of(app).get("empty", "alice") is None


def test_polls_themselves_are_not_tracked(app):
    poll(app, "p1")
    assert store_of(app).get("p1", "alice") is None


def test_the_apps_execution_policy_is_wrapped():
    def my_policy(environ, router):
        environ["policy.seen"] = True
        with router.request_context(environ) as request:
            return router.invoke_request(request)

    app = basic_app(configure=lambda config: config.set_execution_policy(my_policy))
    policy = app.registry.getUtility(IExecutionPolicy)
    assert isinstance(policy, UploadProgressPolicy)
    assert policy.inner is my_policy
    assert app.execution_policy is policy


def test_pyramid_retrys_policy_is_wrapped_and_its_copy_is_counted():
    def configure(config):
        config.include("pyramid_retry")

    testapp = webtest.TestApp(basic_app(configure=configure))
    assert upload(testapp, upload_id="r1", size=3000).json == {"read": 3000}
    assert poll(testapp, "r1").json["received"] == 3000


class CountingStore(MemoryUploadProgressStore):
    """A memory store that keeps every progress write it is given."""

    def __init__(self, throttled):
        super().__init__()
        self.throttled = throttled
        self.updates = []

    def update(self, key, received, files, ended=False):
        self.updates.append(received)
        return super().update(key, received, files, ended)


def upload_through(store, update_interval):
    app = basic_app({"upload_progress.update_interval": update_interval},
                   configure=stream_configure, store=store)
    _, app_iter = wsgi_call(app, b"x" * 100_000, path="/stream")
    b"".join(app_iter)
    app_iter.close()
    return store.get("w1", "alice")


def test_a_throttled_store_gets_no_write_within_the_first_interval_but_the_bodys_end():
    # The start recorded nothing received; within the first interval only
    # the read that ends the body is written.
    store = CountingStore(throttled=True)
    record = upload_through(store, "3600")
    assert store.updates == [100_000]
    assert (record.received, record.state) == (100_000, "done")


def test_a_throttled_store_gets_every_read_with_a_zero_interval():
    store = CountingStore(throttled=True)
    upload_through(store, "0")
    assert len(store.updates) > 5
    assert store.updates == sorted(store.updates)
    assert store.updates[-1] == 100_000


def test_an_unthrottled_store_is_written_nothing_while_the_body_arrives():
    store = CountingStore(throttled=False)
    record = upload_through(store, "0")
    assert store.updates == []
    assert (record.received, record.state) == (100_000, "done")


@pytest.mark.parametrize("query", ["", "X-Progress-ID=len1"], ids=["untracked", "tracked"])
def test_an_uploads_response_keeps_its_content_length(query):
    """The add-on wraps the response body to learn when it ends; the
    response must stay as the app made it: a server (waitress) that gets
    no Content-Length answers chunked and closes the connection."""
    headers = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/upload", "QUERY_STRING": query,
               "CONTENT_LENGTH": "10", "wsgi.input": io.BytesIO(b"x" * 10),
               "SERVER_NAME": "localhost", "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
    app_iter = basic_app()(environ, lambda status, found, exc_info=None: headers.extend(found))
    try:
        body = b"".join(app_iter)
    finally:
        if hasattr(app_iter, "close"):
            app_iter.close()
    assert ("Content-Length", str(len(body))) in headers


# -- a poll that carries a body is never tracked ------------------------------

def test_a_poll_with_a_body_neither_wipes_nor_answers_about_itself(app):
    upload(app, upload_id="p1", size=5000)
    res = app.request("/upload-progress?X-Progress-ID=p1", method="GET", body=b"x" * 10,
                      headers={"X-User": "alice"})
    assert (res.json["path"], res.json["received"], res.json["state"]) == ("/upload", 5000, "done")
    assert poll(app, "p1").json["received"] == 5000


# -- the throttle counts from the end of the previous write -------------------

class SlowStore(MemoryUploadProgressStore):
    """A throttled store whose progress writes take 50 ms."""

    throttled = True

    def __init__(self):
        super().__init__()
        self.writes = 0

    def update(self, key, received, files, ended=False):
        self.writes += 1
        time.sleep(0.05)
        return super().update(key, received, files, ended)


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
    app = basic_app({"upload_progress.update_interval": "0.04"}, store=store,
                   configure=lambda config: (config.add_route("pieces", "/pieces"),
                                             config.add_view(read_in_pieces, route_name="pieces")))
    body = b"x" * 1_000_000
    statuses, app_iter = wsgi_call(app, body, path="/pieces", **{"wsgi.input": SlowInput(body)})
    app_iter.close()
    # 62 reads in about 0.4 s. Each write takes longer than the interval:
    # counted from the start of a write, nearly every read would be written.
    assert 1 <= store.writes <= 10


def test_the_report_path_under_a_route_prefix_is_never_tracked():
    with Configurator(settings={"upload_progress.threshold": "0"}) as config:
        config.include("pyramid_upload_progress", route_prefix="/api")
        app = webtest.TestApp(config.make_wsgi_app())
    app.request("/api/upload-progress?X-Progress-ID=p1", method="GET", body=b"x" * 10)
    assert app.get("/api/upload-progress?X-Progress-ID=p1").json["state"] == "starting"


def test_an_untracked_request_has_no_upload_progress():
    def view(request):
        return Response(json={"tracked": request.upload_progress is not None})

    app = webtest.TestApp(basic_app(configure=lambda config: (
        config.add_route("look", "/look"), config.add_view(view, route_name="look"))))
    assert app.post("/look", b"x" * 10).json == {"tracked": False}
    assert app.post("/look?X-Progress-ID=t1", b"x" * 10).json == {"tracked": True}
