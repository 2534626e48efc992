"""Client-chosen upload ids: query parameter or header, and the id rule."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from pyramid_upload_progress.ids import BadUploadId, header_key, upload_id

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


# -- the id rule: 1 to 128 characters of A-Z a-z 0-9 - _ . ----------------------

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
