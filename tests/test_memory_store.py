"""MemoryUploadProgressStore: the default store, with a clock of our own."""
from __future__ import annotations

import logging
import sys
import threading

import pytest
from zope.interface.verify import verifyObject

from pyramid_upload_progress.interfaces import IUploadProgressStore
from pyramid_upload_progress.record import UploadRecord
from pyramid_upload_progress.settings import parse_settings
from pyramid_upload_progress.stores.memory import (
    MemoryUploadProgressStore,
    memory_store_factory,
)

TIMEOUT = 300.0
STALL_TIMEOUT = 3600.0
START = 1_700_000_000.0


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock) -> MemoryUploadProgressStore:
    return MemoryUploadProgressStore(timeout=TIMEOUT, stall_timeout=STALL_TIMEOUT,
                                     max_uploads=100, clock=clock)


def owned_upload(store, owner, upload_id=None, path="/upload", size=1000):
    key = store.start(upload_id, path, size)
    store.set_owner(key, owner)
    return key


# -- the interface ------------------------------------------------------------

def test_memory_store_provides_the_store_interface(store):
    assert verifyObject(IUploadProgressStore, store)


def test_memory_store_asks_for_no_throttling(store):
    assert store.throttled is False


def test_factory_builds_the_store_from_the_parsed_settings():
    settings = {
        "upload_progress.timeout": "12",
        "upload_progress.stall_timeout": "34",
        "upload_progress.max_uploads": "56",
    }
    parse_settings(settings, lambda name: name)
    store = memory_store_factory(settings)
    assert (store.timeout, store.stall_timeout, store.max_uploads) == (12.0, 34.0, 56)


# -- start, update, finish ----------------------------------------------------

def test_start_returns_distinct_keys(store):
    keys = [store.start(None, "/upload", 10) for _ in range(50)]
    assert all(isinstance(key, str) for key in keys)
    assert len(set(keys)) == 50


def test_started_upload_is_uploading_with_nothing_received(store, clock):
    store.start("abc", "/upload", 1000)
    record = store.get("abc", None)
    assert (record.id, record.path, record.size) == ("abc", "/upload", 1000)
    assert (record.received, record.state) == (0, "uploading")
    assert record.started == clock.now
    assert record.finished is None


def test_update_is_reflected_by_get(store):
    key = store.start("abc", "/upload", 1000)
    store.update(key, 400)
    assert store.get("abc", None).received == 400


def test_update_is_reflected_by_list(store):
    key = owned_upload(store, "alice")
    store.update(key, 400)
    assert [record.received for record in store.list("alice")] == [400]


def test_finish_is_reflected_by_get(store, clock):
    key = store.start("abc", "/upload", 1000)
    clock.advance(5)
    store.finish(key, 1000, 201, False)
    record = store.get("abc", None)
    assert (record.received, record.status, record.failed) == (1000, 201, False)
    assert record.finished == clock.now
    assert record.state == "done"


def test_failed_finish_is_reflected_by_list(store):
    key = owned_upload(store, "alice")
    store.finish(key, 10, None, True)
    [record] = store.list("alice")
    assert (record.received, record.status, record.failed) == (10, None, True)
    assert record.state == "error"


@pytest.mark.parametrize("write", [
    lambda store, key: store.update(key, 5),
    lambda store, key: store.set_owner(key, "alice"),
    lambda store, key: store.finish(key, 5, 200, False),
    lambda store, key: store.discard(key),
], ids=["update", "set_owner", "finish", "discard"])
def test_writes_to_a_forgotten_key_are_ignored(store, write):
    key = store.start("abc", "/upload", 10)
    store.discard(key)
    write(store, key)
    assert store.get("abc", None) is None
    assert store.list("alice") == []
    assert len(store) == 0


def test_get_returns_a_snapshot_not_the_stored_record(store):
    key = store.start("abc", "/upload", 1000)
    snapshot = store.get("abc", None)
    store.update(key, 700)
    snapshot.received = 1
    assert store.get("abc", None).received == 700


# -- who sees which upload ----------------------------------------------------

def test_unknown_id_gets_none(store):
    store.start("abc", "/upload", 10)
    assert store.get("other", None) is None


