"""The report view: what it answers, where, and to whom.

Every answer is JSON, never cached, with exactly the contract's fields; the
settings move and guard the view, and a catch-all route added later does
not hide it. Secrets of the upload and of the poll never show: ``path`` is
the request path, never the query string (it may hold secrets), and no
other data from the request environment is ever exposed. Secrets go in
the query strings, headers and cookies of uploads and of polls; every
answer at the report path (listing, by id, starting, 400, 403, 404, 405,
500, 503, DELETE, and the 409 of a cancelled upload) is scanned, body and
headers. With every store: the memory store, Redis and SQLite (whose
records leave the process: what they hold is scanned too, and a Redis
whose URL carries a password fails without showing it).
"""
from __future__ import annotations

import logging

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.response import Response
from zope.interface import implementer

from pyramid_upload_progress import IUploadProgressStore, UploadRecord, render_upload
from tests.app_clock import give_clock
from tests.apps import (
    WAIT,
    Background,
    GatedInput,
    basic_app,
    make_app,
    poll,
    read_all,
    serve_upload,
    upload,
)
from tests.e2e.servers import free_port
from tests.store_kinds import (
    STORES,
    each_store,
    redis_dump,
    sqlite_rows,
    store_settings,
    within_update_interval,
)


CONTRACT_FIELDS = {"id", "state", "received", "size", "percent", "rate", "eta",
                   "started", "finished", "path", "status", "cancelled", "files",
                   "stage"}


def test_an_unknown_id_answers_starting_with_every_field(app):
    answer = poll(app, "nope").json
    assert set(answer) == CONTRACT_FIELDS
    assert answer["state"] == "starting"


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


def test_the_path_setting_moves_the_view():
    app = webtest.TestApp(basic_app({"upload_progress.path": "/api/progress"}))
    app.get("/upload-progress", status=404)
    assert app.get("/api/progress").json == {"uploads": []}


def test_the_permission_setting_guards_the_view_with_a_json_403():
    app = webtest.TestApp(basic_app({"upload_progress.permission": "view-progress"}))
    res = app.get("/upload-progress", status=403)
    assert res.json == {"error": "forbidden"}
    assert res.headers["Cache-Control"] == "no-store"
    assert app.get("/upload-progress", headers={"X-User": "alice"}).json == {"uploads": []}


def test_the_forbidden_view_is_only_the_report_views():
    def configure(config):
        config.add_route("guarded", "/guarded")
        config.add_view(lambda r: Response("ok"), route_name="guarded",
                        permission="nobody-has-it")

    app = webtest.TestApp(basic_app({"upload_progress.permission": "view-progress"},
                                   configure=configure))
    res = app.get("/guarded", status=403)
    assert res.content_type != "application/json"


def test_the_record_type_and_renderer_serve_a_custom_report_view():
    def custom_view(request):
        store = request.registry.getUtility(IUploadProgressStore)
        record: UploadRecord = store.get(request.matchdict["id"], None)
        return Response(json=dict(render_upload(record, record.finished), extra="mine"))

    def configure(config):
        config.add_route("custom", "/custom/{id}")
        config.add_view(custom_view, route_name="custom")

    app = webtest.TestApp(basic_app(configure=configure))
    upload(app, upload_id="cv", user=None)
    answer = app.get("/custom/cv").json
    assert answer["extra"] == "mine"
    assert answer["state"] == "done"


def test_a_route_prefix_applies_to_the_report_view():
    with Configurator() as config:
        config.include("pyramid_upload_progress", route_prefix="/api")
        app = webtest.TestApp(config.make_wsgi_app())
    assert app.get("/api/upload-progress").json == {"uploads": []}


# -- the report route keeps its place in the app's route order ----------------

def test_a_catch_all_route_added_after_the_include_does_not_hide_the_report():
    def page(request):
        return Response("a page")

    def routes(config):
        config.add_route("page", "/{name}")
        config.add_view(page, route_name="page")

    app = webtest.TestApp(basic_app(configure=routes))
    res = poll(app)
    assert res.content_type == "application/json"
    assert res.json == {"uploads": []}


