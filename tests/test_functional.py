"""The add-on in a Pyramid app, through WebTest and through raw WSGI calls."""
import io
import logging

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationConflictError, ConfigurationError
from pyramid.httpexceptions import HTTPRequestEntityTooLarge
from pyramid.interfaces import IExecutionPolicy
from pyramid.response import Response
from webob.request import DisconnectionError
from zope.interface import implementer

from pyramid_upload_progress import (
    IUploadProgressStore,
    MemoryUploadProgressStore,
    UploadRecord,
    render_upload,
)
from pyramid_upload_progress.policy import UploadProgressPolicy
from tests.plain_app import HeaderSecurityPolicy

CONTRACT_FIELDS = {"id", "state", "received", "size", "percent", "rate", "eta",
                   "started", "finished", "path", "status", "cancelled", "files",
                   "stage"}


def read_body(request):
    return Response(json={"read": len(request.body)})


def reject_too_large(request):
    request.body_file.read(10)
    raise HTTPRequestEntityTooLarge()


def explode(request):
    request.body_file.read(10)
    raise RuntimeError("the view failed")


def make_app(settings=None, configure=None, store=None):
    settings = {"upload_progress.threshold": "1000", **(settings or {})}
    with Configurator(settings=settings) as config:
        config.set_security_policy(HeaderSecurityPolicy())
        if store is not None:
            config.registry.registerUtility(store, IUploadProgressStore)
        config.include("pyramid_upload_progress")
        for name, view in [("upload", read_body), ("too_large", reject_too_large),
                           ("explode", explode)]:
            config.add_route(name, "/" + name.replace("_", "-"))
            config.add_view(view, route_name=name)
        if configure is not None:
            configure(config)
        return config.make_wsgi_app()


@pytest.fixture
def app():
    return webtest.TestApp(make_app())


def store_of(testapp):
    return testapp.app.registry.getUtility(IUploadProgressStore)


def upload(testapp, path="/upload", size=2000, user="alice", upload_id=None, **kw):
    if upload_id is not None:
        path += f"?X-Progress-ID={upload_id}"
    headers = {"X-User": user} if user else {}
    return testapp.post(path, b"x" * size, headers=headers, **kw)


def poll(testapp, upload_id=None, user="alice", **kw):
    path = "/upload-progress"
    if upload_id is not None:
        path += f"?X-Progress-ID={upload_id}"
    return testapp.get(path, headers={"X-User": user} if user else {}, **kw)


def test_listing_has_the_principals_finished_upload(app):
    upload(app, upload_id="up1")
    [record] = poll(app).json["uploads"]
    assert record["id"] == "up1"
    assert record["state"] == "done"
    assert record["received"] == record["size"] == 2000
    assert record["status"] == 200
    assert record["percent"] == 100.0


def test_listing_is_newest_first(app):
    for upload_id in ("first", "second", "third"):
        upload(app, upload_id=upload_id)
    assert [u["id"] for u in poll(app).json["uploads"]] == ["third", "second", "first"]


def test_an_upload_without_an_id_is_listed_with_id_null(app):
    upload(app)
    [record] = poll(app).json["uploads"]
    assert record["id"] is None


def test_listing_shows_only_the_principals_uploads(app):
    upload(app, upload_id="alices", user="alice")
    upload(app, upload_id="bobs", user="bob")
    assert [u["id"] for u in poll(app, user="bob").json["uploads"]] == ["bobs"]


def test_listing_without_a_principal_is_empty(app):
    upload(app, upload_id="anon", user=None)
    upload(app, upload_id="alices")
    assert poll(app, user=None).json == {"uploads": []}


def test_lookup_by_id_answers_the_owner(app):
    upload(app, upload_id="mine")
    answer = poll(app, "mine").json
    assert answer["id"] == "mine"
    assert answer["state"] == "done"


def test_lookup_by_id_in_the_header(app):
    upload(app, upload_id="hdr")
    answer = app.get("/upload-progress", headers={"X-User": "alice",
                                                  "X-Progress-ID": "hdr"}).json
    assert answer["state"] == "done"


def test_an_upload_naming_its_id_in_the_header_is_tracked(app):
    app.post("/upload", b"x" * 10, headers={"X-User": "alice", "X-Progress-ID": "h1"})
    assert poll(app, "h1").json["received"] == 10


def test_another_principals_id_answers_starting(app):
    upload(app, upload_id="secret", user="alice")
    answer = poll(app, "secret", user="bob").json
    assert answer == poll(app, "never-seen", user="bob").json | {"id": "secret"}
    assert answer["state"] == "starting"
    assert answer["received"] == 0
    assert answer["size"] is None