def test_pending_upload_is_visible_by_id_to_anyone(store):
    store.start("abc", "/upload", 10)
    assert store.get("abc", None) is not None
    assert store.get("abc", "alice") is not None
    assert store.get("abc", "bob") is not None


def test_owned_upload_is_visible_by_id_to_its_owner(store):
    key = owned_upload(store, "alice", "abc")
    assert store.get("abc", "alice").key == key


def test_owned_upload_is_invisible_by_id_to_another_owner(store):
    owned_upload(store, "alice", "abc")
    assert store.get("abc", "bob") is None


def test_owned_upload_is_invisible_by_id_to_a_request_without_owner(store):
    owned_upload(store, "alice", "abc")
    assert store.get("abc", None) is None


def test_upload_owned_by_none_is_visible_by_id_to_anyone(store):
    key = owned_upload(store, None, "abc")
    assert store.get("abc", None).key == key
    assert store.get("abc", "bob").key == key


def test_pending_upload_is_not_listed(store):
    store.start("abc", "/upload", 10)
    store.start(None, "/upload", 10)
    assert store.list("alice") == []


def test_upload_owned_by_none_is_listed_for_nobody(store):
    owned_upload(store, None, "abc")
    assert store.list("alice") == []
    assert store.list("None") == []


def test_listing_holds_only_the_owners_uploads(store):
    mine = {owned_upload(store, "alice") for _ in range(3)}
    owned_upload(store, "bob")
    store.start(None, "/upload", 10)
    assert {record.key for record in store.list("alice")} == mine


def test_listing_is_newest_first(store, clock):
    keys = []
    for _ in range(3):
        keys.append(owned_upload(store, "alice"))
        clock.advance(1)
    assert [record.key for record in store.list("alice")] == keys[::-1]


def test_listing_is_newest_first_whatever_order_owners_become_known(store, clock):
    # A long upload behind pyramid_retry gets its owner only once its whole
    # body has arrived: after a short upload that started later.
    older = store.start(None, "/big", 10**9)
    clock.advance(1)
    newer = store.start(None, "/small", 10)
    store.set_owner(newer, "alice")
    store.set_owner(older, "alice")
    assert [record.path for record in store.list("alice")] == ["/small", "/big"]


def test_listing_of_an_owner_without_uploads_is_empty(store):
    assert store.list("nobody") == []


# -- expiry -------------------------------------------------------------------

def test_finished_upload_stays_visible_until_timeout(store, clock):
    key = owned_upload(store, "alice", "abc")
    store.finish(key, 1000, 200, False)
    clock.advance(TIMEOUT - 1)
    assert store.get("abc", "alice") is not None
    assert len(store.list("alice")) == 1


def test_finished_upload_vanishes_after_timeout(store, clock):
    key = owned_upload(store, "alice", "abc")
    store.finish(key, 1000, 200, False)
    clock.advance(TIMEOUT)
    assert store.get("abc", "alice") is None
    assert store.list("alice") == []


def test_upload_in_progress_is_not_stalled_before_stall_timeout(store, clock):
    store.start("abc", "/upload", 1000)
    clock.advance(STALL_TIMEOUT - 1)
    assert store.get("abc", None).state == "uploading"


def test_upload_without_a_byte_for_stall_timeout_is_returned_failed(store, clock):
    key = owned_upload(store, "alice", "abc")
    clock.advance(10)
    store.update(key, 300)
    updated = clock.now
    clock.advance(STALL_TIMEOUT)
    for record in (store.get("abc", "alice"), *store.list("alice")):
        assert record.state == "error"
        assert record.failed
        assert record.finished == updated + STALL_TIMEOUT
        assert record.received == 300


def test_stalled_upload_is_forgotten_after_stall_timeout_and_timeout(store, clock):
    owned_upload(store, "alice", "abc")
    clock.advance(STALL_TIMEOUT + TIMEOUT - 1)
    assert store.get("abc", "alice") is not None
    clock.advance(1)
    assert store.get("abc", "alice") is None
    assert store.list("alice") == []


def test_update_keeps_an_upload_alive(store, clock):
    key = store.start("abc", "/upload", 1000)
    clock.advance(STALL_TIMEOUT - 1)
    store.update(key, 1)
    clock.advance(STALL_TIMEOUT - 1)
    assert store.get("abc", None).state == "uploading"


