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

import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyramid_upload_progress import IUploadProgressStore
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
