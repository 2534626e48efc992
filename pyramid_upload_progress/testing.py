"""The store contract, as a test suite a store's author runs: every promise of
:class:`~pyramid_upload_progress.interfaces.IUploadProgressStore` is one test.

For test suites only: it imports pytest. Subclass :class:`StoreContract` in
a test module of your own and say how to make your store::

    from pyramid_upload_progress.testing import Backend, FakeClock, StoreContract

    class TestMyStore(StoreContract):
        def make_backend(self, *, timeout, stall_timeout, max_uploads):
            clock = FakeClock()
            store = MyStore(timeout=timeout, stall_timeout=stall_timeout, clock=clock)
            return Backend(store, clock.advance, clock)

pytest then runs every contract test against it (as ``dogpile.testing``
does for cache backends). A store on another server's clock, which a test
cannot move, passes ``time.sleep`` as ``advance`` and the server's clock as
``now``: the expiry tests then wait, for about ``TIMEOUT + STALL_TIMEOUT``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from .interfaces import IUploadProgressStore
from .record import FileProgress

__all__ = ["Backend", "FakeClock", "Progress", "StoreContract", "Upload",
           "STALL_TIMEOUT", "TIMEOUT"]

TIMEOUT = 1.0
"""The ``timeout`` of the stores the suite makes: short, for the expiry tests."""
STALL_TIMEOUT = 1.5
"""The ``stall_timeout`` of the stores the suite makes."""
FILES: list[FileProgress] = [{"field": "photo", "filename": "a.jpg", "received": 10, "done": True}]
START = 1_700_000_000.0


class FakeClock:
    """Epoch seconds that move only when a test says so: a store's ``clock``."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Progress:
    """What the add-on hands a store as an upload's live ``progress``
    (:class:`~pyramid_upload_progress.interfaces.LiveProgress`)."""

    def __init__(self) -> None:
        self.received = 0
        self.files: list[FileProgress] | None = None
        self.receiving = True
        self.body_end: float | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Backend:
    """A store made for one test, and the test's handle on its time:
    ``advance(seconds)`` lets time pass for the store, ``now()`` reads the
    store's clock."""

    store: Any
    advance: Callable[[float], None]
    now: Callable[[], float]


class Upload:
    """One upload, driven as the add-on drives a store."""

    def __init__(self, store: Any, upload_id: str | None = None, path: str = "/upload",
                 size: int | None = 1000, owner: Any = False,
                 now: Callable[[], float] = time.time) -> None:
        self.store = store
        self.size = size
        self.now = now
        """The serving process's clock, for ``progress.body_end``."""
        self.progress = Progress()
        self.key = store.start(upload_id, path, size, self.progress)
        if owner is not False:
            self.own(owner)

    def own(self, owner: str | None) -> Upload:
        self.store.set_owner(self.key, owner)
        return self

    def read(self, received: int, files: list[FileProgress] | None = None,
             ended: bool | None = None) -> bool:
        """The app has read ``received`` bytes (``ended``: the body is in
        whole; by default when ``received`` is the size); returns whether
        the upload was cancelled, as the add-on learns it."""
        if ended is None:
            ended = received == self.size
        self.progress.received = received
        self.progress.files = files
        if ended:
            self.progress.receiving = False
            if not self.progress.cancelled:
                self.progress.body_end = self.now()
        if self.store.throttled:
            return bool(self.store.update(self.key, received, files, ended))
        return self.progress.cancelled

    def finish(self, status: int | None = 200, failed: bool = False,
               cancelled: bool = False, received: int | None = None) -> Upload:
        if received is not None:
            self.read(received)
        self.progress.receiving = False
        self.store.finish(self.key, self.progress.received, self.progress.files,
                          status, failed, cancelled)
        return self


