"""Upload ids: where the id comes from (the query parameter or the header,
its name matched as sent) and the id rule.

An id is 1 to 128 characters of ``A-Z a-z 0-9 - _ .``; anything else, an
empty value too, gets a 400 JSON error from the report view, and an upload
carrying a bad id is served untracked. Every answer at the report path is
JSON with ``Cache-Control: no-store``; a 500 only when the owner lookup
raises. Ids and owners are fuzzed on the report view and on uploads, with
every store.
"""
from __future__ import annotations

import itertools
import re
import urllib.parse
from urllib.parse import quote

import pytest
import webtest
from hypothesis import HealthCheck, given, settings, strategies as st

from pyramid_upload_progress import IUploadProgressStore
from pyramid_upload_progress.ids import BadUploadId, header_key, upload_id
from tests import plain_app
from tests.apps import basic_app, poll, upload
from tests.e2e.client import ALICE
from tests.store_kinds import STORES, store_settings


PARAM = "X-Progress-ID"


HEADER = "HTTP_X_PROGRESS_ID"


def from_query(value: str) -> str | None:
    return upload_id({"QUERY_STRING": f"{PARAM}={quote(value, safe='')}"},
                     PARAM, HEADER)


def from_header(value: str) -> str | None:
    return upload_id({HEADER: value}, PARAM, HEADER)


# -- where the id comes from --------------------------------------------------

def test_header_key_is_the_wsgi_environ_key_of_the_header():
    assert header_key("X-Progress-ID") == "HTTP_X_PROGRESS_ID"


def test_header_key_of_another_name():
    assert header_key("x-upload-id") == "HTTP_X_UPLOAD_ID"


def test_id_is_read_from_the_query_parameter():
    assert upload_id({"QUERY_STRING": "X-Progress-ID=abc123"}, PARAM, HEADER) == "abc123"


def test_id_is_read_from_the_header():
    assert upload_id({HEADER: "abc123"}, PARAM, HEADER) == "abc123"


def test_query_parameter_wins_over_the_header():
    environ = {"QUERY_STRING": "X-Progress-ID=from-query", HEADER: "from-header"}
    assert upload_id(environ, PARAM, HEADER) == "from-query"


def test_id_is_found_among_other_query_parameters():
    environ = {"QUERY_STRING": "a=1&X-Progress-ID=abc&b=2"}
    assert upload_id(environ, PARAM, HEADER) == "abc"


def test_request_without_an_id_has_none():
    assert upload_id({"QUERY_STRING": "a=1", "HTTP_X_OTHER": "abc"}, PARAM, HEADER) is None


def test_request_without_query_string_or_header_has_none():
    assert upload_id({}, PARAM, HEADER) is None


def test_parameter_whose_name_only_starts_with_the_param_is_not_the_id():
    environ = {"QUERY_STRING": "X-Progress-ID2=abc"}
    assert upload_id(environ, PARAM, HEADER) is None


def test_param_name_is_compared_exactly():
    environ = {"QUERY_STRING": "x-progress-id=abc"}
    assert upload_id(environ, PARAM, HEADER) is None


def test_param_mentioned_only_in_a_value_is_not_the_id():
    environ = {"QUERY_STRING": "next=X-Progress-ID", HEADER: "abc"}
    assert upload_id(environ, PARAM, HEADER) == "abc"


def test_another_param_name_is_honoured():
    environ = {"QUERY_STRING": "upload=abc"}
    assert upload_id(environ, "upload", header_key("upload")) == "abc"


# -- the id rule: 1 to 128 characters of A-Z a-z 0-9 - _ . --------------------

@pytest.mark.parametrize("value", [
    "a", "Z", "0", "-", "_", ".",
    "abc123", "ABC-def_ghi.jkl",
    "6f1c2b9e-2a4d-4c1e-9d5f-0a1b2c3d4e5f",
    "x" * 128,
])
@pytest.mark.parametrize("read", [from_query, from_header], ids=["query", "header"])
def test_valid_id_is_accepted(read, value):
    assert read(value) == value


@pytest.mark.parametrize("value", [
    "",
    "x" * 129,
    "a b",
    "a/b",
    "a%b",
    "a+b",
    "a:b",
    "a;b",
    "a?b",
    "a&b",
    "a=b",
    "caf\u00e9",
    "\u4e0a\u4f20",
    "abc\n",
    "ab\ncd",
    "abc\r",
    "a\tb",
    " abc",
    "abc\x00",
], ids=repr)
@pytest.mark.parametrize("read", [from_query, from_header], ids=["query", "header"])
def test_bad_id_is_refused(read, value):
    with pytest.raises(BadUploadId):
        read(value)


def test_empty_query_parameter_is_refused():
    with pytest.raises(BadUploadId):
        upload_id({"QUERY_STRING": "X-Progress-ID="}, PARAM, HEADER)


def test_query_parameter_without_a_value_is_refused():
    with pytest.raises(BadUploadId):
        upload_id({"QUERY_STRING": "X-Progress-ID"}, PARAM, HEADER)


def test_bad_query_id_is_refused_even_with_a_good_header():
    environ = {"QUERY_STRING": "X-Progress-ID=a%2Fb", HEADER: "good"}
    with pytest.raises(BadUploadId):
        upload_id(environ, PARAM, HEADER)


def test_raw_space_in_the_query_is_refused():
    with pytest.raises(BadUploadId):
        upload_id({"QUERY_STRING": "X-Progress-ID=a+b"}, PARAM, HEADER)


def test_bad_id_error_names_the_rule():
    with pytest.raises(BadUploadId, match="1 to 128") as raised:
        from_header("a/b")
    assert PARAM in str(raised.value)


def test_bad_id_error_is_a_value_error():
    assert issubclass(BadUploadId, ValueError)


def test_lookup_by_id_in_the_header(app):
    upload(app, upload_id="hdr")
    answer = app.get("/upload-progress", headers={"X-User": "alice",
                                                  "X-Progress-ID": "hdr"}).json
    assert answer["state"] == "done"


def test_an_upload_naming_its_id_in_the_header_is_tracked(app):
    app.post("/upload", b"x" * 10, headers={"X-User": "alice", "X-Progress-ID": "h1"})
    assert poll(app, "h1").json["received"] == 10


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


def test_the_id_param_setting_renames_parameter_and_header():
    app = webtest.TestApp(basic_app({"upload_progress.id_param": "upload_key"}))
    app.post("/upload?upload_key=k1", b"x", headers={"X-User": "alice"})
    app.post("/upload", b"x", headers={"X-User": "alice", "Upload-Key": "k2"})
    alice = {"X-User": "alice"}
    assert app.get("/upload-progress?upload_key=k1", headers=alice).json["state"] == "done"
    answer = app.get("/upload-progress", headers={**alice, "Upload-Key": "k2"}).json
    assert answer["state"] == "done"


# -- the id parameter's name is matched as sent -------------------------------

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


FUZZ = settings(max_examples=1000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


VALID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


APP = webtest.TestApp(plain_app.make_app({"upload_progress.threshold": "0"}))


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


# -- the same attacks with the Redis and SQLite stores ------------------------
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
    return {kind: webtest.TestApp(plain_app.make_app(store_settings(kind, **{
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
