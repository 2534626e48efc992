"""What is specific to the SQLite store; its contract is the shared suite's
(``tests/test_store_contract.py``)."""
from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError

from pyramid_upload_progress.interfaces import IUploadProgressStore
from pyramid_upload_progress.stores import sqlite as sqlite_module
from pyramid_upload_progress.stores.sqlite import (
    BUSY_TIMEOUT,
    PURGE_BATCH,
    SQLiteUploadProgressStore,
    sqlite_store_factory,
)

from tests.read_only import read_only
from tests.stores import Progress

PATH_SETTING = "upload_progress.sqlite.path"


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "upload-progress.sqlite3")


def make_store(path, clock, **kwargs):
    store = SQLiteUploadProgressStore(path, clock=clock, **kwargs)
    store.create()
    return store


@pytest.fixture
def store(path, clock):
    return make_store(path, clock, timeout=10.0, stall_timeout=100.0)


def start(store, upload_id=None, size=1000):
    return store.start(upload_id, "/upload", size, Progress())


def rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM uploads").fetchone()[0]


def settings(**values):
    parsed = {"upload_progress.timeout": 300.0, "upload_progress.stall_timeout": 3600.0,
              "upload_progress.max_uploads": 10000}
    parsed.update(values)
    return parsed


# -- the file and its connections ---------------------------------------------

def test_the_file_is_in_wal_mode(store, path):
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_connections_do_not_sync_and_wait_briefly_for_a_lock(store):
    db = store._connection()
    assert db.execute("PRAGMA synchronous").fetchone() == (0,)
    assert db.execute("PRAGMA busy_timeout").fetchone() == (0,)  # retried by the store


def test_each_thread_has_its_own_connection(store):
    seen = []
    thread = threading.Thread(target=lambda: seen.append(store._connection()))
    thread.start()
    thread.join()
    assert seen[0] is not store._connection()


def test_a_lookup_by_id_and_a_listing_use_an_index(store):
    db = store._connection()
    plans = [
        db.execute("EXPLAIN QUERY PLAN SELECT * FROM uploads WHERE id = ? AND expires > ? "
                   "AND (owner = ? OR owner IS NULL)", ("abc", 0, "alice")).fetchall(),
        db.execute("EXPLAIN QUERY PLAN SELECT * FROM uploads WHERE owner = ? "
                   "AND expires > ? ORDER BY started DESC", ("alice", 0)).fetchall(),
    ]
    for plan in plans:
        details = " ".join(row[-1] for row in plan)
        assert "USING INDEX" in details and "SCAN uploads" not in details


def test_a_write_locked_elsewhere_fails_within_the_busy_timeout(store, path):
    key = start(store, "abc")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        began = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.update(key, 10, None)
        assert time.monotonic() - began < BUSY_TIMEOUT + 0.15
    finally:
        other.execute("ROLLBACK")
    assert store.update(key, 20, None) is False


def test_reads_do_not_wait_for_a_write_lock(store, path):
    start(store, "abc")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("DELETE FROM uploads")
    try:
        began = time.monotonic()
        assert store.get("abc", None) is not None
        assert time.monotonic() - began < BUSY_TIMEOUT / 2
    finally:
        other.execute("ROLLBACK")


def test_a_connection_made_before_a_fork_is_not_used_by_the_child(store):
    key = start(store, "abc")
    parents = store._connection()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and leave without any clean-up
        code = 1
        try:
            os.close(read)
            childs = store._connection()
            store.update(key, 500, None)
            kept = any(connection is parents for connection in sqlite_module._INHERITED)
            code = 0 if childs is not parents and kept else 2
        finally:
            os._exit(code)
    os.close(write)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store._connection() is parents
    assert store.get("abc", None).received == 500


def test_a_forked_child_never_closes_the_connections_of_other_threads(store):
    opened = threading.Event()
    done = threading.Event()
    theirs = []

    def hold():
        theirs.append(store._connection())
        opened.set()
        done.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    opened.wait(5)
    try:
        pid = os.fork()
        if pid == 0:
            kept = any(connection is theirs[0] for connection in sqlite_module._INHERITED)
            os._exit(0 if kept else 3)
        _, status = os.waitpid(pid, 0)
    finally:
        done.set()
        thread.join()
    assert os.waitstatus_to_exitcode(status) == 0