# -- every answer at the report path is JSON ----------------------------------

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
    app = webtest.TestApp(basic_app({"upload_progress.owner": f"{__name__}.owner_that_raises"}))
    with caplog.at_level(logging.ERROR):
        res = poll(app, status=500)
    assert res.content_type == "application/json"
    assert res.headers["Cache-Control"] == "no-store"
    assert "error" in res.json
    assert "the session backend is down" in caplog.text


def test_the_apps_default_permission_answers_json_403():
    app = webtest.TestApp(basic_app(configure=lambda config: config.set_default_permission("view")))
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


SECRETS = [f"S3CR3T{n}x" for n in range(12)]


UPLOAD_HEADERS = {
    "X-User": "alice",
    "Authorization": f"Bearer {SECRETS[0]}",
    "X-Api-Key": SECRETS[1],
    "Cookie": f"session={SECRETS[2]}; csrf={SECRETS[3]}",
    "Referer": f"http://127.0.0.1/form?token={SECRETS[4]}",
}


UPLOAD_QUERY = f"token={SECRETS[5]}&X-Progress-ID=sec1&sig={SECRETS[6]}"


POLL_HEADERS = {
    "X-User": "alice",
    "Authorization": f"Basic {SECRETS[7]}",
    "Cookie": f"session={SECRETS[8]}",
}


POLL_SECRET = f"token={SECRETS[9]}"


def owner_that_fails(request):
    raise RuntimeError(f"lookup failed for {SECRETS[10]}")


@implementer(IUploadProgressStore)
class DownStore:
    throttled = False

    def _down(self, *args):
        raise ConnectionError(f"store down, password={SECRETS[11]}")

    start = update = set_owner = stage = finish = discard = get = list = cancel = _down


def assert_no_secret(response):
    text = response.body.decode("latin-1") + repr(response.headerlist)
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, (response.status, text[:500])


@pytest.fixture(scope="module", params=STORES)
def stored(request):
    """(the app, its settings) with one finished upload full of secrets."""
    settings = store_settings(request.param, **{"upload_progress.permission": "view"})
    app = make_app({"read": read_all}, settings)
    serve_upload(app, b"x" * 5000, "/read", headers=UPLOAD_HEADERS, query=UPLOAD_QUERY)
    return app, settings


@pytest.fixture(scope="module")
def secret_app(stored):
    """The app of ``stored``."""
    return stored[0]


@pytest.mark.parametrize("path,method,headers,status", [
    (f"/upload-progress?{POLL_SECRET}", "GET", POLL_HEADERS, 200),
    (f"/upload-progress?X-Progress-ID=sec1&{POLL_SECRET}", "GET", POLL_HEADERS, 200),
    (f"/upload-progress?X-Progress-ID=sec1&{POLL_SECRET}", "HEAD", POLL_HEADERS, 200),
    (f"/upload-progress?X-Progress-ID=unknown&{POLL_SECRET}", "GET", POLL_HEADERS, 200),
    (f"/upload-progress?X-Progress-ID={SECRETS[9]}!&{POLL_SECRET}", "GET", POLL_HEADERS, 400),
    (f"/upload-progress?X-Progress-ID=sec1&{POLL_SECRET}", "GET",
     {"Cookie": POLL_HEADERS["Cookie"]}, 403),
    (f"/upload-progress?X-Progress-ID=sec1&{POLL_SECRET}", "DELETE", POLL_HEADERS, 404),
    (f"/upload-progress?{POLL_SECRET}", "DELETE", POLL_HEADERS, 400),
    (f"/upload-progress?X-Progress-ID=sec1&{POLL_SECRET}", "POST", POLL_HEADERS, 405),
    (f"/upload-progress?X-Progress-ID=sec1&{POLL_SECRET}", "PUT", POLL_HEADERS, 405),
])
def test_no_report_answer_shows_a_secret(secret_app, path, method, headers, status):
    response = webtest.TestApp(secret_app).request(path, method=method, headers=headers,
                                            expect_errors=True)
    assert response.status_int == status
    assert_no_secret(response)


