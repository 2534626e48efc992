"""MemoryUploadProgressStore: what is specific to it, with a clock of our own.

The contract every store keeps is in ``test_store_contract.py``.
"""
from __future__ import annotations

import logging
import sys
import threading

import pytest
from pyramid.path import DottedNameResolver
from zope.interface import implementer

from pyramid_upload_progress.interfaces import IUploadProgressStore
from pyramid_upload_progress.record import UploadRecord
from pyramid_upload_progress.settings import parse_settings
from pyramid_upload_progress.stores.memory import MemoryUploadProgressStore, memory_store_factory
from tests.apps import basic_app, wsgi_call
from tests.stores import Progress

TIMEOUT = 300.0
STALL_TIMEOUT = 3600.0


@pytest.fixture
def store(clock) -> MemoryUploadProgressStore:
    return MemoryUploadProgressStore(timeout=TIMEOUT, stall_timeout=STALL_TIMEOUT,
                                     max_uploads=100, clock=clock)


def start(store, upload_id=None, owner=False, size=1000, progress=None):
    key = store.start(upload_id, "/upload", size, progress or Progress())
    if owner is not False:
        store.set_owner(key, owner)
    return key


def finish(store, key, status=200):
    store.finish(key, 10, None, status, False, False)


def test_memory_store_reads_progress_live_and_asks_for_no_writes(store):
    assert store.throttled is False
    progress = Progress()
    start(store, "abc", progress=progress)
    progress.received = 123
    progress.files = [{"field": "f", "filename": "a", "received": 3, "done": False}]
    record = store.get("abc", None)
    assert (record.received, record.files) == (123, progress.files)


def test_factory_builds_the_store_from_the_parsed_settings():
    settings = {
        "upload_progress.timeout": "12",
        "upload_progress.stall_timeout": "34",
        "upload_progress.max_uploads": "56",
    }
    parse_settings(settings, DottedNameResolver().maybe_resolve)
    store = memory_store_factory(settings)
    assert (store.timeout, store.stall_timeout, store.max_uploads) == (12.0, 34.0, 56)


def test_times_come_from_the_stores_clock(store, clock):
    key = start(store, "abc")
    assert store.get("abc", None).started == clock.now
    clock.advance(5)
    finish(store, key)
    assert store.get("abc", None).finished == clock.now


def test_a_stall_is_dated_from_when_the_last_change_was_seen(store, clock):
    progress = Progress()
    start(store, "abc", progress=progress)
    clock.advance(10)
    progress.received = 300
    seen = store.get("abc", None)
    assert seen.updated == clock.now
    clock.advance(STALL_TIMEOUT)
    record = store.get("abc", None)
    assert (record.state, record.finished) == ("error", seen.updated + STALL_TIMEOUT)


def test_cancel_reaches_the_upload_at_once(store):
    progress = Progress()
    start(store, "abc", progress=progress)
    assert store.cancel("abc", None).cancelled
    assert progress.cancelled


def test_an_upload_whose_body_was_read_whole_cannot_be_cancelled(store, clock):
    progress = Progress()
    start(store, "abc", progress=progress)
    progress.receiving = False
    progress.body_end = clock()
    assert store.cancel("abc", None) is None
    assert not progress.cancelled


# -- expiry and memory ----------------------------------------------------------

def test_purge_frees_the_memory_of_finished_uploads(store, clock):
    for _ in range(5):
        finish(store, start(store))
    assert len(store) == 5
    clock.advance(TIMEOUT)
    start(store)
    assert len(store) == 1


def test_purge_frees_the_memory_of_stalled_uploads(store, clock):
    for _ in range(5):
        start(store, "abc", owner="alice")
    clock.advance(STALL_TIMEOUT + TIMEOUT)
    for _ in range(3):
        start(store)
    assert len(store) == 3


def test_purge_keeps_records_whose_time_has_not_come(store, clock):
    finish(store, start(store))
    clock.advance(TIMEOUT - 1)
    start(store)
    assert len(store) == 2


def test_expiry_needs_no_background_thread(clock):
    threads_before = set(threading.enumerate())
    store = MemoryUploadProgressStore(timeout=TIMEOUT, clock=clock)
    finish(store, start(store))
    clock.advance(TIMEOUT)
    start(store)
    assert len(store) == 1
    assert set(threading.enumerate()) == threads_before


def test_memory_stays_bounded_by_max_uploads_under_a_flood(clock):
    # 200 uploads a second for a minute, each kept 5 s: the store's own
    # bookkeeping never grows past max_uploads entries.
    store = MemoryUploadProgressStore(timeout=5, stall_timeout=STALL_TIMEOUT,
                                      max_uploads=1000, clock=clock)
    for _ in range(60 * 200):
        finish(store, start(store, "x"))
        clock.advance(1 / 200)
    sizes = [len(store._records), len(store._finished), len(store._unfinished),
             len(store._live), sum(map(len, store._by_id.values()))]
    assert max(sizes) <= 1000


# -- the cap ------------------------------------------------------------------

