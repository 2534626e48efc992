"""A store full of uploads: floods against ``upload_progress.max_uploads``,
memory measured.

The memory store holds at most ``max_uploads`` records; when it is full the
oldest *finished* record is forgotten to make room, and only when every
record is still in progress is a new upload served untracked (with a
warning logged). So a flood of finished uploads (anyone can send tiny
bodies with ids) must never switch tracking off for a signed-in user, and
memory stays O(max_uploads). More store calls at once than a connection
pool holds still answer.
"""
from __future__ import annotations

import gc
import logging
import os
import random
import threading
import tracemalloc
import uuid

import webtest

import pyramid_upload_progress
from tests.apps import (
    WAIT,
    Background,
    GatedInput,
    basic_app,
    held_upload,
    make_app,
    poll,
    read_all,
    serve_upload,
    store_of,
    upload,
)
from tests.store_kinds import (
    SHARED,
    each_store,
    redis_keys,
    sqlite_bytes,
    sqlite_rows,
    store_settings,
)


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


# -- the Redis and SQLite stores ----------------------------------------------
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


# -- a flood of small uploads cannot switch tracking off ----------------------

def test_a_flood_of_finished_uploads_leaves_a_users_upload_tracked():
    app = webtest.TestApp(basic_app({"upload_progress.max_uploads": "50"}))
    for n in range(200):
        app.post(f"/nowhere?X-Progress-ID=flood{n}", b"x", status=404)
    upload(app, upload_id="mine", size=5000)
    assert poll(app, "mine").json["state"] == "done"


CALLS = 150
"""Store calls in flight at once in one process: a gthread worker sized
above its concurrent uploads (NOTES.md) makes as many."""


def test_more_store_calls_at_once_than_a_connection_pool_holds_still_answer():
    """Redis answers, only slowly (paused for 0.3 s, within the calls'
    ``socket_timeout``): every one of ``CALLS`` polls made at once answers
    200 - a 503 says "the store cannot be reached", and it can."""
    from tests.redis_server import session_server

    settings = store_settings("redis", **{"upload_progress.redis.socket_timeout": "3"})
    app = make_app({"read": read_all}, settings)
    client = webtest.TestApp(app)
    client.post("/read?X-Progress-ID=slow", b"s" * 100, headers={"X-User": "alice"})
    ready = threading.Barrier(CALLS + 1, timeout=WAIT)

    def poll():
        ready.wait()
        return client.get("/upload-progress?X-Progress-ID=slow", headers={"X-User": "alice"},
                          expect_errors=True)

    polls = [Background(poll) for _ in range(CALLS)]
    for thread in polls:
        thread.start()
    session_server().client().client_pause(300, all=True)
    ready.wait()
    answers = [thread.result() for thread in polls]
    statuses = sorted(answer.status_int for answer in answers)
    assert statuses == [200] * CALLS, {s: statuses.count(s) for s in set(statuses)}
    assert {answer.json["state"] for answer in answers} == {"done"}
