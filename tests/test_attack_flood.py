"""Attack: floods against ``upload_progress.max_uploads``, memory measured.

DESIGN.md: the memory store holds at most ``max_uploads`` records; "when it
is full the oldest *finished* record is forgotten to make room, and only
when every record is still in progress is a new upload served untracked
(with a warning logged)". So a flood of finished uploads (anyone can send
tiny bodies with ids) must never switch tracking off for a signed-in user,
and memory stays O(max_uploads).
"""
from __future__ import annotations

import gc
import logging
import os
import tracemalloc

import webtest

import pyramid_upload_progress

from tests.attack_app import WAIT, Background, GatedInput, make_app, serve_upload, store_of
from tests.test_attack_cancel import read_all

MAX = 200


def flood_app():
    app = make_app({"read": read_all}, {"upload_progress.max_uploads": str(MAX)})
    return app, webtest.TestApp(app)


def flood(client, count, start=0, user=None):
    headers = {"X-User": user} if user else {}
    for n in range(start, start + count):
        client.post(f"/read?X-Progress-ID=flood-{n}", b"f", headers=headers)


PACKAGE = [tracemalloc.Filter(True, os.path.dirname(pyramid_upload_progress.__file__) + "/*")]


def store_bytes(app, client, count, start=0) -> int:
    """Bytes allocated by the add-on's code, and still held, after ``count``
    more flooded uploads (Pyramid's and urllib's own caches left out)."""
    gc.collect()
    before = tracemalloc.take_snapshot().filter_traces(PACKAGE)
    flood(client, count, start)
    gc.collect()
    after = tracemalloc.take_snapshot().filter_traces(PACKAGE)
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def test_a_flood_of_finished_uploads_leaves_a_signed_in_users_upload_tracked():
    app, client = flood_app()
    flood(client, 10 * MAX)
    assert len(store_of(app)) == MAX
    client.post("/read?X-Progress-ID=mine", b"m" * 100, headers={"X-User": "alice"})
    [mine] = client.get("/upload-progress", headers={"X-User": "alice"}).json["uploads"]
    assert (mine["id"], mine["state"], mine["received"]) == ("mine", "done", 100)
    flood(client, 10 * MAX, start=10 * MAX)
    assert len(store_of(app)) == MAX


def test_memory_per_record_is_small_and_a_flood_does_not_grow_it():
    app, client = flood_app()
    tracemalloc.start()  # before the first upload: every record is traced
    try:
        flood(client, 50)  # warm up: caches, interned strings
        filling = store_bytes(app, client, MAX - 50, start=50)
        # The store's dicts settle at the size that churn needs, once.
        settling = store_bytes(app, client, 5 * MAX, start=MAX)
        flooding = store_bytes(app, client, 5 * MAX, start=6 * MAX)
    finally:
        tracemalloc.stop()
    per_record = filling / (MAX - 50)
    print(f"memory store: {per_record:.0f} bytes per finished record; a flood of "
          f"{5 * MAX} then {5 * MAX} more: {settling} then {flooding} bytes more")
    assert per_record < 4096
    assert settling < 0.5 * MAX * per_record
    assert flooding < 1024


def test_a_store_full_of_uploads_in_progress_serves_new_ones_untracked(caplog):
    app = make_app({"read": read_all}, {"upload_progress.max_uploads": "3"})
    held = []
    try:
        for n in range(3):
            raw = GatedInput(b"h" * 50_000, gates=(1,))
            thread = Background(lambda n=n, raw=raw: serve_upload(
                app, None, "/read", raw=raw, headers={"X-User": "mallory"},
                query=f"X-Progress-ID=held-{n}"))
            thread.start()
            assert raw.waiting.wait(WAIT)
            held.append((raw, thread))
        client = webtest.TestApp(app)
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                assert client.post("/read?X-Progress-ID=late", b"l" * 10,
                                   headers={"X-User": "alice"}).json == {"read": 10}
        assert caplog.text.count("maximum of 3 uploads") == 1
        assert client.get("/upload-progress?X-Progress-ID=late",
                          headers={"X-User": "alice"}).json["state"] == "starting"
    finally:
        for raw, _ in held:
            raw.go.set()
    for _, thread in held:
        assert thread.result().json == {"read": 50_000}
    client.post("/read?X-Progress-ID=after", b"a" * 10, headers={"X-User": "alice"})
    assert client.get("/upload-progress?X-Progress-ID=after",
                      headers={"X-User": "alice"}).json["state"] == "done"