@pytest.fixture
def small_store(clock) -> MemoryUploadProgressStore:
    return MemoryUploadProgressStore(timeout=TIMEOUT, stall_timeout=STALL_TIMEOUT,
                                     max_uploads=3, clock=clock)


def test_a_full_store_forgets_the_oldest_finished_record_to_make_room(small_store, clock):
    first = start(small_store, "first", owner="alice")
    finish(small_store, first)
    clock.advance(1)
    second = start(small_store, "second", owner="alice")
    finish(small_store, second)
    start(small_store, "running")
    assert start(small_store, "new") is not None
    assert small_store.get("first", "alice") is None
    assert small_store.get("second", "alice") is not None
    assert small_store.get("new", None) is not None
    assert len(small_store) == 3


def test_a_flood_of_finished_uploads_never_switches_tracking_off(small_store):
    for _ in range(100):
        finish(small_store, start(small_store, "flood"), status=404)
    assert start(small_store, "mine", owner="alice") is not None
    assert small_store.get("mine", "alice").state == "uploading"


def test_a_store_full_of_uploads_in_progress_declines_new_ones(small_store):
    for _ in range(3):
        assert start(small_store) is not None
    assert start(small_store, "abc") is None
    assert small_store.get("abc", None) is None
    assert len(small_store) == 3


def test_full_store_logs_one_warning_however_many_are_refused(small_store, caplog):
    for _ in range(3):
        start(small_store)
    with caplog.at_level(logging.WARNING):
        for _ in range(20):
            start(small_store)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "max_uploads" in warnings[0].getMessage()


def test_tracking_resumes_once_an_upload_ends(small_store):
    keys = [start(small_store) for _ in range(3)]
    assert start(small_store) is None
    finish(small_store, keys[0])
    assert start(small_store) is not None


# -- many threads -------------------------------------------------------------

THREADS = 16


class TickingClock:
    """A clock that moves a millisecond each time it is read; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        with self._lock:
            self.now += 0.001
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def eager_thread_switching():
    """Make the interpreter switch threads as often as it can, for the test."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_concurrent_calls_while_records_expire(eager_thread_switching):
    ticking = TickingClock()
    store = MemoryUploadProgressStore(timeout=0.5, stall_timeout=2.0,
                                      max_uploads=50, clock=ticking)
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def work(n: int) -> None:
        owner = f"owner-{n % 4}"
        try:
            barrier.wait()
            for i in range(1000):
                key = start(store, f"id-{i % 7}")
                if key is None:
                    continue
                store.set_owner(key, owner)
                store.list(owner)
                store.get(f"id-{i % 7}", owner)
                store.cancel(f"id-{i % 7}", owner)
                if i % 3:
                    finish(store, key)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(store) <= 50
    ticking.advance(1000)
    for _ in range(60):
        start(store)
    assert all(store.list(f"owner-{n}") == [] for n in range(4))


# -- the cost of a listing ----------------------------------------------------

@pytest.fixture
def examined(monkeypatch) -> list[str]:
    """The keys of the records whose attributes anything reads, in order."""
    seen: list[str] = []
    real = UploadRecord.__getattribute__

    def spy_getattribute(self, name):
        seen.append(real(self, "key"))
        return real(self, name)

    monkeypatch.setattr(UploadRecord, "__getattribute__", spy_getattribute)
    return seen


@pytest.mark.parametrize("others", [10, 1000])
def test_listing_examines_only_the_owners_records(store, examined, others):
    store.max_uploads = 2 * others + 10
    mine = {start(store, owner="alice") for _ in range(3)}
    for n in range(others):
        start(store, owner=f"user-{n}")
        start(store)
    examined.clear()
    assert len(store.list("alice")) == 3
    assert set(examined) == mine


# -- per_process: the add-on's warnings, for any store that says it -----------

@implementer(IUploadProgressStore)
class PerProcessStore:
    """A custom store that keeps records in its process, as the memory
    store does (it wraps one), without being the memory store."""

    per_process = True

    def __init__(self) -> None:
        self._store = MemoryUploadProgressStore()

    def __getattr__(self, name: str):
        return getattr(self._store, name)


class SharedStore(PerProcessStore):
    per_process = False


def multiprocess_warnings(caplog, store) -> list[str]:
    app = basic_app(store=store)
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        for n in range(2):
            wsgi_call(app, b"x" * 5000, query=f"X-Progress-ID=p{n}",
                      **{"wsgi.multiprocess": True, "wsgi.multithread": True})[1].close()
    return [r.getMessage() for r in caplog.records if "several processes" in r.getMessage()]


def test_a_custom_per_process_store_is_warned_of_under_several_processes(caplog):
    assert len(multiprocess_warnings(caplog, PerProcessStore())) == 1


def test_a_store_that_says_it_is_shared_is_not_warned_of(caplog):
    assert multiprocess_warnings(caplog, SharedStore()) == []


def test_the_memory_store_is_warned_of_under_several_processes(caplog):
    assert len(multiprocess_warnings(caplog, MemoryUploadProgressStore())) == 1
