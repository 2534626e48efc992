"""Per-file progress: ``files`` of a multipart body.

``files`` lists the file parts in body order, as the application reads
them, each with its bytes and ``done``; parts with an empty filename are
not listed; at most 1000. The scan sees the bytes as they pass through the
counting stream, so how the application happens to cut its reads (1 byte,
odd sizes, 64 KiB) must change nothing, and a body that breaks the format
is served as it is, with ``files`` as far as the scan could tell.

The scanner reads a part's ``Content-Disposition`` as WebOb's
``request.POST`` does, and nothing it reads can break an upload: a file is
listed with its ``"filename": "<as sent>"``, only an empty filename is not
listed, and tracking never refuses an upload. The scanner's answer is
checked against what the application itself receives from WebOb, on
crafted headers, on random headers (``part_names`` never raises, and agrees
with WebOb's parser) and on random forms read in random splits.

``MULTIPART_FUZZ_EXAMPLES`` (2000 by default; the slower tests run a
quarter of it) raises the example counts for a long local run.
"""
from __future__ import annotations

import http.client
import json
import os
import re
from email.feedparser import FeedParser

import pytest
import webob
import webtest
from hypothesis import HealthCheck, given, settings, strategies as st
from pyramid.response import Response
from webob.compat import parse_header

from pyramid_upload_progress import IUploadProgressStore, MemoryUploadProgressStore, multipart
from pyramid_upload_progress.owner import as_text, authenticated_userid
from pyramid_upload_progress.health import StoreHealth
from pyramid_upload_progress.timing import SYSTEM_CLOCK, Throttle
from pyramid_upload_progress.tracking import TrackedUpload
from tests.apps import basic_app, poll, wsgi_call
from tests.e2e.client import ALICE, get_json
from tests.e2e.servers import serve
from tests.forms import content_type_for, disposition, form
from tests.server_inputs import ServerInput


FIELDS_BOUNDARY = "b0undary-7f3a"