def test_update_keeps_an_upload_through_a_purge(store, clock):
    key = store.start("abc", "/upload", 1000)
    clock.advance(STALL_TIMEOUT - 1)
    store.update(key, 1)
    clock.advance(TIMEOUT + 2)  # past the expiry the record started with
    store.start(None, "/other", 10)  # purges
    assert store.get("abc", None).state == "uploading"
    assert len(store) == 2


def test_purge_frees_the_memory_of_finished_uploads(store, clock):
    for _ in range(5):
        store.finish(store.start(None, "/upload", 10), 10, 200, False)
    assert len(store) == 5
    clock.advance(TIMEOUT)
    store.start(None, "/upload", 10)
    assert len(store) == 1


def test_purge_frees_the_memory_of_stalled_uploads(store, clock):
    for _ in range(5):
        owned_upload(store, "alice", "abc")
    clock.advance(STALL_TIMEOUT + TIMEOUT)
    store.start(None, "/upload", 10)
    assert len(store) == 1


def test_purge_keeps_records_whose_time_has_not_come(store, clock):
    store.finish(store.start(None, "/upload", 10), 10, 200, False)
    clock.advance(TIMEOUT - 1)
    store.start(None, "/upload", 10)
    assert len(store) == 2


def test_expiry_needs_no_background_thread(clock):
    threads_before = set(threading.enumerate())
    store = MemoryUploadProgressStore(timeout=TIMEOUT, clock=clock)
    store.finish(store.start(None, "/upload", 10), 10, 200, False)
    clock.advance(TIMEOUT)
    store.start(None, "/upload", 10)
    assert len(store) == 1
    assert set(threading.enumerate()) == threads_before


# -- the cap ------------------------------------------------------------------

@pytest.fixture
def small_store(clock) -> MemoryUploadProgressStore:
    return MemoryUploadProgressStore(timeout=TIMEOUT, stall_timeout=STALL_TIMEOUT,
                                     max_uploads=3, clock=clock)


def test_full_store_declines_new_uploads(small_store):
    for _ in range(3):
        assert small_store.start(None, "/upload", 10) is not None
    assert small_store.start("abc", "/upload", 10) is None
    assert small_store.get("abc", None) is None
    assert len(small_store) == 3


def test_full_store_logs_one_warning_however_many_are_refused(small_store, caplog):
    for _ in range(3):
        small_store.start(None, "/upload", 10)
    with caplog.at_level(logging.WARNING):
        for _ in range(20):
            small_store.start(None, "/upload", 10)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "max_uploads" in warnings[0].getMessage()


def test_tracking_resumes_once_records_expire(small_store, clock):
    for _ in range(3):
        small_store.finish(small_store.start(None, "/upload", 10), 10, 200, False)
    assert small_store.start(None, "/upload", 10) is None
    clock.advance(TIMEOUT)
    assert small_store.start(None, "/upload", 10) is not None


def test_full_store_warns_again_after_it_recovered_and_filled_up(small_store, clock,
                                                                 caplog):
    for _ in range(3):
        small_store.finish(small_store.start(None, "/upload", 10), 10, 200, False)
    with caplog.at_level(logging.WARNING):
        small_store.start(None, "/upload", 10)
        clock.advance(TIMEOUT)
        for _ in range(4):
            small_store.start(None, "/upload", 10)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


# -- reused ids ---------------------------------------------------------------

def test_reused_id_by_the_same_owner_replaces_its_finished_record(store):
    old = owned_upload(store, "alice", "abc")
    store.finish(old, 1000, 200, False)
    new = owned_upload(store, "alice", "abc")
    assert [record.key for record in store.list("alice")] == [new]
    assert store.get("abc", "alice").key == new
    assert len(store) == 1


def test_reused_id_answers_with_the_new_upload_while_it_is_pending(store):
    old = owned_upload(store, "alice", "abc")
    store.finish(old, 1000, 200, False)
    new = store.start("abc", "/upload", 1000)
    assert store.get("abc", "alice").key == new


