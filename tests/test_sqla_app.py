"""The add-on in Pyramid's usual app shape, through WebTest.

``tests/sqla_app.py`` is an app as Pyramid's SQLAlchemy cookiecutter makes
it: pyramid_tm with the explicit transaction manager, pyramid_retry with 3
attempts, a SQLAlchemy session joined to the transaction, and a security
policy that loads the user through that session, so it can be asked only
inside the transaction. These tests check that the app works unchanged with
the add-on, and that the add-on keeps its contract in it: whose upload it is,
one record for a retried request, the end state. Each runs with and without
pyramid_debugtoolbar (as in the cookiecutter's development.ini) where the
toolbar, which reads the body and intercepts exceptions above pyramid_tm,
could make a difference.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

import pytest
import webtest

from tests.apps import poll
from tests.sqla_app import main

REMOTE = {"REMOTE_ADDR": "127.0.0.1"}  # where the toolbar shows itself
SIZE = 200_000
TOOLBAR = {"pyramid.includes": "pyramid_debugtoolbar", "debugtoolbar.hosts": "127.0.0.1 ::1"}
VARIANTS = {"plain": {}, "toolbar": TOOLBAR}
ADDON_LOGGER = "pyramid_upload_progress"


def make_testapp(tmp_path_factory, **settings) -> webtest.TestApp:
    db = tmp_path_factory.mktemp("sqla") / "app.sqlite"
    settings = {"sqlalchemy.url": f"sqlite:///{db}", "upload_progress.threshold": "0",
                **settings}
    return webtest.TestApp(main({}, **settings), extra_environ=REMOTE)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request):
    return request.param


@pytest.fixture(scope="module")
def app(variant, tmp_path_factory):
    """The app with the add-on, in the variant (plain or with the toolbar)."""
    return make_testapp(tmp_path_factory, **VARIANTS[variant])


@pytest.fixture(scope="module")
def app_without_addon(variant, tmp_path_factory):
    return make_testapp(tmp_path_factory, **VARIANTS[variant],
                        **{"sqla_app.upload_progress": "false"})


@pytest.fixture
def addon_errors(caplog):
    """The add-on's log records of level ERROR and above, as they come."""
    caplog.set_level(logging.INFO, logger=ADDON_LOGGER)
    return lambda: [r for r in caplog.records
                    if r.name.startswith(ADDON_LOGGER) and r.levelno >= logging.ERROR]


def new_id() -> str:
    return uuid.uuid4().hex