def fields_form(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body of (field, filename, content) parts."""
    return form(FIELDS_BOUNDARY, [(disposition(field, filename), content)
                                  for field, filename, content in parts])


FIELDS_CONTENT_TYPE = content_type_for(FIELDS_BOUNDARY)


# -- per-file progress --------------------------------------------------------

def field_names(request):
    return Response(json=sorted(k for k in request.POST))


def field_names_app(**settings):
    return basic_app(settings, configure=lambda config: (
        config.add_route("form", "/form"), config.add_view(field_names, route_name="form")))


def test_a_multipart_upload_lists_its_file_parts_in_body_order():
    body = fields_form(("title", None, b"holiday"), ("photo", "a.jpg", b"A" * 3000),
                     ("note", None, b"x"), ("empty", "", b""), ("scan", "b.pdf", b"B" * 10))
    app = webtest.TestApp(field_names_app())
    app.request("/form?X-Progress-ID=m1", method="POST", body=body,
                headers={"Content-Type": FIELDS_CONTENT_TYPE, "X-User": "alice"})
    assert poll(app, "m1").json["files"] == [
        {"field": "photo", "filename": "a.jpg", "received": 3000, "done": True},
        {"field": "scan", "filename": "b.pdf", "received": 10, "done": True},
    ]


def test_a_body_that_is_not_multipart_has_no_files():
    app = webtest.TestApp(basic_app())
    app.post("/upload?X-Progress-ID=n1", b"x" * 5000, headers={"X-User": "alice"})
    assert poll(app, "n1").json["files"] is None


@pytest.mark.parametrize("piece", [1, 7, 100, 65536])
def test_file_parts_are_the_same_whatever_the_size_of_the_reads(piece):
    body = fields_form(("a", "one.bin", b"\r\n--b0undar" * 50), ("b", "två.txt", b"z" * 999))
    seen = []

    def read_in_pieces(request):
        while request.body_file_raw.read(piece):
            pass
        seen.append(request.upload_progress)
        return Response("ok")

    app = basic_app(configure=lambda config: (
        config.add_route("pieces", "/pieces"), config.add_view(read_in_pieces, route_name="pieces")))
    statuses, app_iter = wsgi_call(app, body, path="/pieces", CONTENT_TYPE=FIELDS_CONTENT_TYPE)
    app_iter.close()
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    assert record.files == [
        {"field": "a", "filename": "one.bin", "received": 550, "done": True},
        {"field": "b", "filename": "två.txt", "received": 999, "done": True},
    ]


def test_a_poll_shows_the_first_file_growing_then_the_second():
    body = fields_form(("a", "first.bin", b"1" * 4000), ("b", "second.bin", b"2" * 4000))
    snapshots = []

    def read_and_look(request):
        store = request.registry.getUtility(IUploadProgressStore)
        while request.body_file_raw.read(1000):
            snapshots.append(store.get("w1", "alice").files)
        return Response("ok")

    app = basic_app(configure=lambda config: (
        config.add_route("look", "/look"), config.add_view(read_and_look, route_name="look")))
    statuses, app_iter = wsgi_call(app, body, path="/look", CONTENT_TYPE=FIELDS_CONTENT_TYPE)
    app_iter.close()
    first_only = [s for s in snapshots if len(s) == 1]
    assert len({s[0]["received"] for s in first_only}) >= 3
    assert [s[0]["received"] for s in first_only] == sorted(s[0]["received"] for s in first_only)
    assert snapshots[-1] == [
        {"field": "a", "filename": "first.bin", "received": 4000, "done": True},
        {"field": "b", "filename": "second.bin", "received": 4000, "done": True},
    ]


ATTACK = settings(max_examples=200, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?"


READ_SIZES = st.one_of(
    st.sampled_from([[1], [2], [3], [7], [64], [65536]]),
    st.lists(st.integers(1, 97), min_size=1, max_size=8),
)


def read_through_tracking(body: bytes, content_type: str, sizes: list[int]):
    """Read ``body`` through a tracked upload in reads of ``sizes`` (cycled);
    return the bytes the application got and the upload's ``files``."""
    store = MemoryUploadProgressStore()
    upload = TrackedUpload(store, StoreHealth(), ServerInput(body), None, "/upload",
                           len(body), multipart.boundary(content_type),
                           as_text(authenticated_userid),
                           Throttle(False, 0.0, SYSTEM_CLOCK.monotonic), SYSTEM_CLOCK)
    upload.key = store.start(None, "/upload", len(body), upload)
    got = []
    turn = 0
    while data := upload.input.read(sizes[turn % len(sizes)]):
        got.append(data)
        turn += 1
    upload.finish(200, False)
    return b"".join(got), upload.files


# -- a generated form: its body, and the files the contract says it lists -----

FIELD = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e,
                              blacklist_characters='"\\'), min_size=1, max_size=12)


FILENAME = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"),
                                 blacklist_characters='"\\%'),
                   min_size=1, max_size=20)


@st.composite
def forms(draw):
    boundary = draw(st.text(BCHARS, min_size=1, max_size=70))
    delimiter = b"\r\n--" + boundary.encode()
    # Content that holds pieces of the delimiter, never all of it.
    pieces = st.one_of(st.binary(max_size=30),
                       st.integers(1, len(delimiter) - 1).map(lambda k: delimiter[:k]),
                       st.just(b"\r\n"), st.just(b"--"))
    content = st.lists(pieces, max_size=8).map(b"".join).filter(
        lambda c: (c + delimiter).find(delimiter) == len(c))
    parts, expected = [], []
    for kind in draw(st.lists(st.sampled_from(["file", "file", "text", "empty", "nested"]),
                              max_size=6)):
        field = draw(FIELD)
        data = draw(content)
        if kind == "file":
            filename = draw(FILENAME)
            style = draw(st.sampled_from(["quoted", "rfc5987"]))
            head = disposition(field, filename, style) + b"\r\nContent-Type: application/octet-stream"
            if style == "quoted":  # WebOb gives a lone filename* as a text field
                expected.append({"field": field, "filename": filename,
                                 "received": len(data), "done": True})
        elif kind == "text":
            head = disposition(field, None)
        elif kind == "empty":
            head = disposition(field, "") + b"\r\nContent-Type: application/octet-stream"
        else:
            inner = "inner" + boundary[:60] + "x"
            data = form(inner, [(disposition("x", "inner.txt").replace(b"form-data", b"file"),
                                 data)])
            if (data + delimiter).find(delimiter) != len(data):
                continue
            head = disposition(field, None) + \
                f"\r\nContent-Type: multipart/mixed; boundary={inner}".encode()
        parts.append((head, data))
    return boundary, form(boundary, parts), expected


