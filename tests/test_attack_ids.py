"""Attack: upload ids fuzzed on the report view and on uploads.

DESIGN.md, "Upload ids": an id is 1 to 128 characters of ``A-Z a-z 0-9 -
_ .``; anything else, an empty value too, gets a 400 JSON error from the
report view, and an upload carrying a bad id is served untracked. Every
answer at the report path is JSON with ``Cache-Control: no-store``; a 500
only when the owner lookup raises.
"""
from __future__ import annotations

import itertools
import re
import urllib.parse

import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyramid_upload_progress import IUploadProgressStore
from tests.store_kinds import STORES, store_settings
from tests.plain_app import make_app
from tests.e2e.client import ALICE

FUZZ = settings(max_examples=1000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
VALID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")

APP = webtest.TestApp(make_app({"upload_progress.threshold": "0"}))

ID_TEXT = st.one_of(
    st.text(max_size=20),
    st.text(st.sampled_from("aZ09-_.~ %+/&=;#?\x00é€"), max_size=140),
    st.text("ab-_.", min_size=120, max_size=135),
    st.just(""), st.just("x" * 10000),
)
RAW_QUERY = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=60),
    st.lists(st.sampled_from(["X-Progress-ID=ok1", "X-Progress-ID=", "X-Progress-ID",
                              "X%2DProgress%2DID=bad!", "x-progress-id=bad!",
                              "X-Progress-ID=bad%21", "X-Progress-ID=%FF", "&", "=",
                              "X-Progress-ID=a+b", "X-Progress-ID=ok2"]),
             max_size=5).map("&".join),
)


def assert_json_answer(response):
    assert response.status_int != 500, response.body[:300]
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    return response.json


@FUZZ
@given(value=ID_TEXT)
def test_any_id_in_the_query_answers_json_400_or_starting(value):
    query = "X-Progress-ID=" + urllib.parse.quote(value, safe="")
    response = APP.get("/upload-progress?" + query, headers=ALICE, expect_errors=True)
    answer = assert_json_answer(response)
    if VALID.fullmatch(value):
        assert response.status_int == 200
        assert answer["id"] == value and answer["state"] == "starting"
    else:
        assert response.status_int == 400
        assert set(answer) == {"error"}


@settings(FUZZ, max_examples=500)
@given(value=st.text(st.characters(min_codepoint=0x20, max_codepoint=0xff), max_size=140))
def test_any_id_in_the_header_answers_json_400_or_starting(value):
    response = APP.get("/upload-progress", headers={**ALICE, "X-Progress-ID": value},
                       expect_errors=True)
    assert_json_answer(response)
    assert response.status_int == (200 if VALID.fullmatch(value) else 400)


@settings(FUZZ, max_examples=500)
@given(query=RAW_QUERY, method=st.sampled_from(["GET", "DELETE", "HEAD"]))
def test_any_query_string_is_answered_in_json_never_500(query, method):
    response = APP.request("/upload-progress?" + query, method=method, headers=ALICE,
                           expect_errors=True)
    assert response.status_int in (200, 400, 404)
    if method != "HEAD":
        assert_json_answer(response)


UPLOADS = settings(FUZZ, max_examples=300)


USERS = itertools.count()


def tracked_by(upload) -> int:
    """How many records an upload made in APP's store (each by a new user,
    so that a reused id replaces no record of the same user's)."""
    store = APP.app.registry.getUtility(IUploadProgressStore)
    before = len(store)
    upload()
    return len(store) - before


@UPLOADS
@given(value=ID_TEXT)
def test_an_upload_with_any_id_is_served_and_tracked_only_with_a_good_one(value):
    query = "X-Progress-ID=" + urllib.parse.quote(value, safe="")

    def upload():
        headers = {"X-User": f"uploader{next(USERS)}"}
        assert APP.post("/upload?" + query, b"x" * 100, headers=headers).json["read"] == 100

    assert tracked_by(upload) == (1 if VALID.fullmatch(value) else 0)


@UPLOADS
@given(query=RAW_QUERY)
def test_an_upload_with_any_query_string_is_served(query):
    assert APP.post("/upload?" + query, b"y" * 10, headers=ALICE).json["read"] == 10


def test_an_id_of_128_characters_is_good_and_129_bad():
    ok = APP.get("/upload-progress?X-Progress-ID=" + "a" * 128, headers=ALICE)
    assert ok.json["state"] == "starting"
    APP.get("/upload-progress?X-Progress-ID=" + "a" * 129, headers=ALICE, status=400)


def test_a_percent_encoded_parameter_name_is_never_the_id():
    """ids.upload_id: "the parameter's name is matched as sent, not
    percent-decoded" - whatever else the query string holds."""
    alone = APP.get("/upload-progress?X%2DProgress%2DID=abc", headers=ALICE)
    assert "uploads" in alone.json
    beside = APP.get("/upload-progress?note=X-Progress-ID&X%2DProgress%2DID=abc",
                     headers=ALICE)
    assert beside.json == alone.json