def test_the_uploads_record_holds_only_its_path(secret_app):
    answer = webtest.TestApp(secret_app).get("/upload-progress?X-Progress-ID=sec1",
                                      headers=POLL_HEADERS).json
    assert answer["path"] == "/read" and answer["state"] == "done"


def test_a_failing_owner_lookup_answers_500_without_a_secret():
    app = make_app({"read": read_all},
                   {"upload_progress.owner": f"{__name__}.owner_that_fails"})
    response = webtest.TestApp(app).get(f"/upload-progress?{POLL_SECRET}",
                                        headers=POLL_HEADERS, status=500)
    assert_no_secret(response)


def test_a_store_that_is_down_answers_503_without_a_secret():
    app = make_app({"read": read_all}, store=DownStore())
    for path in (f"/upload-progress?{POLL_SECRET}",
                 f"/upload-progress?X-Progress-ID=sec1&{POLL_SECRET}"):
        response = webtest.TestApp(app).get(path, headers=POLL_HEADERS, status=503)
        assert_no_secret(response)


def test_the_store_holds_no_secret(stored):
    """What a store keeps may leave the process (another host, a Redis dump,
    a memory dump): it holds the path, never the query string, headers or
    cookies."""
    app, settings = stored
    kind = settings.get("upload_progress.store", "memory")
    if kind == "memory":
        held = repr(vars(app.registry.getUtility(IUploadProgressStore)))
    else:
        held = redis_dump(settings) if kind == "redis" else repr(sqlite_rows(settings))
    assert "/read" in held
    assert not [secret for secret in SECRETS if secret in held], held


@pytest.mark.parametrize("running", [True, False], ids=["redis-up", "no-server"])
def test_a_redis_urls_password_never_shows(running):
    """The password of ``upload_progress.redis.url`` never shows: not when
    Redis takes it (a default user without a password takes any), not in
    the 503s when nothing listens at the URL."""
    from tests.redis_server import session_server

    port = session_server().port if running else free_port()
    app = make_app({"read": read_all}, {
        "upload_progress.store": "redis",
        "upload_progress.redis.url": f"redis://:{SECRETS[11]}@127.0.0.1:{port}/0"})
    upload = serve_upload(app, b"x" * 5000, "/read", headers=UPLOAD_HEADERS,
                          query=UPLOAD_QUERY)
    assert upload.json == {"read": 5000}
    for path in (f"/upload-progress?{POLL_SECRET}",
                 f"/upload-progress?X-Progress-ID=sec1&{POLL_SECRET}"):
        for method in ("GET", "DELETE"):
            response = webtest.TestApp(app).request(path, method=method,
                                                    headers=POLL_HEADERS,
                                                    expect_errors=True)
            assert response.status_int in ((200, 400, 404) if running else (400, 503))
            assert_no_secret(response)


@each_store()
def test_a_cancel_and_the_cancelled_uploads_409_show_no_secret(kind):
    app = make_app({"read": read_all}, store_settings(kind))
    clock = give_clock(app)
    raw = GatedInput(b"u" * 100_000, gates=(2,))
    thread = Background(lambda: serve_upload(app, None, "/read", raw=raw,
                                             headers=UPLOAD_HEADERS, query=UPLOAD_QUERY))
    thread.start()
    assert raw.waiting.wait(WAIT)
    try:
        cancelled = webtest.TestApp(app).delete(
            f"/upload-progress?X-Progress-ID=sec1&{POLL_SECRET}", headers=POLL_HEADERS)
        within_update_interval(clock)
    finally:
        raw.go.set()
    assert cancelled.json["cancelled"] is True
    assert_no_secret(cancelled)
    response = thread.result()
    assert response.status_int == 409
    assert_no_secret(response)
