"""The SQLite store: one file shared by the worker processes of one host."""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from importlib.resources import files as _package_files
from typing import Any
from urllib.parse import quote

from pyramid.exceptions import ConfigurationError
from zope.interface import implementer

from ..interfaces import IUploadProgressStore, LiveProgress
from ..record import FileProgress, UploadRecord

log = logging.getLogger(__name__)

BUSY_TIMEOUT = 0.1
"""Seconds a statement may wait for another's write lock before it fails."""
START_UP_TIMEOUT = 10.0
"""Seconds :func:`sqlite_store_factory` may wait for worker processes
starting at once to make the file one after the other."""
PURGE_BATCH = 8
"""Expired records forgotten per new upload at the most: never a sweep."""

_PURGE = ("DELETE FROM uploads WHERE rowid IN (SELECT rowid FROM uploads "
          f"WHERE expires <= ? ORDER BY expires LIMIT {PURGE_BATCH})")

SCHEMA = _package_files(__package__).joinpath("sqlite.sql").read_text(
    encoding="utf-8").replace("{purge_batch}", str(PURGE_BATCH))
"""The schema (``sqlite.sql``): tables, indexes and the triggers."""

_COLUMNS = ("key, id, path, size, started, updated, received, finished, status, "
            "failed, owner, owner_known, cancelled, files, stage, body_end")
_PROGRESS = "received = ?, files = ?, updated = ?, expires = ?"
_NEWEST_FIRST = "ORDER BY started DESC, rowid DESC"
_FIND = ("SELECT {columns} FROM uploads WHERE id = ? AND expires > ? "
         "AND (owner = ? OR owner IS NULL) "
         "ORDER BY owner IS NULL, started DESC, rowid DESC LIMIT 1")
"""``record.poll_answer``: pending and ownerless records both have a NULL
owner (``owner = NULL`` is never true)."""
_INSERT = ("INSERT INTO uploads (key, id, path, size, started, updated, expires) "
           "SELECT ?, ?, ?, ?, ?, ?, ? WHERE (SELECT count(*) FROM uploads) < ?")
_EVICT = ("DELETE FROM uploads WHERE rowid = (SELECT rowid FROM uploads "
          "WHERE finished IS NOT NULL ORDER BY finished LIMIT 1)")

_INHERITED: list[sqlite3.Connection] = []
"""Connections inherited across a fork, kept so that they are never closed:
SQLite forbids it (its clean-up could delete what the parent still uses)."""


class _Connection(sqlite3.Connection):
    """A connection whose statements that find the database locked are
    tried again every millisecond, for ``lock_timeout`` in all (a statement
    that failed on the lock did nothing). SQLite's own busy handler sleeps
    ever longer (9 tries in 0.1 s): 200 uploads starting at once in 4
    processes on 2 cores left a few untracked (measured)."""

    lock_timeout = BUSY_TIMEOUT

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        deadline = None
        while True:
            try:
                return super().execute(sql, parameters)
            except sqlite3.OperationalError as exc:
                if str(exc) != "database is locked":
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.lock_timeout
                elif now >= deadline:
                    raise
                time.sleep(0.001)


class _ThreadConnection:
    """One thread's connection, and the process and file it belongs to."""

    __slots__ = ("connection", "pid", "file")

    def __init__(self, connection: sqlite3.Connection, file: tuple[int, int]) -> None:
        self.connection = connection
        self.pid = os.getpid()
        self.file = file

    def __del__(self) -> None:
        # Runs when the thread ends, and in a forked child for the threads
        # that did not survive the fork: close only what this process opened.
        if self.pid == os.getpid():
            self.connection.close()
        else:
            _INHERITED.append(self.connection)