def test_an_unknown_id_answers_starting_with_every_field(app):
    answer = poll(app, "nope").json
    assert set(answer) == CONTRACT_FIELDS
    assert answer["state"] == "starting"


def test_an_anonymous_upload_is_visible_by_its_id_alone(app):
    upload(app, upload_id="anon", user=None)
    assert poll(app, "anon", user="bob").json["state"] == "done"
    assert poll(app, "anon", user=None).json["state"] == "done"


@pytest.mark.parametrize("bad", ["", "a b", "a/b", "x" * 129, "é", "a%00"])
def test_a_bad_id_is_a_400_json_error(app, bad):
    res = app.get("/upload-progress", params={"X-Progress-ID": bad}, status=400)
    assert res.content_type == "application/json"
    assert res.headers["Cache-Control"] == "no-store"
    assert "X-Progress-ID" in res.json["error"]


def test_a_bad_id_in_the_header_is_a_400(app):
    app.get("/upload-progress", headers={"X-Progress-ID": "a b"}, status=400)


def test_an_upload_with_a_bad_id_is_served_untracked(app):
    res = app.post("/upload?X-Progress-ID=bad%20id", b"x" * 5000,
                   headers={"X-User": "alice"})
    assert res.json == {"read": 5000}
    assert poll(app).json == {"uploads": []}


def test_every_answer_is_json_and_never_cached(app):
    upload(app, upload_id="c1")
    for res in (poll(app), poll(app, "c1"), poll(app, "unknown"), poll(app, user=None)):
        assert res.content_type == "application/json"
        assert res.headers["Cache-Control"] == "no-store"


def test_head_is_answered_like_get(app):
    res = app.head("/upload-progress")
    assert res.headers["Cache-Control"] == "no-store"


def test_an_upload_record_has_exactly_the_contract_fields(app):
    app.post("/upload?X-Progress-ID=f1&token=s3cret", b"x" * 10,
             headers={"X-User": "alice", "Cookie": "session=abc"})
    answer = poll(app, "f1").json
    assert set(answer) == CONTRACT_FIELDS
    assert answer["path"] == "/upload"
    assert "s3cret" not in poll(app).text
    assert "session" not in poll(app).text


def test_a_413_response_ends_the_upload_in_error(app):
    upload(app, "/too-large", upload_id="big", status=413)
    answer = poll(app, "big").json
    assert answer["state"] == "error"
    assert answer["status"] == 413
    assert answer["finished"] is not None


def test_an_exception_ends_the_upload_in_error():
    app = webtest.TestApp(make_app())
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

    app = webtest.TestApp(make_app(configure=configure))
    upload(app, "/explode", upload_id="boom", status=500)
    assert poll(app, "boom").json["status"] == 500
    assert poll(app, "boom").json["state"] == "error"


def test_a_redirect_is_done():
    def configure(config):
        config.add_route("redirect", "/redirect")
        config.add_view(lambda r: Response(status=303, location="/x"), route_name="redirect")

    app = webtest.TestApp(make_app(configure=configure))
    upload(app, "/redirect", upload_id="r", status=303)
    assert poll(app, "r").json["state"] == "done"


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
    app = webtest.TestApp(make_app({"upload_progress.threshold": "0"}))
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


def test_a_reused_id_replaces_the_principals_old_record(app):
    upload(app, upload_id="again", size=1500)
    upload(app, upload_id="again", size=2500)
    uploads = poll(app).json["uploads"]
    assert [(u["id"], u["size"]) for u in uploads] == [("again", 2500)]


def test_the_path_setting_moves_the_view():
    app = webtest.TestApp(make_app({"upload_progress.path": "/api/progress"}))
    app.get("/upload-progress", status=404)
    assert app.get("/api/progress").json == {"uploads": []}


def test_the_id_param_setting_renames_parameter_and_header():
    app = webtest.TestApp(make_app({"upload_progress.id_param": "upload_key"}))
    app.post("/upload?upload_key=k1", b"x", headers={"X-User": "alice"})
    app.post("/upload", b"x", headers={"X-User": "alice", "Upload-Key": "k2"})
    alice = {"X-User": "alice"}
    assert app.get("/upload-progress?upload_key=k1", headers=alice).json["state"] == "done"
    answer = app.get("/upload-progress", headers={**alice, "Upload-Key": "k2"}).json
    assert answer["state"] == "done"


