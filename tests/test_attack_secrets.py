"""Attack: secrets of the upload and of the poll never show in an answer.

DESIGN.md: ``path`` is "the request path (never the query string: it may
hold secrets)", and "No other data from the request environment is ever
exposed". Secrets go in the query strings, headers and cookies of uploads
and of polls; every answer at the report path - listing, by id, starting,
400, 403, 404, 405, 500, 503, DELETE, and the 409 of a cancelled upload -
is scanned, body and headers. With every store: the memory store, Redis
and SQLite (whose records leave the process: what they hold is scanned
too, and a Redis whose URL carries a password fails without showing it).
"""
from __future__ import annotations

import pytest
import webtest
from zope.interface import implementer

from pyramid_upload_progress import IUploadProgressStore
from tests.app_clock import give_clock
from tests.attack_app import Background, GatedInput, WAIT, make_app, serve_upload
from tests.attack_stores import (
    STORES,
    each_store,
    redis_dump,
    sqlite_rows,
    store_settings,
)
from tests.e2e.servers import free_port
from tests.test_attack_cancel import read_all, within_update_interval

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
def app(stored):
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
def test_no_report_answer_shows_a_secret(app, path, method, headers, status):
    response = webtest.TestApp(app).request(path, method=method, headers=headers,
                                            expect_errors=True)
    assert response.status_int == status
    assert_no_secret(response)


def test_the_uploads_record_holds_only_its_path(app):
    answer = webtest.TestApp(app).get("/upload-progress?X-Progress-ID=sec1",
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