@ATTACK
@given(generated=forms(), sizes=READ_SIZES)
def test_any_split_of_a_form_lists_its_files(generated, sizes):
    boundary, body, expected = generated
    got, files = read_through_tracking(body, content_type_for(boundary), sizes)
    assert got == body
    assert files == expected


@st.composite
def broken_forms(draw):
    """A generated form, cut, with bytes dropped or inserted, or noise."""
    boundary, body, _ = draw(forms())
    how = draw(st.sampled_from(["cut", "drop", "insert", "noise"]))
    at = draw(st.integers(0, len(body)))
    if how == "cut":
        body = body[:at]
    elif how == "drop":
        body = body[:at] + body[at + draw(st.integers(1, 20)):]
    elif how == "insert":
        body = body[:at] + draw(st.binary(min_size=1, max_size=40)) + body[at:]
    else:
        body = draw(st.binary(max_size=300))
    return boundary, body


@ATTACK
@given(generated=broken_forms(), sizes=READ_SIZES)
def test_a_broken_form_is_served_whole_and_scanned_alike_however_it_is_read(generated, sizes):
    boundary, body = generated
    content_type = content_type_for(boundary)
    got, files = read_through_tracking(body, content_type, sizes)
    assert got == body
    assert files == read_through_tracking(body, content_type, [len(body) or 1])[1]


# -- crafted cases, one by one ------------------------------------------------

BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"


CONTENT_TYPE = content_type_for(BOUNDARY)


def one_file(filename_head: bytes, content: bytes = b"data") -> bytes:
    return form(BOUNDARY, [(filename_head, content)])


def test_files_with_text_fields_between_them_and_empty_ones():
    body = form(BOUNDARY, [
        (disposition("title", None), b"holiday"),
        (disposition("a", "a.bin"), b"A" * 1000),
        (disposition("note", None), b"between"),
        (disposition("b", "b.bin"), b""),
        (disposition("c", ""), b""),
        (disposition("d", "d.bin"), b"D" * 10),
    ])
    for sizes in ([65536], [64], [97, 50]):
        assert read_through_tracking(body, CONTENT_TYPE, sizes)[1] == [
            {"field": "a", "filename": "a.bin", "received": 1000, "done": True},
            {"field": "b", "filename": "b.bin", "received": 0, "done": True},
            {"field": "d", "filename": "d.bin", "received": 10, "done": True},
        ], sizes


def test_reads_shorter_than_the_delimiter_find_the_files():
    """A parser that reads a byte at a time (or a server that hands out a
    few bytes per read) must see the same files as one that reads 64 KiB:
    here the delimiter (42 bytes) spans three reads or more."""
    body = one_file(disposition("f", "a.txt"), b"hello")
    for sizes in ([1], [2], [5], [13], [20]):
        assert read_through_tracking(body, CONTENT_TYPE, sizes)[1] == [
            {"field": "f", "filename": "a.txt", "received": 5, "done": True}], sizes


def test_content_holding_the_boundarys_prefix_is_counted_as_content():
    content = b"x\r\n--" + BOUNDARY[:-1].encode() + b"y\r\n--" + BOUNDARY[:5].encode()
    body = one_file(disposition("f", "tricky.bin"), content)
    for sizes in ([65536], [len(BOUNDARY) + 4], [len(BOUNDARY) + 7, 60]):
        assert read_through_tracking(body, CONTENT_TYPE, sizes)[1] == [
            {"field": "f", "filename": "tricky.bin", "received": len(content),
             "done": True}], sizes


def test_non_ascii_filenames_are_shown_as_sent_and_a_lone_filename_star_is_no_file():
    """RFC 7578 (4.2) forbids ``filename*`` in form data, and WebOb gives
    such a part to the application as a text field: it is not listed."""
    body = form(BOUNDARY, [
        (b"Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%E2%82%AC%20rates.pdf",
         b"1"),
        (disposition("g", "résumé – 履歴書.pdf"), b"22"),
    ])
    assert read_through_tracking(body, CONTENT_TYPE, [65536])[1] == [
        {"field": "g", "filename": "résumé – 履歴書.pdf", "received": 2, "done": True},
    ]


