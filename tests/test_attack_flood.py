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
import random
import tracemalloc
import uuid

import webtest

import pyramid_upload_progress

from tests.apps import (
    WAIT,
    Background,
    GatedInput,
    held_upload,
    make_app,
    serve_upload,
    store_of,
)
from tests.store_kinds import (
    SHARED,
    each_store,
    redis_keys,
    sqlite_bytes,
    sqlite_rows,
    store_settings,
)
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


# -- the Redis and SQLite stores ------------------------------------------------
#
# Redis has no cap (its own memory limit is the cap), but "every record and
# index expires by itself"; SQLite holds at most ``max_uploads`` records,
# the oldest finished one forgotten first. Thousands of anonymous uploads
# with random ids, from several threads, while a signed-in user uploads.

FLOOD = 2000
FLOODERS = 4
LIVE = 300_000


def anonymous_flood(client, count, errors):
    try:
        for _ in range(count):
            client.post(f"/read?X-Progress-ID={uuid.uuid4().hex}",
                        b"f" * random.randrange(1, 64))
    except Exception as exc:  # reported by the test, not lost in a thread
        errors.append(exc)


def assert_every_key_expires(settings):
    """Redis: no key under the prefix lives for ever, none longer than a
    record may (``stall_timeout + timeout``)."""
    ttls = redis_keys(settings)
    longest = 1000 * (float(settings["upload_progress.stall_timeout"])
                      + float(settings["upload_progress.timeout"]))
    assert ttls, "the flood left nothing in Redis"
    forever = sorted(key for key, ttl in ttls.items() if ttl < 0)
    assert not forever, (len(forever), forever[:5])
    assert max(ttls.values()) <= longest
    return ttls


@each_store(SHARED)
def test_a_flood_of_anonymous_uploads_leaves_a_signed_in_users_upload_tracked(kind):
    settings = store_settings(kind, **{"upload_progress.max_uploads": str(MAX),
                                       "upload_progress.timeout": "30",
                                       "upload_progress.stall_timeout": "60"})
    app = make_app({"read": read_all}, settings)
    client = webtest.TestApp(app)
    raw, live = held_upload(app, b"m" * LIVE, "alice-live", {"X-User": "alice"}, (3,))
    errors: list[Exception] = []
    flooders = [Background(lambda: anonymous_flood(webtest.TestApp(app), FLOOD // FLOODERS,
                                                   errors)) for _ in range(FLOODERS)]
    for thread in flooders:
        thread.start()
    try:
        polls = []
        while any(thread.is_alive() for thread in flooders) and len(polls) < 5000:
            polls.append(client.get("/upload-progress?X-Progress-ID=alice-live",
                                    headers={"X-User": "alice"}).json)
    finally:
        for thread in flooders:
            thread.result()
        raw.go.set()
    assert not errors, errors[:3]
    assert live.result().json == {"read": LIVE}
    assert polls and {(p["state"], p["size"]) for p in polls} == {("uploading", LIVE)}
    mine = client.get("/upload-progress?X-Progress-ID=alice-live",
                      headers={"X-User": "alice"}).json
    assert (mine["state"], mine["received"]) == ("done", LIVE)
    listing = client.get("/upload-progress", headers={"X-User": "alice"}).json["uploads"]
    assert [u["id"] for u in listing] == ["alice-live"]
    client.post("/read?X-Progress-ID=alice-after", b"a" * 100, headers={"X-User": "alice"})
    after = client.get("/upload-progress?X-Progress-ID=alice-after",
                       headers={"X-User": "alice"}).json
    assert (after["state"], after["received"]) == ("done", 100)
    if kind == "redis":
        ttls = assert_every_key_expires(settings)
        assert len(ttls) >= FLOOD  # a hash per upload id
    else:
        assert len(sqlite_rows(settings)) <= MAX


def test_a_sqlite_file_stays_bounded_by_max_uploads_however_long_the_flood():
    settings = store_settings("sqlite", **{"upload_progress.max_uploads": str(MAX)})
    client = webtest.TestApp(make_app({"read": read_all}, settings))
    errors: list[Exception] = []
    anonymous_flood(client, FLOOD // 2, errors)
    first = sqlite_bytes(settings)
    for _ in range(2):
        anonymous_flood(client, FLOOD, errors)
        database, wal = sqlite_bytes(settings)
        assert len(sqlite_rows(settings)) == MAX
        assert database <= max(first[0], 256 * 1024), (first, database)
        # SQLite checkpoints the -wal file at 1000 pages (4 MiB) and reuses it.
        assert wal <= 5 * 1024 * 1024, wal
    assert not errors