def test_reused_id_by_another_owner_keeps_the_others_record(store):
    alices = owned_upload(store, "alice", "abc")
    store.finish(alices, 1000, 200, False)
    bobs = owned_upload(store, "bob", "abc")
    assert [record.key for record in store.list("alice")] == [alices]
    assert store.get("abc", "alice").key == alices
    assert store.get("abc", "bob").key == bobs


def test_reused_id_keeps_the_owners_upload_still_in_progress(store):
    first = owned_upload(store, "alice", "abc")
    second = owned_upload(store, "alice", "abc")
    assert {record.key for record in store.list("alice")} == {first, second}


# -- discard ------------------------------------------------------------------

def test_discard_forgets_an_upload_at_once(store):
    key = owned_upload(store, "alice", "abc")
    store.discard(key)
    assert store.get("abc", "alice") is None
    assert store.list("alice") == []
    assert len(store) == 0


def test_discard_of_a_pending_upload_forgets_it(store):
    key = store.start("abc", "/upload", 10)
    store.discard(key)
    assert store.get("abc", None) is None
    assert len(store) == 0


# -- many threads -------------------------------------------------------------

THREADS = 16
UPLOADS_PER_THREAD = 200


class TickingClock:
    """A clock that moves a millisecond each time it is read; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = START

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


@pytest.fixture
def store_for_threads() -> MemoryUploadProgressStore:
    return MemoryUploadProgressStore(timeout=TIMEOUT, stall_timeout=STALL_TIMEOUT,
                                     max_uploads=THREADS * UPLOADS_PER_THREAD,
                                     clock=FakeClock())


def run_in_threads(work) -> None:
    """Run ``work(n)`` in THREADS threads at once and wait for them all."""
    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_calls_leave_consistent_records(store_for_threads,
                                                   eager_thread_switching):
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def work(n: int) -> None:
        owner = f"owner-{n}"
        try:
            barrier.wait()
            for i in range(UPLOADS_PER_THREAD):
                key = store_for_threads.start(f"id-{n}-{i}", "/upload", 100)
                store_for_threads.update(key, 50)
                store_for_threads.get(f"id-{n}-{i}", None)
                store_for_threads.set_owner(key, owner)
                store_for_threads.update(key, 100)
                store_for_threads.list(owner)
                store_for_threads.finish(key, 100, 200, False)
                store_for_threads.get(f"id-{n}-{i}", owner)
                if i % 4 == 0:
                    store_for_threads.discard(key)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    run_in_threads(work)

    assert errors == []
    kept = UPLOADS_PER_THREAD - len(range(0, UPLOADS_PER_THREAD, 4))
    assert len(store_for_threads) == THREADS * kept
    for n in range(THREADS):
        records = store_for_threads.list(f"owner-{n}")
        assert len(records) == kept
        assert all(record.state == "done" and record.received == 100
                   for record in records)


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
            for i in range(5 * UPLOADS_PER_THREAD):
                key = store.start(f"id-{i % 7}", "/upload", 100)
                if key is None:
                    continue
                store.update(key, 10)
                store.set_owner(key, owner)
                store.list(owner)
                store.get(f"id-{i % 7}", owner)
                if i % 3:
                    store.finish(key, 100, 200, False)
        except BaseException as exc:
            errors.append(exc)

    run_in_threads(work)

    assert errors == []
    assert len(store) <= 50
    ticking.advance(1000)
    store.start(None, "/upload", 10)
    assert len(store) == 1
    assert all(store.list(f"owner-{n}") == [] for n in range(4))


# -- the cost of a listing ----------------------------------------------------

@pytest.fixture
def examined(monkeypatch) -> list[str]:
    """The keys of the records whose attributes anything reads, in order."""
    seen: list[str] = []

    def spy_getattribute(self, name):
        seen.append(object.__getattribute__(self, "key"))
        return object.__getattribute__(self, name)

    monkeypatch.setattr(UploadRecord, "__getattribute__", spy_getattribute)
    return seen


@pytest.mark.parametrize("others", [10, 1000])
def test_listing_examines_only_the_owners_records(store, examined, others):
    store.max_uploads = 2 * others + 10
    mine = {owned_upload(store, "alice") for _ in range(3)}
    for n in range(others):
        owned_upload(store, f"user-{n}")
        store.start(None, "/pending", 10)
    examined.clear()
    assert len(store.list("alice")) == 3
    assert set(examined) == mine