def test_processes_share_the_records(store, path):
    key = start(store, "abc")
    code = (
        "import sys; from pyramid_upload_progress.stores.sqlite import "
        "SQLiteUploadProgressStore as S; s = S(sys.argv[1]); "
        "s.update(sys.argv[2], 700, None); print(s.get('abc', None).received)"
    )
    output = subprocess.run([sys.executable, "-c", code, path, key], check=True,
                            capture_output=True, text=True, timeout=30).stdout
    assert output.strip() == "700"
    assert store.get("abc", None).received == 700


# -- eviction and expiry ------------------------------------------------------

def test_a_full_store_forgets_the_oldest_finished_record(path, clock):
    store = make_store(path, clock, max_uploads=3)
    first, second, third = (start(store, name) for name in ("a", "b", "c"))
    store.finish(second, 1000, None, 200, False, False)
    clock.advance(1)
    store.finish(first, 1000, None, 200, False, False)
    assert start(store, "d") is not None
    assert [store.get(name, None) is None for name in "abcd"] == [False, True, False, False]


def test_a_store_full_of_uploads_in_progress_declines_with_one_warning(path, clock, caplog):
    store = make_store(path, clock, max_uploads=2)
    kept = [start(store, "a"), start(store, "b")]
    with caplog.at_level(logging.WARNING, logger=sqlite_module.__name__):
        assert start(store, "c") is None
        assert start(store, "d") is None
    assert len(caplog.records) == 1
    assert "upload_progress.max_uploads" in caplog.text
    store.finish(kept[0], 1000, None, 200, False, False)
    assert start(store, "e") is not None


def test_each_start_purges_a_bounded_number_of_expired_records(path, clock):
    store = make_store(path, clock, timeout=1.0, stall_timeout=100.0)
    for _ in range(3 * PURGE_BATCH):
        store.finish(start(store), 1000, None, 200, False, False)
    clock.advance(2)
    start(store)
    assert rows(path) == 3 * PURGE_BATCH + 1 - PURGE_BATCH
    start(store)
    start(store)
    assert rows(path) == 3


def test_expired_records_are_never_read_before_they_are_purged(path, clock):
    store = make_store(path, clock, timeout=1.0, stall_timeout=100.0)
    key = start(store, "abc")
    store.set_owner(key, "alice")
    store.finish(key, 1000, None, 200, False, False)
    clock.advance(2)
    assert (store.get("abc", "alice"), store.list("alice"), rows(path)) == (None, [], 1)


# -- a file that fails --------------------------------------------------------

def test_a_deleted_file_is_made_anew_and_tracking_resumes(store, path):
    old = start(store, "old")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    store.update(old, 10, None)  # the record went with the file: ignored
    assert store.get("old", None) is None
    start(store, "new")
    assert store.get("new", None).state == "uploading"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_deleted_file_with_its_wal_left_behind_starts_empty(store, path):
    start(store, "old")
    os.unlink(path)
    start(store, "new")
    assert store.get("old", None) is None
    assert store.get("new", None) is not None


def test_a_corrupted_file_makes_every_call_raise(store, path):
    start(store, "abc")
    with open(path, "r+b") as file:
        file.write(b"not a database" * 100)
    fresh = SQLiteUploadProgressStore(path)
    with pytest.raises(sqlite3.DatabaseError):
        start(fresh)
    with pytest.raises(sqlite3.DatabaseError):
        fresh.get("abc", None)


def test_a_read_only_file_refuses_the_writes_of_new_connections(store, path, clock):
    key = start(store, "abc")
    with read_only(path):
        fresh = SQLiteUploadProgressStore(path, clock=clock)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            start(fresh)
        assert fresh.get("abc", None).key == key