@implementer(IUploadProgressStore)
class SQLiteUploadProgressStore:
    """Upload records in one SQLite file, shared by the processes of a host.

    Python's own ``sqlite3``: nothing to install or run. WAL mode, one
    connection per thread of each process (never one inherited across a
    fork), every write one statement; the file is made by
    :func:`sqlite_store_factory` and made anew if it is deleted. Why, and
    what each failure does: the documentation's :ref:`sqlite-store`.

    ``clock`` gives epoch seconds (one clock for the whole host);
    ``lock_timeout`` is how long a write may wait for the lock
    (``BUSY_TIMEOUT``); tests pass their own.
    """

    throttled = True

    def __init__(self, path: str, *, timeout: float = 300.0, stall_timeout: float = 3600.0,
                 max_uploads: int = 10000, clock: Callable[[], float] = time.time,
                 lock_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = os.path.abspath(path)
        self.lock_timeout = lock_timeout
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.max_uploads = max_uploads
        self._clock = clock
        self._local = threading.local()
        self._full = False

    def create(self, timeout: float = START_UP_TIMEOUT, *, anew: bool = False) -> None:
        """Make the file and its schema if need be, and prove it writable;
        raise ``sqlite3.Error`` or ``OSError`` if not. Once across
        processes, under a lock on its directory. ``anew``: the file was
        deleted; make it (unless another process has), without the old
        ``-wal`` and ``-shm`` files, which SQLite would read as its own."""
        fd = os.open(os.path.dirname(self.path), os.O_RDONLY | os.O_CLOEXEC)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.005)
            if anew:
                if os.path.exists(self.path):
                    return
                log.warning("upload progress: the SQLite store %s was deleted; "
                            "making it anew", self.path)
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path + suffix)
            connection = self._connect("rwc", timeout)
            try:
                [mode] = connection.execute("PRAGMA journal_mode = WAL").fetchone()
                if mode != "wal":
                    raise sqlite3.OperationalError(f"cannot use WAL mode (got {mode!r})")
                [version] = connection.execute("PRAGMA user_version").fetchone()
                # A file made by version 1 of the schema lacks body_end.
                upgrade = "ALTER TABLE uploads ADD COLUMN body_end REAL;" if version == 1 else ""
                connection.executescript(
                    f"BEGIN IMMEDIATE; {SCHEMA} {upgrade} PRAGMA user_version = 2; COMMIT;")
            finally:
                connection.close()
        finally:
            os.close(fd)

    def start(self, upload_id: str | None, path: str, size: int | None,
              progress: LiveProgress) -> str | None:
        now = self._clock()
        key = os.urandom(9).hex()
        row = (key, upload_id, path, size, now, now, self._live_until(now),
               self.max_uploads)
        with self._connected() as db:
            if not db.execute(_INSERT, row).rowcount:
                # Full: make room with what has expired, else by forgetting
                # the oldest finished upload.
                if not db.execute(_PURGE, (now,)).rowcount:
                    db.execute(_EVICT)
                if not db.execute(_INSERT, row).rowcount:
                    self._warn_full()
                    return None
        self._full = False
        return key

    def update(self, key: str, received: int, files: list[FileProgress] | None,
               ended: bool = False) -> bool:
        now = self._clock()
        progress = (received, _json(files), now, self._live_until(now))
        with self._connected() as db:  # record.progressed
            if db.execute(
                    f"UPDATE uploads SET {_PROGRESS}, body_end = coalesce(body_end, ?) "
                    "WHERE key = ? AND finished IS NULL AND NOT cancelled",
                    (*progress, now if ended else None, key)).rowcount:
                return False
            # Cancelled (its body never counts as read whole), finished or forgotten.
            return bool(db.execute(f"UPDATE uploads SET {_PROGRESS} WHERE key = ? "
                                   "AND finished IS NULL AND cancelled",
                                   (*progress, key)).rowcount)

    def set_owner(self, key: str, owner: str | None) -> None:
        with self._connected() as db:
            db.execute("UPDATE uploads SET owner = ?, owner_known = 1 "
                       "WHERE key = ? AND NOT owner_known", (owner, key))

    def stage(self, key: str, name: str, done: int | None, total: int | None) -> None:
        stage = {"name": name, "done": done, "total": total}
        with self._connected() as db:
            db.execute("UPDATE uploads SET stage = ? WHERE key = ?", (_json(stage), key))

    def finish(self, key: str, received: int, files: list[FileProgress] | None,
               status: int | None, failed: bool, cancelled: bool) -> None:
        now = self._clock()
        with self._connected() as db:
            db.execute(
                "UPDATE uploads SET received = ?, files = ?, updated = ?, status = ?, "
                "failed = ?, cancelled = ?, finished = ?, expires = ? WHERE key = ?",
                (received, _json(files), now, status, failed, cancelled, now,
                 now + self.timeout, key))

    def discard(self, key: str) -> None:
        with self._connected() as db:
            db.execute("DELETE FROM uploads WHERE key = ?", (key,))

    def get(self, upload_id: str, owner: str | None) -> UploadRecord | None:
        now = self._clock()
        with self._connected() as db:
            row = self._find(db, upload_id, owner, now)
        return None if row is None else _record(row).as_of(now, self.stall_timeout)

    def list(self, owner: str) -> list[UploadRecord]:
        now = self._clock()
        with self._connected() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM uploads WHERE owner = ? AND expires > ? "
                f"{_NEWEST_FIRST}", (owner, now)).fetchall()
        return [_record(row).as_of(now, self.stall_timeout) for row in rows]

    def cancel(self, upload_id: str, owner: str | None) -> UploadRecord | None:
        now = self._clock()
        with self._connected() as db:  # record.can_cancel
            cancelled = db.execute(
                f"UPDATE uploads SET cancelled = 1 WHERE rowid = "
                f"({_FIND.format(columns='rowid')}) AND finished IS NULL "
                "AND updated > ? AND body_end IS NULL",
                (upload_id, now, owner, now - self.stall_timeout)).rowcount
            row = self._find(db, upload_id, owner, now) if cancelled else None
        return None if row is None else _record(row).as_of(now, self.stall_timeout)

    def _find(self, db: sqlite3.Connection, upload_id: str, owner: str | None,
              now: float) -> tuple[Any, ...] | None:
        return db.execute(_FIND.format(columns=_COLUMNS),
                          (upload_id, now, owner)).fetchone()

    def _live_until(self, now: float) -> float:
        """When an upload last alive at ``now`` may be forgotten."""
        return now + self.stall_timeout + self.timeout

    def _warn_full(self) -> None:
        if not self._full:
            self._full = True
            log.warning(
                "upload progress: the SQLite store %s holds its maximum of %d "
                "uploads in progress (upload_progress.max_uploads); new uploads "
                "are served untracked until some end", self.path, self.max_uploads)

    @contextlib.contextmanager
    def _connected(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, for one call. After an error the next
        call opens a new connection: say this one opened the file read-only
        while it was, or the file has been put right since."""
        db = self._connection()
        try:
            yield db
        except sqlite3.Error:
            self._local.held = None
            raise

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection to the file now at ``self.path``, made
        anew if the file was deleted."""
        try:
            stat = os.stat(self.path)
            file = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            file = None
        held = getattr(self._local, "held", None)
        if held is not None and held.file == file and held.pid == os.getpid():
            return held.connection
        # Dropping a connection of this process to a replaced file closes it,
        # safely: SQLite sees the file moved, and leaves the -wal and -shm
        # files at the path alone.
        self._local.held = None
        if file is None:
            self.create(BUSY_TIMEOUT, anew=True)
        connection = self._connect("rw", 0)
        stat = os.stat(self.path)
        self._local.held = _ThreadConnection(connection, (stat.st_dev, stat.st_ino))
        return connection

    def _connect(self, mode: str, timeout: float) -> sqlite3.Connection:
        """A connection; ``mode`` ``rw`` never makes the file, ``rwc`` may;
        SQLite's busy handler waits ``timeout`` seconds at the most."""
        connection = sqlite3.connect(
            f"file:{quote(self.path)}?mode={mode}", uri=True, timeout=timeout,
            isolation_level=None, check_same_thread=False, factory=_Connection)
        connection.lock_timeout = self.lock_timeout
        connection.execute("PRAGMA synchronous = OFF")
        return connection


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _record(row: tuple[Any, ...]) -> UploadRecord:
    (key, upload_id, path, size, started, updated, received, finished, status,
     failed, owner, owner_known, cancelled, files, stage, body_end) = row
    return UploadRecord(
        key, upload_id, path, size, started, updated, received, finished, status,
        bool(failed), owner, bool(owner_known), bool(cancelled),
        None if files is None else json.loads(files),
        None if stage is None else json.loads(stage), body_end)


def sqlite_store_factory(settings: Mapping[str, Any]) -> SQLiteUploadProgressStore:
    """The factory behind ``upload_progress.store = sqlite``: the file
    ``upload_progress.sqlite.path`` (the one place that checks it), made now
    with its schema. No path, a missing directory, or a file that cannot be
    made or written stops the app at start-up with a
    :class:`pyramid.exceptions.ConfigurationError` naming the setting."""
    setting = "upload_progress.sqlite.path"
    path = settings.get(setting)
    if not path or path == ":memory:":
        raise ConfigurationError(
            f"{setting} is required with upload_progress.store = sqlite: the "
            "SQLite file shared by the worker processes (not :memory:)")
    store = SQLiteUploadProgressStore(
        path, timeout=settings["upload_progress.timeout"],
        stall_timeout=settings["upload_progress.stall_timeout"],
        max_uploads=settings["upload_progress.max_uploads"])
    directory = os.path.dirname(store.path)
    if not os.path.isdir(directory):
        raise ConfigurationError(
            f"{setting} = {path!r}: the directory {directory} does not exist")
    try:
        store.create()
    except (sqlite3.Error, OSError) as exc:
        raise ConfigurationError(
            f"{setting} = {path!r}: cannot use {store.path} as the SQLite "
            f"store ({exc})") from None
    return store