class StoreContract:
    """The contract's tests; a subclass gives :meth:`make_backend`."""

    def make_backend(self, *, timeout: float, stall_timeout: float,
                     max_uploads: int) -> Backend:
        """A new, empty store with these settings, and its time."""
        raise NotImplementedError("a StoreContract subclass says how to make its store")

    @pytest.fixture
    def backend(self) -> Backend:
        return self.make_backend(timeout=TIMEOUT, stall_timeout=STALL_TIMEOUT,
                                 max_uploads=1000)

    @pytest.fixture
    def store(self, backend: Backend) -> Any:
        return backend.store

    @pytest.fixture
    def patient_store(self) -> Any:
        """A store whose records outlive a test that takes seconds on a loaded
        machine (the suite's TIMEOUT is short, for the expiry tests)."""
        return self.make_backend(timeout=60.0, stall_timeout=60.0, max_uploads=1000).store

    def test_store_provides_the_interface(self, store):
        assert verifyObject(IUploadProgressStore, store)


    def test_throttled_is_a_boolean(self, store):
        assert store.throttled in (True, False)


    # -- start, progress, finish ----------------------------------------------

    def test_start_returns_distinct_string_keys(self, store):
        keys = [Upload(store).key for _ in range(20)]
        assert all(isinstance(key, str) for key in keys)
        assert len(set(keys)) == 20


    def test_started_upload_is_uploading_with_nothing_received(self, backend):
        Upload(backend.store, "abc", size=1000)
        record = backend.store.get("abc", None)
        assert (record.id, record.path, record.size) == ("abc", "/upload", 1000)
        assert (record.received, record.state, record.finished) == (0, "uploading", None)
        assert abs(record.started - backend.now()) < 5
        assert (record.cancelled, record.files, record.stage) == (False, None, None)


    def test_a_chunked_upload_has_no_size(self, store):
        Upload(store, "abc", size=None)
        assert store.get("abc", None).size is None


    def test_progress_is_reflected_by_get(self, store):
        Upload(store, "abc").read(400)
        assert store.get("abc", None).received == 400


    def test_progress_is_reflected_by_list(self, store):
        Upload(store, owner="alice").read(400, FILES)
        [record] = store.list("alice")
        assert (record.received, record.files) == (400, FILES)


    def test_finish_is_reflected_by_get(self, store):
        Upload(store, "abc").finish(201, received=1000)
        record = store.get("abc", None)
        assert (record.received, record.status, record.failed) == (1000, 201, False)
        assert record.finished is not None and record.finished >= record.started
        assert record.state == "done"


    def test_failed_finish_is_reflected_by_list(self, store):
        Upload(store, owner="alice").finish(None, failed=True, received=10)
        [record] = store.list("alice")
        assert (record.received, record.status, record.failed) == (10, None, True)
        assert record.state == "error"


    def test_the_read_that_ends_the_body_sets_body_end(self, backend):
        upload = Upload(backend.store, "abc", size=None, now=backend.now)
        upload.read(500)
        assert backend.store.get("abc", None).body_end is None
        backend.advance(0.01)
        upload.read(500, ended=True)
        record = backend.store.get("abc", None)
        assert record.started < record.body_end <= backend.now()
        backend.advance(0.01)
        upload.finish(200)
        finished = backend.store.get("abc", None)
        assert finished.body_end == record.body_end < finished.finished


    def test_an_upload_that_ended_early_has_no_body_end(self, store):
        Upload(store, "abc", size=1000).finish(None, failed=True, received=10)
        assert store.get("abc", None).body_end is None


    def test_finish_keeps_the_files(self, store):
        upload = Upload(store, "abc")
        upload.read(500, FILES)
        upload.finish(200)
        assert store.get("abc", None).files == FILES


    def test_a_stage_is_reflected_and_kept_after_the_end(self, store):
        upload = Upload(store, "abc", owner="alice")
        store.stage(upload.key, "virus scan", None, None)
        store.stage(upload.key, "thumbnails", 3, 12)
        assert store.get("abc", "alice").stage == {"name": "thumbnails", "done": 3, "total": 12}
        upload.finish(200)
        [record] = store.list("alice")
        assert record.stage == {"name": "thumbnails", "done": 3, "total": 12}
        assert record.state == "done"


    @pytest.mark.parametrize("write", [
        lambda store, key: store.update(key, 5, None),
        lambda store, key: store.set_owner(key, "alice"),
        lambda store, key: store.stage(key, "scan", None, None),
        lambda store, key: store.finish(key, 5, None, 200, False, False),
        lambda store, key: store.discard(key),
    ], ids=["update", "set_owner", "stage", "finish", "discard"])
    def test_writes_to_a_forgotten_key_are_ignored(self, store, write):
        key = Upload(store, "abc", size=10).key
        store.discard(key)
        write(store, key)
        assert store.get("abc", None) is None
        assert store.list("alice") == []


    def test_get_returns_a_snapshot_not_the_stored_record(self, store):
        upload = Upload(store, "abc")
        snapshot = store.get("abc", None)
        upload.read(700)
        snapshot.received = 1
        assert store.get("abc", None).received == 700


    # -- who sees which upload ------------------------------------------------

    def test_unknown_id_gets_none(self, store):
        Upload(store, "abc")
        assert store.get("other", None) is None


    def test_pending_upload_is_visible_by_id_to_anyone(self, store):
        key = Upload(store, "abc").key
        assert [store.get("abc", who).key for who in (None, "alice", "bob")] == [key] * 3


    def test_owned_upload_is_visible_by_id_to_its_owner(self, store):
        key = Upload(store, "abc", owner="alice").key
        assert store.get("abc", "alice").key == key


    def test_owned_upload_is_invisible_by_id_to_another_owner(self, store):
        Upload(store, "abc", owner="alice")
        assert store.get("abc", "bob") is None


    def test_owned_upload_is_invisible_by_id_to_a_request_without_owner(self, store):
        Upload(store, "abc", owner="alice")
        assert store.get("abc", None) is None


    def test_upload_owned_by_none_is_visible_by_id_to_anyone(self, store):
        key = Upload(store, "abc", owner=None).key
        assert store.get("abc", None).key == key
        assert store.get("abc", "bob").key == key


    def test_a_poll_prefers_the_pollers_own_upload_to_a_newer_pending_one(self, store):
        mine = Upload(store, "abc", owner="alice").finish(200, received=1000).key
        Upload(store, "abc", size=3)  # someone else's, with my id, still pending
        assert store.get("abc", "alice").key == mine


    def test_a_poll_prefers_the_pollers_own_upload_to_a_newer_ownerless_one(self, store):
        mine = Upload(store, "abc", owner="alice").finish(200, received=1000).key
        Upload(store, "abc", size=3, owner=None).finish(404, received=3)
        assert store.get("abc", "alice").key == mine


    def test_without_an_own_upload_a_poll_gets_the_newest_pending_one(self, store):
        Upload(store, "abc", owner=None).finish(200, received=1000)
        newer = Upload(store, "abc").key
        assert store.get("abc", "alice").key == newer


    def test_pending_upload_is_not_listed(self, store):
        Upload(store, "abc")
        Upload(store)
        assert store.list("alice") == []


    def test_upload_owned_by_none_is_listed_for_nobody(self, store):
        Upload(store, "abc", owner=None)
        assert store.list("alice") == []
        assert store.list("None") == []


    def test_listing_holds_only_the_owners_uploads(self, store):
        mine = {Upload(store, owner="alice").key for _ in range(3)}
        Upload(store, owner="bob")
        Upload(store)
        assert {record.key for record in store.list("alice")} == mine


    def test_listing_is_newest_first(self, backend):
        keys = []
        for _ in range(3):
            keys.append(Upload(backend.store, owner="alice").key)
            backend.advance(0.01)
        assert [record.key for record in backend.store.list("alice")] == keys[::-1]


    def test_listing_is_newest_first_whatever_order_owners_become_known(self, backend):
        # A long upload behind pyramid_retry gets its owner only once its whole
        # body has arrived: after a short upload that started later.
        older = Upload(backend.store, path="/big", size=10**9)
        backend.advance(0.01)
        Upload(backend.store, path="/small", size=10, owner="alice")
        older.own("alice")
        assert [record.path for record in backend.store.list("alice")] == ["/small", "/big"]


    def test_listing_of_an_owner_without_uploads_is_empty(self, store):
        assert store.list("nobody") == []


    # -- expiry ---------------------------------------------------------------

    def test_finished_upload_stays_visible_until_timeout(self, backend):
        Upload(backend.store, "abc", owner="alice").finish(200, received=1000)
        backend.advance(TIMEOUT * 0.5)
        assert backend.store.get("abc", "alice") is not None
        assert len(backend.store.list("alice")) == 1


    def test_finished_upload_vanishes_after_timeout(self, backend):
        Upload(backend.store, "abc", owner="alice").finish(200, received=1000)
        backend.advance(TIMEOUT + 0.1)
        assert backend.store.get("abc", "alice") is None
        assert backend.store.list("alice") == []


    def test_upload_without_a_byte_for_stall_timeout_is_returned_failed(self, backend):
        Upload(backend.store, "abc", owner="alice").read(300)
        backend.store.get("abc", "alice")  # a poll sees the bytes
        backend.advance(STALL_TIMEOUT + 0.1)
        for record in (backend.store.get("abc", "alice"), *backend.store.list("alice")):
            assert (record.state, record.failed, record.received) == ("error", True, 300)
            assert record.finished is not None


    def test_stalled_upload_is_forgotten_after_stall_timeout_and_timeout(self, backend):
        Upload(backend.store, "abc", owner="alice")
        backend.advance(STALL_TIMEOUT + TIMEOUT + 0.1)
        assert backend.store.get("abc", "alice") is None
        assert backend.store.list("alice") == []


    def test_progress_keeps_an_upload_alive(self, backend):
        upload = Upload(backend.store, "abc")
        backend.advance(STALL_TIMEOUT * 0.7)
        upload.read(1)
        backend.store.get("abc", None)  # a poll sees the byte
        backend.advance(STALL_TIMEOUT * 0.7)
        assert backend.store.get("abc", None).state == "uploading"


    # -- reused ids -----------------------------------------------------------

    def test_reused_id_by_the_same_owner_replaces_its_finished_record(self, store):
        Upload(store, "abc", owner="alice").finish(200)
        new = Upload(store, "abc", owner="alice").key
        assert [record.key for record in store.list("alice")] == [new]
        assert store.get("abc", "alice").key == new


    def test_reused_id_answers_with_the_new_upload_while_it_is_pending(self, store):
        Upload(store, "abc", owner=None).finish(200)
        new = Upload(store, "abc").key
        assert store.get("abc", "alice").key == new


    def test_reused_id_by_another_owner_keeps_the_others_record(self, store):
        alices = Upload(store, "abc", owner="alice").finish(200).key
        bobs = Upload(store, "abc", owner="bob").key
        assert [record.key for record in store.list("alice")] == [alices]
        assert store.get("abc", "alice").key == alices
        assert store.get("abc", "bob").key == bobs


    def test_reused_id_keeps_the_owners_upload_still_in_progress(self, store):
        first = Upload(store, "abc", owner="alice").key
        second = Upload(store, "abc", owner="alice").key
        assert {record.key for record in store.list("alice")} == {first, second}


    # -- discard --------------------------------------------------------------

    def test_discard_forgets_an_upload_at_once(self, store):
        key = Upload(store, "abc", owner="alice").key
        store.discard(key)
        assert store.get("abc", "alice") is None
        assert store.list("alice") == []


    def test_discard_of_a_pending_upload_forgets_it(self, store):
        store.discard(Upload(store, "abc").key)
        assert store.get("abc", None) is None


    # -- cancel ---------------------------------------------------------------

    def test_cancel_marks_the_upload_and_tells_the_uploading_request(self, store):
        upload = Upload(store, "abc", owner="alice")
        upload.read(100)
        record = store.cancel("abc", "alice")
        assert (record.key, record.cancelled, record.state) == (upload.key, True, "uploading")
        assert upload.read(200) is True
        assert store.get("abc", "alice").cancelled is True


    def test_a_pending_upload_can_be_cancelled_by_whoever_knows_its_id(self, store):
        upload = Upload(store, "abc")
        assert store.cancel("abc", None).key == upload.key
        assert upload.read(1) is True


    def test_someone_elses_upload_cannot_be_cancelled(self, store):
        upload = Upload(store, "abc", owner="alice")
        assert store.cancel("abc", "bob") is None
        assert store.cancel("abc", None) is None
        assert upload.read(1) is False
        assert store.get("abc", "alice").cancelled is False


    def test_an_unknown_id_cannot_be_cancelled(self, store):
        assert store.cancel("nope", "alice") is None


    def test_a_finished_upload_cannot_be_cancelled(self, store):
        Upload(store, "abc", owner="alice").finish(200, received=1000)
        assert store.cancel("abc", "alice") is None
        assert store.get("abc", "alice").state == "done"


    def test_an_upload_read_whole_cannot_be_cancelled(self, store):
        upload = Upload(store, "abc", owner="alice", size=1000)
        upload.read(1000)
        assert store.cancel("abc", "alice") is None


    def test_a_chunked_upload_read_whole_cannot_be_cancelled(self, store):
        upload = Upload(store, "abc", owner="alice", size=None)
        upload.read(5000)
        upload.read(5000, ended=True)
        assert store.cancel("abc", "alice") is None
        assert store.get("abc", "alice").received == 5000


    def test_a_cancelled_upload_is_never_read_whole(self, store):
        upload = Upload(store, "abc", owner="alice", size=None)
        upload.read(10)
        store.cancel("abc", "alice")
        assert upload.read(30, ended=True) is True
        record = store.get("abc", "alice")
        assert (record.received, record.body_end, record.cancelled) == (30, None, True)


    def test_a_cancelled_uploads_progress_goes_on_being_recorded(self, backend):
        upload = Upload(backend.store, "abc", owner="alice", size=1000)
        upload.read(10)
        cancelled = backend.store.cancel("abc", "alice")
        backend.advance(0.1)
        upload.read(400, FILES)
        record = backend.store.get("abc", "alice")
        assert (record.received, record.files, record.cancelled) == (400, FILES, True)
        assert record.updated > cancelled.updated

    def test_a_progress_write_after_the_end_changes_nothing(self, backend):
        """A late write (a stage's progress from another thread of the app,
        racing the request's end) never takes a finished record back."""
        upload = Upload(backend.store, "abc", owner="alice", size=1000)
        upload.finish(200, received=1000)
        backend.advance(0.1)
        assert not backend.store.update(upload.key, 16, None, False)
        record = backend.store.get("abc", "alice")
        assert (record.state, record.received, record.body_end is None) == ("done", 1000, False)

    def test_a_stalled_upload_cannot_be_cancelled(self, backend):
        Upload(backend.store, "abc", owner="alice").read(300)
        backend.store.get("abc", "alice")  # a poll sees the bytes
        backend.advance(STALL_TIMEOUT + 0.1)
        assert backend.store.cancel("abc", "alice") is None


    def test_a_cancelled_upload_ends_in_error_cancelled(self, store):
        upload = Upload(store, "abc", owner="alice")
        store.cancel("abc", "alice")
        upload.finish(409, failed=True, cancelled=True, received=100)
        [record] = store.list("alice")
        assert (record.state, record.cancelled, record.status) == ("error", True, 409)


    def test_an_upload_that_ended_normally_despite_a_cancel_is_done(self, store):
        upload = Upload(store, "abc", owner="alice")
        store.cancel("abc", "alice")
        upload.finish(200, received=1000)
        record = store.get("abc", "alice")
        assert (record.state, record.cancelled) == ("done", False)


    # -- many threads ---------------------------------------------------------

    def test_concurrent_calls_leave_consistent_records(self, patient_store):
        store = patient_store
        threads, uploads = 8, 25
        errors: list[BaseException] = []
        barrier = threading.Barrier(threads)

        def work(n: int) -> None:
            owner = f"owner-{n}"
            try:
                barrier.wait()
                for i in range(uploads):
                    upload = Upload(store, f"id-{n}-{i}", size=100)
                    upload.read(50)
                    store.get(f"id-{n}-{i}", None)
                    upload.own(owner)
                    store.list(owner)
                    upload.finish(200, received=100)
                    store.get(f"id-{n}-{i}", owner)
                    if i % 5 == 0:
                        store.discard(upload.key)
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert errors == []
        kept = uploads - len(range(0, uploads, 5))
        for n in range(threads):
            records = store.list(f"owner-{n}")
            assert len(records) == kept
            assert all(r.state == "done" and r.received == 100 for r in records)