def session_owner(request):
    return request.headers.get("X-Session")


def test_the_owner_setting_decides_whose_upload_it_is():
    app = webtest.TestApp(make_app(
        {"upload_progress.owner": "tests.test_functional.session_owner"}))
    app.post("/upload?X-Progress-ID=s1", b"x" * 10, headers={"X-Session": "sess-a"})
    listing = app.get("/upload-progress", headers={"X-Session": "sess-a"}).json
    assert [u["id"] for u in listing["uploads"]] == ["s1"]
    assert app.get("/upload-progress", headers={"X-Session": "sess-b"}).json == {"uploads": []}
    other = app.get("/upload-progress?X-Progress-ID=s1", headers={"X-Session": "sess-b"})
    assert other.json["state"] == "starting"


def test_an_int_principal_owns_its_uploads():
    app = webtest.TestApp(make_app(
        {"upload_progress.owner": "tests.test_functional.int_owner"}))
    app.post("/upload?X-Progress-ID=i1", b"x", headers={"X-User": "7"})
    assert app.get("/upload-progress", headers={"X-User": "7"}).json["uploads"][0]["id"] == "i1"


def int_owner(request):
    user = request.headers.get("X-User")
    return None if user is None else int(user)


def failing_owner(request):
    raise LookupError("the user table is not there")


def test_an_owner_lookup_that_raises_leaves_the_upload_untracked_and_served(caplog):
    app = webtest.TestApp(make_app(
        {"upload_progress.owner": "tests.test_functional.failing_owner"}))
    res = app.post("/upload?X-Progress-ID=o1", b"x" * 10)
    assert res.json == {"read": 10}
    assert store_of(app).get("o1", None) is None
    assert "owner" in caplog.text


def test_the_permission_setting_guards_the_view_with_a_json_403():
    app = webtest.TestApp(make_app({"upload_progress.permission": "view-progress"}))
    res = app.get("/upload-progress", status=403)
    assert res.json == {"error": "forbidden"}
    assert res.headers["Cache-Control"] == "no-store"
    assert app.get("/upload-progress", headers={"X-User": "alice"}).json == {"uploads": []}


def test_the_forbidden_view_is_only_the_report_views():
    def configure(config):
        config.add_route("guarded", "/guarded")
        config.add_view(lambda r: Response("ok"), route_name="guarded",
                        permission="nobody-has-it")

    app = webtest.TestApp(make_app({"upload_progress.permission": "view-progress"},
                                   configure=configure))
    res = app.get("/guarded", status=403)
    assert res.content_type != "application/json"


@implementer(IUploadProgressStore)
class FailingStore:
    """A store whose server is down: every call raises."""

    throttled = False

    def _down(self, *args):
        raise ConnectionError("store is down")

    start = update = set_owner = stage = finish = discard = get = list = cancel = _down


def test_a_failing_store_answers_503_json():
    app = webtest.TestApp(make_app(store=FailingStore()))
    for path in ("/upload-progress", "/upload-progress?X-Progress-ID=x1"):
        res = app.get(path, headers={"X-User": "alice"}, status=503)
        assert res.content_type == "application/json"
        assert res.headers["Cache-Control"] == "no-store"
        assert "error" in res.json


def test_a_failing_store_never_reaches_the_upload(caplog):
    app = webtest.TestApp(make_app(store=FailingStore()))
    assert upload(app, upload_id="u1", size=5000).json == {"read": 5000}
    assert "store is down" in caplog.text


@implementer(IUploadProgressStore)
class StoreFailingAfterStart(MemoryUploadProgressStore):
    """Starts uploads, then fails on ``method``; throttled, so that it is
    sent progress writes."""

    throttled = True

    def __init__(self, method):
        super().__init__()
        self.calls = []

        def fail(*args, **kw):
            self.calls.append(method)
            raise ConnectionError(f"{method} failed")

        setattr(self, method, fail)


@pytest.mark.parametrize("method", ["update", "set_owner", "finish"])
def test_a_store_failing_mid_upload_never_reaches_the_upload(method):
    store = StoreFailingAfterStart(method)
    app = webtest.TestApp(make_app({"upload_progress.update_interval": "0"}, store=store))
    assert upload(app, upload_id="u1", size=5000).json == {"read": 5000}
    assert store.calls == [method]


def test_a_directly_registered_store_is_kept():
    store = MemoryUploadProgressStore()
    app = webtest.TestApp(make_app(store=store))
    assert store_of(app) is store