def body(size: int = SIZE) -> bytes:
    return bytes(range(251)) * (size // 251) + bytes(size % 251)


def user(userid) -> dict[str, str]:
    return {} if userid is None else {"X-User-Id": str(userid)}


def upload(app, path="/upload", *, pid=None, userid=1, data=None, status=200, **kw):
    headers = user(userid)
    if pid is not None:
        headers["X-Progress-ID"] = pid
    return app.post(path, body() if data is None else data, headers=headers,
                    content_type="application/octet-stream", status=status, **kw)


def listing(app, userid=1):
    return app.get("/upload-progress", headers=user(userid)).json["uploads"]


def listed(app, pid, userid=1):
    return [u for u in listing(app, userid) if u["id"] == pid]


# --- the app's shape, without the add-on ----------------------------------


@pytest.mark.parametrize(("probe", "expected"), [
    ("over_tm", {"error": "transaction.interfaces.NoTransaction"}),
    ("under_tm", {"userid": 1}),
])
def test_the_security_policy_works_only_inside_the_transaction(tmp_path_factory, probe,
                                                                  expected):
    app = make_testapp(tmp_path_factory, **{"sqla_app.upload_progress": "false",
                                            "sqla_app.probe": probe})
    assert app.get("/probe", headers=user(1)).json == expected


@pytest.mark.parametrize("addon", ["true", "false"])
def test_a_raising_policy_fails_the_request_in_pyramid_tm_itself(tmp_path_factory, addon):
    # pyramid_tm asks the policy first (tm.annotate_user, on by default), so
    # an owner lookup that raises matters only once that is turned off.
    app = make_testapp(tmp_path_factory, **{"sqla_app.upload_progress": addon})
    with pytest.raises(ValueError, match="invalid literal for int"):
        upload(app, pid=new_id(), userid="not-a-number")


# --- whose upload it is ---------------------------------------------------


@pytest.mark.parametrize("form", [False, True], ids=["raw", "multipart"])
def test_an_upload_is_done_in_its_owners_listing(app, addon_errors, form):
    pid = new_id()
    headers = {**user(1), "X-Progress-ID": pid}
    if form:
        response = app.post("/upload", headers=headers,
                            upload_files=[("file", "f.bin", body())])
    else:
        response = upload(app, pid=pid)
    assert response.json["bytes"] == SIZE
    size = int(response.request.headers["Content-Length"])

    [record] = listed(app, pid, userid=1)
    assert record["state"] == "done"
    assert record["received"] == record["size"] == size
    assert record["status"] == 200
    assert record["path"] == "/upload"
    assert addon_errors() == []


def test_the_owner_answers_done_by_id(app):
    pid = new_id()
    upload(app, pid=pid)
    answer = poll(app, pid, headers=user(1)).json
    assert (answer["id"], answer["state"], answer["received"]) == (pid, "done", SIZE)


def test_another_users_listing_lacks_the_upload(app):
    pid = new_id()
    upload(app, pid=pid, userid=1)
    assert listed(app, pid, userid=2) == []


def test_another_users_poll_by_id_answers_starting(app):
    pid = new_id()
    upload(app, pid=pid, userid=1)
    answer = poll(app, pid, headers=user(2)).json
    assert answer["state"] == "starting"
    assert (answer["received"], answer["size"]) == (0, None)


def test_an_anonymous_listing_is_empty(app):
    upload(app, pid=new_id(), userid=1)
    upload(app, pid=new_id(), userid=None)
    assert app.get("/upload-progress").json == {"uploads": []}


def test_an_anonymous_upload_is_visible_by_its_id_alone(app):
    pid = new_id()
    upload(app, pid=pid, userid=None)
    assert poll(app, pid, headers=user(2)).json["state"] == "done"
    assert listed(app, pid, userid=1) == listed(app, pid, userid=2) == []


def test_the_policy_is_asked_inside_the_transaction(app, addon_errors):
    # Had the add-on asked from above pyramid_tm, the policy would have
    # raised NoTransaction (see the probe test): the upload would have gone
    # untracked, ownerless, with an error logged.
    pid = new_id()
    upload(app, pid=pid, userid=2)
    assert [r["state"] for r in listed(app, pid, userid=2)] == ["done"]
    assert addon_errors() == []


# --- one upload, one record, one end ----------------------------------------


def test_a_retried_upload_is_one_done_record(app, addon_errors):
    pid = new_id()
    response = upload(app, "/upload-retry", pid=pid)

    seen = response.json
    assert seen["attempt"] == 1  # it really was retried
    assert seen["first_attempt"] == {"bytes": SIZE, "sha256": seen["sha256"]}
    assert seen["sha256"] == hashlib.sha256(body()).hexdigest()
    [record] = listed(app, pid)
    assert record["state"] == "done"
    assert record["received"] == record["size"] == SIZE
    assert record["status"] == 200
    assert addon_errors() == []


def test_a_retried_upload_writes_once(app):
    # pyramid_tm aborted the first attempt's row: the app is intact.
    pid = new_id()
    upload(app, "/upload-retry", pid=pid)
    assert app.get("/upload-count", params={"id": pid}).json == {"rows": 1, "sizes": [SIZE]}


def test_an_upload_whose_view_raises_ends_in_error(app, variant):
    pid = new_id()
    if variant == "toolbar":  # the toolbar renders its debugger page
        upload(app, "/upload-fail", pid=pid, status=500)
    else:
        with pytest.raises(RuntimeError, match="the view failed"):
            upload(app, "/upload-fail", pid=pid)
    [record] = listed(app, pid)
    assert record["state"] == "error"
    assert record["received"] == SIZE
    assert record["status"] == (500 if variant == "toolbar" else None)


# --- the app, unchanged -------------------------------------------------------


def responses(app):
    """What the app answers to a run of requests, for comparison."""
    answers = []

    def keep(response):
        answers.append((response.request.path, response.status,
                        response.content_type, response.json))

    keep(app.get("/", headers=user(1)))
    keep(app.get("/"))
    keep(upload(app, pid="same-1"))
    keep(upload(app, userid=None))
    keep(upload(app, "/upload-retry", pid="same-2", userid=2))
    keep(app.post("/upload", headers=user(1), upload_files=[("file", "f.bin", body(5000))]))
    keep(app.get("/upload-count", params={"id": "same-2"}))
    keep(app.get("/nowhere", status=404))
    return answers


def test_the_app_answers_the_same_with_the_addon(app_without_addon, tmp_path_factory,
                                                  variant):
    with_addon = make_testapp(tmp_path_factory, **VARIANTS[variant])
    assert responses(with_addon) == responses(app_without_addon)


# --- an owner lookup that raises ----------------------------------------------


@pytest.fixture(scope="module")
def app_without_annotation(variant, tmp_path_factory):
    return make_testapp(tmp_path_factory, **VARIANTS[variant],
                        **{"tm.annotate_user": "false"})


def test_an_upload_whose_owner_lookup_raises_is_served_untracked(app_without_annotation,
                                                                   caplog):
    app = app_without_annotation
    caplog.set_level(logging.INFO, logger=ADDON_LOGGER)
    pid = new_id()
    response = upload(app, pid=pid, userid="not-a-number")

    assert response.status_int == 200
    assert response.json["bytes"] == SIZE
    assert poll(app, pid, headers=user(None)).json["state"] == "starting"
    assert poll(app, pid, headers=user(1)).json["state"] == "starting"
    [logged] = [r for r in caplog.records if r.name.startswith(ADDON_LOGGER)]
    assert logged.levelno == logging.ERROR
    assert "owner" in logged.getMessage()
    assert isinstance(logged.exc_info[1], ValueError)
