"""A store that fails or goes away never reaches the upload.

A store failure is logged and the request is served untracked: a Redis
call that fails or takes longer than ``redis.socket_timeout``, a SQLite
call that fails or waits on a lock for more than about 100 ms, leaves that
upload untracked and served; a stage
call never raises because of the store; reports answer a JSON 503 when the
store cannot be reached, never 500; an outage is logged once and its end
once.

In the middle of uploads: uploads are held mid-body, the store is taken
away (Redis stopped or hung; the SQLite file unlinked, its directory
removed, garbage put in its place, its write lock held elsewhere), then
polls, cancels and new uploads come, the held uploads go on (each reading
on and calling ``stage``), and the store comes back.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest
import webtest
from pyramid.response import Response
from zope.interface import implementer

from pyramid_upload_progress import IUploadProgressStore, MemoryUploadProgressStore, stage
from tests.app_clock import give_clock
from tests.apps import WAIT, basic_app, held_upload, make_app, poll, upload


@implementer(IUploadProgressStore)
class FailingStore:
    """A store whose server is down: every call raises."""

    throttled = False

    def _down(self, *args):
        raise ConnectionError("store is down")

    start = update = set_owner = stage = finish = discard = get = list = cancel = _down


def test_a_failing_store_answers_503_json():
    app = webtest.TestApp(basic_app(store=FailingStore()))
    for path in ("/upload-progress", "/upload-progress?X-Progress-ID=x1"):
        res = app.get(path, headers={"X-User": "alice"}, status=503)
        assert res.content_type == "application/json"
        assert res.headers["Cache-Control"] == "no-store"
        assert "error" in res.json


def test_a_failing_store_never_reaches_the_upload(caplog):
    app = webtest.TestApp(basic_app(store=FailingStore()))
    assert upload(app, upload_id="u1", size=5000).json == {"read": 5000}
    assert "store is down" in caplog.text


@implementer(IUploadProgressStore)
class StoreFailingAfterStart(MemoryUploadProgressStore):
    """Starts uploads, then fails on ``method``; throttled, so that it is
    sent progress writes."""

    throttled = True

    def __init__(self, method):
        super().__init__()
        self.calls = []

        def fail(*args, **kw):
            self.calls.append(method)
            raise ConnectionError(f"{method} failed")

        setattr(self, method, fail)


@pytest.mark.parametrize("method", ["update", "set_owner", "finish"])
def test_a_store_failing_mid_upload_never_reaches_the_upload(method):
    store = StoreFailingAfterStart(method)
    app = webtest.TestApp(basic_app({"upload_progress.update_interval": "0"}, store=store))
    assert upload(app, upload_id="u1", size=5000).json == {"read": 5000}
    assert store.calls == [method]


class FlappingStore(MemoryUploadProgressStore):
    """A store that is down while ``down`` is true."""

    def __init__(self):
        super().__init__()
        self.down = False

    def start(self, *args):
        if self.down:
            raise ConnectionError("store is down")
        return super().start(*args)

    def get(self, *args):
        if self.down:
            raise ConnectionError("store is down")
        return super().get(*args)


def test_an_outage_is_logged_once_and_its_end_once(caplog):
    store = FlappingStore()
    app = webtest.TestApp(basic_app(store=store))
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        store.down = True
        for n in range(5):
            upload(app, upload_id=f"o{n}", size=5000)
            poll(app, f"o{n}", status=503)
        store.down = False
        upload(app, upload_id="back", size=5000)
        assert poll(app, "back").json["state"] == "done"
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "failed" in m]) == 1
    assert messages.count("upload progress: the store answers again") == 1


# -- the store goes away in the middle of uploads, held mid-body -----------------

HELD = 4
SIZE = 200_000
SOCKET_TIMEOUT = 0.3
SLACK = 1.0
"""Time on top of what a step should take, for a loaded 2-core machine."""


def read_and_stage(request):
    """Reads the body in 1000-byte pieces, then says what it does with it
    (an upload whose start the store missed is not tracked: no stages)."""
    data = b"".join(iter(lambda: request.body_file.read(1000), b""))
    for n in range(3):
        stage(request, "storing", n, 3)
    stage(request, "done")
    return Response(json={"read": len(data)})


# -- the faults: each yields (settings, take the store away, bring it back) ------

Fault = tuple[dict[str, str], Callable[[], None], Callable[[], None]]


@contextlib.contextmanager
def redis_fault(hang: bool) -> Iterator[Fault]:
    from tests.redis_server import own_server

    with own_server() as server:
        settings = {"upload_progress.store": "redis", "upload_progress.redis.url": server.url,
                    "upload_progress.redis.socket_timeout": str(SOCKET_TIMEOUT),
                    "upload_progress.update_interval": "0.01"}
        try:
            if hang:
                yield settings, server.pause, server.resume
            else:
                yield settings, server.stop, server.start
        finally:
            if server.process is not None:
                server.resume()


@contextlib.contextmanager
def sqlite_fault(how: str) -> Iterator[Fault]:
    directory = tempfile.mkdtemp(prefix="upload-progress-away-")
    path = os.path.join(directory, "progress.sqlite3")
    settings = {"upload_progress.store": "sqlite", "upload_progress.sqlite.path": path,
                "upload_progress.update_interval": "0.01"}

    lock = []

    def take_away():
        if how == "locked":  # another connection holds the write lock
            lock.append(sqlite3.connect(path, isolation_level=None))
            lock[0].execute("BEGIN IMMEDIATE")
        elif how == "directory removed":
            shutil.rmtree(directory)
        elif how == "unlinked":
            os.unlink(path)
        else:  # garbage: another file, not a database, in its place
            os.unlink(path)
            with open(path, "wb") as garbage:
                garbage.write(b"not a database " * 1000)

    def bring_back():
        if how == "locked":
            lock.pop().close()
        elif how == "directory removed":
            os.mkdir(directory)
        elif how == "garbage":
            os.unlink(path)

    try:
        yield settings, take_away, bring_back
    finally:
        for db in lock:
            db.close()
        shutil.rmtree(directory, ignore_errors=True)


FAULTS = {
    "redis stopped": lambda: redis_fault(hang=False),
    "redis hung": lambda: redis_fault(hang=True),
    "sqlite unlinked": lambda: sqlite_fault("unlinked"),
    "sqlite directory removed": lambda: sqlite_fault("directory removed"),
    "sqlite garbage": lambda: sqlite_fault("garbage"),
    "sqlite locked": lambda: sqlite_fault("locked"),
}


def report(client, method, query):
    response = client.request(f"/upload-progress?{query}", method=method,
                              headers={"X-User": "alice"}, expect_errors=True)
    assert response.status_int != 500, response.body[:300]
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    return response


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_store_that_goes_away_never_breaks_an_upload(fault):
    with FAULTS[fault]() as (settings, take_away, bring_back):
        app = make_app({"read": read_and_stage}, settings)
        client = webtest.TestApp(app)
        client.post("/read?X-Progress-ID=before", b"b" * 1000, headers={"X-User": "alice"})
        assert report(client, "GET", "X-Progress-ID=before").json["state"] == "done"
        held = [held_upload(app, os.urandom(SIZE), f"held-{n}", {"X-User": "alice"}, (2,))
                for n in range(HELD)]
        try:
            take_away()
            # While it is away: reports answer (503 or a correct answer),
            # new uploads are served.
            for method, query in (("GET", "X-Progress-ID=held-0"), ("GET", ""),
                                  ("DELETE", "X-Progress-ID=held-1")):
                answer = report(client, method, query)
                assert answer.status_int in (200, 404, 503), answer
            began = time.monotonic()
            during = client.post("/read?X-Progress-ID=during", b"d" * SIZE,
                                 headers={"X-User": "alice"})
            assert during.json == {"read": SIZE}
            assert time.monotonic() - began < SOCKET_TIMEOUT + SLACK
            # The held uploads go on, each delayed by one failed call at most.
            began = time.monotonic()
            for raw, _ in held:
                raw.go.set()
            answers = [thread.result() for _, thread in held]
            took = time.monotonic() - began
        finally:
            for raw, _ in held:
                raw.go.set()
        assert [(a.status_int, a.json) for a in answers] == [(200, {"read": SIZE})] * HELD
        assert took < SOCKET_TIMEOUT + SLACK, took
        bring_back()
        # Back: tracking resumes (a failed connection may cost one upload).
        for attempt in range(3):
            client.post(f"/read?X-Progress-ID=after-{attempt}", b"a" * 1000,
                        headers={"X-User": "alice"})
            after = report(client, "GET", f"X-Progress-ID=after-{attempt}").json
            if after["state"] == "done":
                break
        assert (after["state"], after["received"], after["stage"]) == \
            ("done", 1000, {"name": "done", "done": None, "total": None})


# -- a store that fails once, then answers again ---------------------------------

@pytest.mark.parametrize("fault", ["redis hung", "sqlite locked"])
def test_an_upload_the_store_missed_once_is_untracked_and_then_stalls(fault):
    """One progress write fails (Redis hangs past ``socket_timeout``; the
    SQLite lock is held past its wait); the store answers again before the
    upload ends. The upload is served, untracked from then on: after one
    failure it calls the store no more (the contract), so its record shows
    what was last written until ``stall_timeout`` turns it ``error``."""
    with FAULTS[fault]() as (settings, take_away, bring_back):
        app = make_app({"read": read_and_stage},
                       {**settings, "upload_progress.stall_timeout": "1"})
        client = webtest.TestApp(app)
        clock = give_clock(app)
        raw, thread = held_upload(app, os.urandom(SIZE), "missed", {"X-User": "alice"},
                                  (2, 4))
        raw.waiting.clear()
        take_away()
        clock.advance(0.05)  # a progress write is due
        raw.go.set()  # the upload reads on: that write fails
        assert raw.waiting.wait(WAIT)
        bring_back()
        raw.go.set()
        assert thread.result().json == {"read": SIZE}
        answer = report(client, "GET", "X-Progress-ID=missed").json
        assert answer["state"] in ("uploading", "starting"), answer
        assert answer["received"] < SIZE
        # The store's own clock (the Redis server's, the SQLite store's) says
        # when the upload stalled.
        deadline = time.monotonic() + WAIT
        while answer["state"] not in ("error", "starting"):
            assert answer["state"] == "uploading" and time.monotonic() < deadline, answer
            time.sleep(0.05)
            answer = report(client, "GET", "X-Progress-ID=missed").json