def test_the_directive_sets_the_store():
    store = MemoryUploadProgressStore()
    app = webtest.TestApp(make_app(
        configure=lambda config: config.set_upload_progress_store(store)))
    assert store_of(app) is store
    upload(app, upload_id="d1")
    assert store.get("d1", "alice").state == "done"


a_store = MemoryUploadProgressStore()


def test_the_directive_takes_a_dotted_name():
    app = webtest.TestApp(make_app(configure=lambda config: config.set_upload_progress_store(
        "tests.test_functional.a_store")))
    assert store_of(app) is a_store


def test_the_directive_refuses_what_is_not_a_store():
    with pytest.raises(ConfigurationError, match="IUploadProgressStore"):
        make_app(configure=lambda config: config.set_upload_progress_store(object()))


def test_a_store_set_in_code_wins_over_the_setting_with_one_warning(tmp_path, caplog):
    path = tmp_path / "never.sqlite3"
    store = MemoryUploadProgressStore()
    settings = {"upload_progress.store": "sqlite", "upload_progress.sqlite.path": str(path)}
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        app = webtest.TestApp(make_app(
            settings, configure=lambda config: config.set_upload_progress_store(store)))
    assert store_of(app) is store
    assert not path.exists()
    [warning] = [r for r in caplog.records if "upload_progress.store" in r.getMessage()]
    message = warning.getMessage()
    assert "'sqlite'" in message and "set_upload_progress_store" in message
    assert repr(store) in message


def test_a_store_set_only_in_code_or_only_in_settings_warns_nothing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        make_app(configure=lambda config: config.set_upload_progress_store(
            MemoryUploadProgressStore()))
        make_app({"upload_progress.store": "memory"})
    assert caplog.records == []


class StoreWithoutEnded(MemoryUploadProgressStore):
    """A store written before ``update`` had ``ended``."""

    def update(self, key, received, files):
        return super().update(key, received, files)


def test_a_store_whose_update_lacks_ended_is_refused_at_start_up():
    with pytest.raises(ConfigurationError, match="update"):
        make_app(configure=lambda config: config.set_upload_progress_store(
            StoreWithoutEnded()))


def test_two_directive_calls_conflict():
    def configure(config):
        config.set_upload_progress_store(MemoryUploadProgressStore())
        config.set_upload_progress_store(MemoryUploadProgressStore())

    with pytest.raises(ConfigurationConflictError):
        make_app(configure=configure)


def store_factory(settings):
    store = MemoryUploadProgressStore(timeout=settings["upload_progress.timeout"])
    store.settings = settings
    return store


def test_the_store_setting_takes_a_factory_of_the_parsed_settings():
    app = webtest.TestApp(make_app({
        "upload_progress.store": "tests.test_functional.store_factory",
        "upload_progress.timeout": "42"}))
    assert store_of(app).timeout == 42.0
    assert store_of(app).settings["upload_progress.threshold"] == 1000


def not_a_store_factory(settings):
    return object()


def test_a_store_factory_returning_no_store_stops_start_up():
    with pytest.raises(ConfigurationError, match="upload_progress.store"):
        make_app({"upload_progress.store": "tests.test_functional.not_a_store_factory"})


def test_the_apps_execution_policy_is_wrapped():
    def my_policy(environ, router):
        environ["policy.seen"] = True
        with router.request_context(environ) as request:
            return router.invoke_request(request)

    app = make_app(configure=lambda config: config.set_execution_policy(my_policy))
    policy = app.registry.getUtility(IExecutionPolicy)
    assert isinstance(policy, UploadProgressPolicy)
    assert policy.inner is my_policy
    assert app.execution_policy is policy


def test_pyramid_retrys_policy_is_wrapped_and_its_copy_is_counted():
    def configure(config):
        config.include("pyramid_retry")

    testapp = webtest.TestApp(make_app(configure=configure))
    assert upload(testapp, upload_id="r1", size=3000).json == {"read": 3000}
    assert poll(testapp, "r1").json["received"] == 3000


def wsgi_call(app, body, path="/upload", query="X-Progress-ID=w1", **environ):
    """Call the app as a streaming server would: a non-seekable input."""

    class ServerInput:
        def __init__(self, data):
            self._data = io.BytesIO(data)

        def read(self, size=-1):
            return self._data.read(size)

        def readline(self, size=-1):
            return self._data.readline(size)

    env = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": ServerInput(body),
        "CONTENT_LENGTH": str(len(body)), "HTTP_X_USER": "alice", **environ,
    }
    statuses = []
    app_iter = app(env, lambda status, headers, exc_info=None: statuses.append(status))
    return statuses, app_iter