def test_a_nested_multipart_mixed_part_is_one_part():
    inner = form("inner-b", [(b'Content-Disposition: file; filename="in1.txt"', b"one"),
                             (b'Content-Disposition: file; filename="in2.txt"', b"two")])
    body = form(BOUNDARY, [
        (disposition("files", None) + b"\r\nContent-Type: multipart/mixed; boundary=inner-b",
         inner),
        (disposition("after", "after.bin"), b"after"),
    ])
    assert read_through_tracking(body, CONTENT_TYPE, [65536])[1] == [
        {"field": "after", "filename": "after.bin", "received": 5, "done": True}]


def test_at_most_1000_files_are_listed():
    body = form(BOUNDARY, [(disposition(f"f{i}", f"{i}.txt"), b"%d" % i)
                           for i in range(1001)])
    got, files = read_through_tracking(body, CONTENT_TYPE, [65536])
    assert got == body
    assert len(files) == 1000
    assert files[-1] == {"field": "f999", "filename": "999.txt", "received": 3, "done": True}
    assert all(f["done"] for f in files)


def test_a_header_block_split_across_reads():
    head = disposition("upload", "split.bin") + b"\r\nContent-Type: application/pdf"
    body = one_file(head, b"Z" * 300)
    starts = body.index(b"Content-Disposition")
    for cut in range(starts, starts + len(head) + 4):
        sizes = [cut, 5, 11, 65536]
        assert read_through_tracking(body, CONTENT_TYPE, sizes)[1] == [
            {"field": "upload", "filename": "split.bin", "received": 300, "done": True}], cut


def test_an_overlong_header_block_ends_the_scan_however_it_is_read():
    """``multipart.MAX_HEADER_BLOCK``: "A part's header block longer than
    this ends the scan" - with small reads and with one large read alike."""
    body = form(BOUNDARY, [
        (disposition("a", "a.bin"), b"a"),
        (disposition("b", "b.bin") + b"\r\nX-Pad: " + b"p" * 20000, b"b"),
        (disposition("c", "c.bin"), b"c"),
    ])
    for sizes in ([4096], [65536]):
        got, files = read_through_tracking(body, CONTENT_TYPE, sizes)
        assert got == body
        assert files == [{"field": "a", "filename": "a.bin", "received": 1, "done": True}], sizes


PAD = (b"title", b"x" * 2000)  # above the test app's tracking threshold either way


def files_received(request):
    """The file fields as the application gets them from WebOb."""
    return Response(json=[[name, value.filename, len(value.value)]
                          for name, value in request.POST.items()
                          if hasattr(value, "filename")])


def form_app():
    return webtest.TestApp(basic_app(configure=lambda config: (
        config.add_route("form", "/form"),
        config.add_view(files_received, route_name="form"))))


def part(disposition: bytes, content: bytes = b"data") -> tuple[bytes, bytes]:
    return b"Content-Disposition: " + disposition, content


def post_tracked(parts: list[tuple[bytes, bytes]], upload_id: str = "x"):
    """POST a form with an upload id; the app's files and the listed ones."""
    app = form_app()
    body = form(BOUNDARY, [part(b'form-data; name="' + PAD[0] + b'"', PAD[1]), *parts])
    answer = app.request(f"/form?X-Progress-ID={upload_id}", method="POST", body=body,
                         headers={"Content-Type": CONTENT_TYPE, "X-User": "alice"})
    listed = poll(app, upload_id).json["files"]
    return answer.json, [[f["field"], f["filename"], f["received"]] for f in listed]


# -- a crafted header is served, and listed as the app sees it ----------------

CRAFTED = [
    b"form-data; name=\"f\"; filename*=UTF-8\x00''a.txt",
    b'form-data; name="f"; filename*0="a"; filename*="b.txt"',
    b"form-data; name=\"f\"; filename*=UTF-8''%E2%82%AC%20rates.pdf",
    b"form-data; name=\"f\"; filename*0*=UTF-8''a; filename*1=\"b\"",
    b'form-data; name="f"; filename="\x00"',
    b'form-data; name="f"; filename="a\\"; b.txt"',
    b'form-data; name="f"; filename="unterminated; name=g',
    b'form-data; name="f"; filename="\xff\xfe.bin"',
]


