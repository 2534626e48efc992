"""Attack: per-file progress of multipart bodies, split into reads every way.

DESIGN.md, "Per-file progress": ``files`` lists the file parts "in body
order, as the application reads them", each with its bytes and ``done``;
parts with an empty filename are not listed; at most 1000. The scan sees
the bytes as they pass through the counting stream, so how the application
happens to cut its reads (1 byte, odd sizes, 64 KiB) must change nothing,
and a body that breaks the format is served as it is, with ``files`` as far
as the scan could tell.
"""
from __future__ import annotations

import urllib.parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyramid_upload_progress import MemoryUploadProgressStore, multipart
from pyramid_upload_progress.health import StoreHealth
from pyramid_upload_progress.owner import as_text, authenticated_userid
from pyramid_upload_progress.timing import SYSTEM_CLOCK, Throttle
from pyramid_upload_progress.tracking import TrackedUpload
from tests.test_stream import ServerInput

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


def form(boundary: str, parts: list[tuple[bytes, bytes]]) -> bytes:
    """A multipart body of (header block, content) parts."""
    out = b""
    for head, content in parts:
        out += b"--" + boundary.encode() + b"\r\n" + head + b"\r\n\r\n" + content + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n"


def content_type_for(boundary: str) -> str:
    if any(c in boundary for c in "'()+,/:=?"):
        return f'multipart/form-data; boundary="{boundary}"'
    return f"multipart/form-data; boundary={boundary}"


def disposition(field: str, filename: str | None, style: str = "quoted") -> bytes:
    head = f'Content-Disposition: form-data; name="{field}"'
    if filename is not None:
        if style == "rfc5987":
            head += f"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"
        else:
            head += f'; filename="{filename}"'
    return head.encode("utf-8")


# -- a generated form: its body, and the files the contract says it lists ----

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


# -- the cases of the brief, one by one ---------------------------------------

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