# -- the same attacks with the Redis and SQLite stores --------------------------
#
# The Redis store builds key names from the upload id (``u:{<id>}``) and the
# owner (``o:<owner>``); the SQLite store compares them in SQL. Ids that
# break the rule never reach a store (400, or served untracked); owners are
# whatever the owner callable says, so they are fuzzed here too: glob and
# key-schema characters, the prefix itself, NUL, unicode, the empty string.

ODD_OWNERS = ["*", "?", "[a-z]", "\\*", ":", "o:", "o:alice", "id:a", "u:", "alice*",
              "upload_progress:", "upload_progress:o:alice", "test-:o:alice", "alice",
              "ALICE", "alice ", " alice", "", "\x00", "alice\x00", "é", "e\u0301",
              "\u202ealice", "%2A", "a" * 5000]
OWNERS = st.one_of(st.none(), st.sampled_from(ODD_OWNERS), st.text(max_size=12))
OPERATIONS = st.lists(st.tuples(st.sampled_from(["upload", "get", "list", "delete"]),
                                OWNERS, st.sampled_from(["a", "A", "u", "o", "id", "-", ".",
                                                         "_", "a" * 128])),
                      min_size=1, max_size=10)


def owner_from_header(request):
    """The owner: the ``X-Owner`` header percent-decoded (any text), or None
    without the header."""
    value = request.headers.get("X-Owner")
    return None if value is None else urllib.parse.unquote(value, errors="strict")


def owner_header(owner):
    return {} if owner is None else {"X-Owner": urllib.parse.quote(owner, safe="")}


@pytest.fixture(scope="module")
def store_apps():
    """One app per store, the owner from ``X-Owner``; a test keeps apart
    what it writes by a fresh prefix on its ids and owners."""
    return {kind: webtest.TestApp(make_app(store_settings(kind, **{
        "upload_progress.threshold": "0",
        "upload_progress.owner": f"{__name__}.owner_from_header"})))
        for kind in STORES}


EXAMPLES = itertools.count()


@settings(FUZZ, max_examples=200)
@given(value=ID_TEXT, method=st.sampled_from(["GET", "DELETE"]),
       where=st.sampled_from(["query", "header"]))
def test_any_id_answers_json_400_starting_or_404_with_every_store(store_apps, value,
                                                                  method, where):
    for kind, app in store_apps.items():
        if where == "query":
            path = "/upload-progress?X-Progress-ID=" + urllib.parse.quote(value, safe="")
            headers = owner_header("alice")
        else:
            path = "/upload-progress"
            headers = {**owner_header("alice"),
                       "X-Progress-ID": value.encode("utf-8").decode("latin-1")}
        response = app.request(path, method=method, headers=headers, expect_errors=True)
        answer = assert_json_answer(response)
        good = VALID.fullmatch(value) is not None
        if not good:
            assert response.status_int == 400, kind
        elif method == "GET":
            assert (response.status_int, answer["state"]) == (200, "starting"), kind
        else:
            assert response.status_int == 404, kind


def normal(answer):
    """An answer without its times, which differ from store to store."""
    if "uploads" in answer:
        return {"uploads": [normal(upload) for upload in answer["uploads"]]}
    return {name: value for name, value in answer.items()
            if name not in ("started", "finished", "rate", "eta")}


@settings(FUZZ, max_examples=100)
@given(operations=OPERATIONS)
def test_odd_owners_and_ids_answer_alike_with_every_store_and_never_cross(store_apps,
                                                                          operations):
    """Uploads, polls, listings and deletes by fuzzed owners: each store
    answers as the memory store does, and no answer shows an upload of an
    owner other than the poller (an upload's size says whose it is)."""
    example = f"e{next(EXAMPLES)}"
    uploader = {}
    answers = {kind: [] for kind in store_apps}
    for turn, (operation, owner, upload_id) in enumerate(operations):
        upload_id = f"{example}-{upload_id}"[:128]
        owner = None if owner is None else f"{example}|{owner}"
        headers = owner_header(owner)
        for kind, app in store_apps.items():
            if operation == "upload":
                size = turn + 1
                uploader[size] = owner
                response = app.post(f"/upload?X-Progress-ID={upload_id}", b"x" * size,
                                    headers=headers)
            else:
                path = "/upload-progress" + (
                    "" if operation == "list" else f"?X-Progress-ID={upload_id}")
                response = app.request(path, method="DELETE" if operation == "delete"
                                       else "GET", headers=headers, expect_errors=True)
                shown = response.json.get("uploads", [response.json])
                crossed = [u for u in shown if u.get("size")
                           and uploader[u["size"]] not in (owner, None)]
                assert not crossed, (kind, operation, owner, crossed)
                if operation == "list":
                    assert all(uploader[u["size"]] == owner for u in shown), kind
            assert response.status_int != 500, (kind, response.body[:300])
            answers[kind].append((response.status_int, normal(response.json)))
    for kind in store_apps:
        assert answers[kind] == answers["memory"], kind