@pytest.mark.parametrize("disposition", CRAFTED)
def test_a_crafted_disposition_is_served_and_listed_as_the_app_gets_it(disposition):
    got, listed = post_tracked([part(disposition)])
    assert listed == got


@pytest.mark.parametrize("head", [
    b'Content-Disposition: form-data; name="a"; filename="first.txt"\r\n'
    b'Content-Disposition: form-data; name="b"; filename="second.txt"',
    b'Content-Disposition: form-data; name="f";\r\n filename="folded.txt"',
    b'Content-Disposition: form-data; name="f"; filename="a\r\n\tb.txt"',
    b'Content-Disposition: form-data; name="f";\n\tfilename="lf-folded.txt"',
    b'Content-Disposition: form-data; name="f";\rfilename="cr.txt"',
    b'Content-Disposition : form-data; name="f"; filename="spaced.txt"',
    b'X-Before: 1\r\ncontent-DISPOSITION:form-data;name=f;filename=bare.txt\r\nX-After: 2',
    # What follows a line that is no header field is content, never a field:
    b'Content-Disposition : form-data; name="s"; filename="spaced.txt"\r\n'
    b'Content-Disposition: form-data; name="f"; filename="after-spaced.txt"',
    b'X-Before: 1\r\nno colon\r\n'
    b'Content-Disposition: form-data; name="f"; filename="after-junk.txt"',
    b'X-Before: 1\r\n \t\r\n'
    b'Content-Disposition: form-data; name="f"; filename="after-blank.txt"',
])
def test_the_header_lines_are_read_as_the_app_gets_them(head):
    got, listed = post_tracked([(head, b"data")])
    assert listed == got


def test_filename_wins_over_filename_star_as_in_webob():
    """RFC 7578 forbids ``filename*`` in form data; WebOb ignores it."""
    got, listed = post_tracked([
        part(b"form-data; name=\"a\"; filename*=UTF-8''star.txt; filename=\"plain.txt\""),
        part(b"form-data; name=\"b\"; filename=\"plain.txt\"; filename*=UTF-8''star.txt"),
    ])
    assert got == listed == [["a", "plain.txt", 4], ["b", "plain.txt", 4]]


@pytest.mark.e2e
def test_a_crafted_disposition_on_gunicorn_is_served_to_a_streaming_view():
    body = form(BOUNDARY, [part(b'form-data; name="' + PAD[0] + b'"', PAD[1]),
                           part(b'form-data; name="f"; filename*0="a"; filename*="b.txt"'),
                           part(b'form-data; name="g"; filename=" g.txt"', b"gg")])
    with serve("gunicorn", "tests.plain_app:app",
               env={"UPLOAD_PROGRESS_SETTINGS": "{}"}) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request("POST", "/upload?X-Progress-ID=crafted", body=body,
                               headers={"Content-Type": CONTENT_TYPE, **ALICE})
            response = connection.getresponse()
            status, answer = response.status, response.read()
        finally:
            connection.close()
        assert status == 200, answer
        assert json.loads(answer)["read"] == len(body)
        _, _, report = get_json(server.port, "/upload-progress?X-Progress-ID=crafted", ALICE)
    assert report["files"] == [{"field": "g", "filename": " g.txt", "received": 2,
                                "done": True}]


# -- file names as sent -------------------------------------------------------

def test_file_names_are_listed_with_their_whitespace_and_only_empty_ones_are_not():
    got, listed = post_tracked([
        part(b'form-data; name="a"; filename=" notes.txt"', b"1"),
        part(b'form-data; name="b"; filename="   "', b"22"),
        part(b'form-data; name="c"; filename=""', b""),
        part(b'form-data; name="d"; filename="\tx.txt "', b"333"),
    ])
    assert got == listed == [["a", " notes.txt", 1], ["b", "   ", 2], ["d", "\tx.txt ", 3]]


# -- the header costs time linear in its length -------------------------------