def streaming_view(request):
    """Answers while it reads the upload: the record ends only at close."""

    def body():
        for chunk in iter(lambda: request.body_file.read(100), b""):
            yield b"."

    return Response(app_iter=body())


def stream_configure(config):
    config.add_route("stream", "/stream")
    config.add_view(streaming_view, route_name="stream")


def test_the_record_ends_when_the_server_closes_the_response():
    app = make_app(configure=stream_configure)
    statuses, app_iter = wsgi_call(app, b"x" * 1000, path="/stream")
    store = app.registry.getUtility(IUploadProgressStore)
    assert store.get("w1", "alice").state == "uploading"
    assert b"".join(app_iter) == b"." * 10
    assert store.get("w1", "alice").received == 1000
    assert store.get("w1", "alice").state == "uploading"
    app_iter.close()
    assert store.get("w1", "alice").state == "done"


def test_a_response_closed_before_it_was_exhausted_still_ends_the_record():
    app = make_app(configure=stream_configure)
    _, app_iter = wsgi_call(app, b"x" * 1000, path="/stream")
    iterator = iter(app_iter)
    next(iterator)
    app_iter.close()
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    assert record.finished is not None
    assert record.state == "done"


def test_a_body_that_ends_early_is_a_disconnect():
    app = make_app()
    with pytest.raises(DisconnectionError):
        wsgi_call(app, b"x" * 500, CONTENT_LENGTH="1000")
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    assert record.state == "error"
    assert record.received == 500


def test_received_never_exceeds_the_content_length():
    app = make_app()
    _, app_iter = wsgi_call(app, b"x" * 1500, CONTENT_LENGTH="1000")
    app_iter.close()
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    assert record.received == record.size == 1000


def test_a_chunked_body_is_tracked_with_size_null():
    app = make_app()
    _, app_iter = wsgi_call(app, b"x" * 3000, CONTENT_LENGTH="",
                            HTTP_TRANSFER_ENCODING="chunked",
                            **{"wsgi.input_terminated": True})
    app_iter.close()
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    answer = render_upload(record, record.finished)
    assert (answer["size"], answer["percent"], answer["received"]) == (None, None, 3000)
    assert answer["state"] == "done"


def test_a_buffering_server_is_warned_about_once(caplog):
    app = make_app()
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        for _ in range(3):
            wsgi_call(app, b"x" * 10, SERVER_SOFTWARE="waitress")[1].close()
    warnings = [r for r in caplog.records if "read the whole request body" in r.message]
    assert len(warnings) == 1
    assert "waitress" in warnings[0].message


def test_a_streaming_server_is_not_warned_about(caplog):
    app = make_app()
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        wsgi_call(app, b"x" * 10, SERVER_SOFTWARE="gunicorn/27.0.1")[1].close()
    assert "read the whole request body" not in caplog.text


def test_an_in_memory_input_is_told_apart_as_buffered(caplog):
    app = make_app()
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        _, app_iter = wsgi_call(app, b"x" * 10, **{"wsgi.input": io.BytesIO(b"x" * 10)})
        app_iter.close()
    assert "read the whole request body" in caplog.text


def test_the_record_type_and_renderer_serve_a_custom_report_view():
    def custom_view(request):
        store = request.registry.getUtility(IUploadProgressStore)
        record: UploadRecord = store.get(request.matchdict["id"], None)
        return Response(json=dict(render_upload(record, record.finished), extra="mine"))

    def configure(config):
        config.add_route("custom", "/custom/{id}")
        config.add_view(custom_view, route_name="custom")

    app = webtest.TestApp(make_app(configure=configure))
    upload(app, upload_id="cv", user=None)
    answer = app.get("/custom/cv").json
    assert answer["extra"] == "mine"
    assert answer["state"] == "done"


def test_a_route_prefix_applies_to_the_report_view():
    with Configurator() as config:
        config.include("pyramid_upload_progress", route_prefix="/api")
        app = webtest.TestApp(config.make_wsgi_app())
    assert app.get("/api/upload-progress").json == {"uploads": []}


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
    app = make_app({"upload_progress.update_interval": update_interval},
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
    app_iter = make_app()(environ, lambda status, found, exc_info=None: headers.extend(found))
    try:
        body = b"".join(app_iter)
    finally:
        if hasattr(app_iter, "close"):
            app_iter.close()
    assert ("Content-Length", str(len(body))) in headers