def test_tracking_resumes_once_the_file_is_writable_again(store, path, clock):
    fresh = SQLiteUploadProgressStore(path, clock=clock)
    with read_only(path):
        assert fresh.get("abc", None) is None  # opened read-only, while it is
        with pytest.raises(sqlite3.OperationalError):
            start(fresh, "abc")
    start(fresh, "abc")
    assert store.get("abc", None) is not None


def test_a_connection_opened_before_the_file_turned_read_only_goes_on(store, path):
    # SQLite writes into the -wal file, which stays writable.
    key = start(store, "abc")
    with read_only(path):
        store.update(key, 300, None)
        assert store.get("abc", None).received == 300


# -- start-up -----------------------------------------------------------------

def test_the_factory_makes_the_file_from_the_settings(path):
    store = sqlite_store_factory(settings(**{
        PATH_SETTING: path, "upload_progress.timeout": 5.0,
        "upload_progress.stall_timeout": 50.0, "upload_progress.max_uploads": 7}))
    assert (store.path, store.timeout, store.stall_timeout, store.max_uploads) == (
        path, 5.0, 50.0, 7)
    assert rows(path) == 0


def test_a_relative_path_is_taken_from_the_directory_at_start_up(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = sqlite_store_factory(settings(**{PATH_SETTING: "progress.sqlite3"}))
    assert store.path == str(tmp_path / "progress.sqlite3")


def test_a_missing_directory_stops_start_up_naming_setting_and_path(tmp_path):
    path = str(tmp_path / "nowhere" / "progress.sqlite3")
    with pytest.raises(ConfigurationError) as error:
        sqlite_store_factory(settings(**{PATH_SETTING: path}))
    assert PATH_SETTING in str(error.value) and path in str(error.value)
    assert "does not exist" in str(error.value)


@pytest.mark.parametrize("make", [
    lambda path: os.mkdir(path),
    lambda path: open(path, "wb").write(b"not a database" * 100),
], ids=["a directory", "not a database"])
def test_a_path_that_cannot_be_used_stops_start_up(path, make):
    make(path)
    with pytest.raises(ConfigurationError) as error:
        sqlite_store_factory(settings(**{PATH_SETTING: path}))
    assert PATH_SETTING in str(error.value) and path in str(error.value)


def test_a_read_only_file_stops_start_up(store, path):
    with read_only(path), pytest.raises(ConfigurationError, match="readonly"):
        sqlite_store_factory(settings(**{PATH_SETTING: path}))


def test_memory_is_not_a_path(tmp_path):
    with pytest.raises(ConfigurationError, match=":memory:"):
        sqlite_store_factory(settings(**{PATH_SETTING: ":memory:"}))


def test_the_store_setting_names_the_sqlite_store(path):
    with Configurator(settings={"upload_progress.store": "sqlite",
                                PATH_SETTING: path}) as config:
        config.include("pyramid_upload_progress")
        config.commit()
        store = config.registry.getUtility(IUploadProgressStore)
    assert isinstance(store, SQLiteUploadProgressStore)
    assert store.path == path


def test_an_app_with_a_bad_path_does_not_start(tmp_path):
    path = str(tmp_path / "nowhere" / "progress.sqlite3")
    config = Configurator(settings={"upload_progress.store": "sqlite", PATH_SETTING: path})
    config.include("pyramid_upload_progress")
    with pytest.raises(ConfigurationError, match="upload_progress.sqlite.path"):
        config.make_wsgi_app()


def test_a_file_of_the_first_schema_gains_body_end_at_start_up(path, clock):
    """A file made by a version before ``body_end`` (schema version 1) is
    upgraded when the app starts, not refused at every call."""
    first_schema = sqlite_module.SCHEMA.replace(",\n    body_end REAL\n", "\n")
    assert "body_end" not in first_schema
    with sqlite3.connect(path) as db:
        db.executescript(f"{first_schema} PRAGMA user_version = 1;")
    store = make_store(path, clock)
    key = start(store, "old")
    store.update(key, 1000, None, True)
    assert store.get("old", None).body_end == clock()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