def test_sixteen_thousand_semicolons_in_a_quoted_name_are_listed_as_sent():
    """The cost is measured by benchmarks/multipart_scan.py; here the answer."""
    got, listed = post_tracked([
        part(b'form-data; name="' + b";" * 16000 + b'"; filename="a;b.txt"'),
        part(b'form-data; name="f"; filename="' + b";" * 16000 + b'"'),
    ])
    assert got == listed == [[";" * 16000, "a;b.txt", 4], ["f", ";" * 16000, 4]]


def test_parts_past_the_cap_are_not_parsed(monkeypatch):
    parsed = []
    real = multipart.part_names
    monkeypatch.setattr(multipart, "part_names",
                        lambda block: parsed.append(block) or real(block))
    body = form(BOUNDARY, [part(f'form-data; name="f{i}"; filename="{i}"'.encode(), b"")
                           for i in range(multipart.MAX_FILES + 50)])
    _, files = read_through_tracking(body, CONTENT_TYPE, [65536])
    assert len(files) == multipart.MAX_FILES
    assert len(parsed) == multipart.MAX_FILES


# -- the header parser against WebOb's, on random headers ---------------------

EXAMPLES = int(os.environ.get("MULTIPART_FUZZ_EXAMPLES", 2000))


FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


SLOW_FUZZ = settings(FUZZ, max_examples=max(EXAMPLES // 4, 1))


PIECES = st.one_of(
    st.sampled_from(["name", "filename", "filename*", "NAME", "FileName", "filename*0",
                     "filename*1*", "UTF-8''", "form-data", "=", ";", '"', "\\", '\\"', "\\\\",
                     " ", "\t", "*", "'", "%22", "\x00", "\x0b", "\x1c", "\x85", "\xa0",
                     "\u2028", "\u3000", "\u212a", "\u0131", "\u0130", "\u017f", "é", "€"]),
    st.text(max_size=6),
)


VALUES = st.lists(PIECES, max_size=40).map("".join)


@FUZZ
@given(value=VALUES)
def test_the_disposition_parser_reads_any_value_as_webob_does(value):
    _, params = parse_header(value)
    assert multipart.disposition_names(value) == (params.get("name"), params.get("filename"))


@FUZZ
@given(raw=st.lists(st.one_of(PIECES.map(lambda s: s.encode("utf-8")),
                              st.binary(max_size=6)), max_size=40).map(b"".join),
       head=st.sampled_from([b"Content-Disposition:", b"content-disposition: ",
                             b"X-Other: a\r\nCONTENT-DISPOSITION:\t"]))
def test_a_header_block_of_any_bytes_is_read_as_webob_reads_it(raw, head):
    block = head + raw
    names = multipart.part_names(block)
    if b"\r" not in raw and b"\n" not in raw:  # one header line, as HTTP has it
        _, params = parse_header(raw.decode("utf-8", "replace"))
        assert names == (params.get("name"), params.get("filename"))


def as_webob_reads(block: bytes) -> tuple[str | None, str | None]:
    """Names from a header block the way WebOb's cgi.FieldStorage gets them:
    lines (``readline``) up to a blank one, decoded, through the e-mail
    parser, the first Content-Disposition through ``parse_header``."""
    text = b""
    for line in re.findall(rb"[^\n]*\n", block + b"\r\n\r\n"):
        text += line
        if not line.strip():
            break
    parser = FeedParser()
    parser.feed(text.decode("utf-8", "replace"))
    value = parser.close()["content-disposition"]
    if value is None:
        return None, None
    _, params = parse_header(value)
    return params.get("name"), params.get("filename")


TOKEN = st.text("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                min_size=1, max_size=8)


LINE_VALUE = st.lists(st.one_of(PIECES.map(lambda s: s.encode("utf-8")), st.binary(max_size=6)),
                      max_size=12).map(lambda pieces: b"".join(pieces).replace(b"\r", b"")
                                       .replace(b"\n", b""))


@st.composite
def header_blocks(draw) -> bytes:
    """Well-formed header lines (a name, or a fold), any line ends, any bytes."""
    block = b""
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["disposition", "other", "fold"] if i else
                                    ["disposition", "other"]))
        if kind == "disposition":
            start = draw(st.sampled_from([b"Content-Disposition:", b"content-disposition: ",
                                          b"CONTENT-DISPOSITION:\t"]))
        elif kind == "other":
            start = draw(TOKEN).encode() + b":"
        else:
            start = draw(st.sampled_from([b" ", b"\t"])) + b"x"  # no blank line
        if block:
            block += draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
        block += start + draw(LINE_VALUE)
    return block


@SLOW_FUZZ
@given(block=header_blocks())
def test_header_lines_folds_and_line_ends_are_read_as_webob_reads_them(block):
    assert multipart.part_names(block) == as_webob_reads(block)


LINES = st.lists(st.one_of(
    header_blocks(), st.sampled_from([b"", b" ", b"\t", b"\x0b", b"From x", b": v", b"no colon",
                                      b"Content-Disposition : form-data; name=a; filename=b",
                                      b"Content-Disposition: form-data; name=f; filename=x",
                                      b"X-\xc3\xa9: 1", b"\r"]),
    LINE_VALUE), min_size=1, max_size=6)


@SLOW_FUZZ
@given(lines=LINES, ends=st.lists(st.sampled_from([b"\r\n", b"\n", b"\r"]), min_size=5,
                                  max_size=5))
def test_any_header_lines_are_read_as_webob_reads_them(lines, ends):
    """Lines that are no header fields among them, as the scanner hands a
    block over: from the boundary line's end."""
    block = lines[0] + b"".join(end + line for end, line in zip(ends, lines[1:]))
    assert multipart.part_names(b"\r\n" + block) == as_webob_reads(block)


@FUZZ
@given(block=st.binary(max_size=200))
def test_any_bytes_as_a_header_block_never_raise(block):
    name, filename = multipart.part_names(block)
    assert name is None or isinstance(name, str)
    assert filename is None or isinstance(filename, str)


# -- random forms, read in random splits, against WebOb's request.POST --------

KEYS = st.sampled_from(["name", "filename", "filename*", "NAME", "FileName", "other"])


TEXT = st.one_of(st.text(max_size=12), st.sampled_from([" notes.txt", "   ", "", "a;b", 'q"t',
                                                        "back\\slash", "\\", "€.pdf"]))


@st.composite
def param(draw) -> bytes:
    key = draw(KEYS)
    text = draw(TEXT).replace("\r", "").replace("\n", "")
    style = draw(st.sampled_from(["quoted", "escaped", "browser", "bare", "raw bytes"]))
    if style == "quoted":
        value = f'"{text}"'.encode()
    elif style == "escaped":
        value = ('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"').encode()
    elif style == "browser":
        value = ('"' + text.replace('"', "%22") + '"').encode()
    elif style == "bare":
        value = text.encode()
    else:
        value = b'"' + draw(st.binary(max_size=8)).replace(b"\r", b"").replace(b"\n", b"") + b'"'
    space = draw(st.sampled_from([b"", b" ", b"\t "]))
    return b";" + space + key.encode() + space + b"=" + space + value


@st.composite
def random_forms(draw):
    boundary = draw(st.sampled_from([BOUNDARY, "b", "x-7"]))
    delimiter = b"\n--" + boundary.encode()
    pieces = st.one_of(st.binary(max_size=30), st.just(b"\r\n"), st.just(b"\n"),
                       st.integers(1, len(delimiter)).map(lambda k: b"\r" + delimiter[:k]))
    # Content holds pieces of the delimiter, never a whole line of it.
    content = st.lists(pieces, max_size=8).map(b"".join).filter(
        lambda c: delimiter not in b"\n" + c)
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        head = b"Content-Disposition: form-data" + b"".join(draw(st.lists(param(), max_size=4)))
        if draw(st.booleans()):
            head += b"\r\nContent-Type: application/octet-stream"
        parts.append((head, draw(content)))
    return boundary, form(boundary, parts)


@SLOW_FUZZ
@given(generated=random_forms(), sizes=READ_SIZES)
def test_random_forms_list_the_files_webob_gives_the_app(generated, sizes):
    boundary, body = generated
    content_type = f"multipart/form-data; boundary={boundary}"
    request = webob.Request.blank("/", method="POST", body=body, content_type=content_type)
    expected = [{"field": name or "", "filename": value.filename,
                 "received": len(value.value), "done": True}
                for name, value in request.POST.items() if hasattr(value, "filename")]
    got, files = read_through_tracking(body, content_type, sizes)
    assert got == body
    assert files == expected
