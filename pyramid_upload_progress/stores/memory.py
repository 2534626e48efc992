"""The in-process store: the default, for an app served by one process."""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from zope.interface import implementer

from ..interfaces import IUploadProgressStore, LiveProgress
from ..record import (
    FileProgress,
    UploadRecord,
    can_cancel,
    poll_answer,
    progressed,
    replaces,
)

log = logging.getLogger(__name__)


@implementer(IUploadProgressStore)
class MemoryUploadProgressStore:
    """Upload records in a dict, shared by the threads of one process.

    It is written nothing while an upload's body arrives: it reads the
    upload's live ``progress`` (see :meth:`~pyramid_upload_progress.interfaces.IUploadProgressStore.start`) when
    it is asked, so it shows every read at once and costs nothing per read;
    ``body_end`` too, as the progress gives it (the serving process's clock,
    which is this store's).
    A record's ``updated`` (for ``stall_timeout``) is the time a change was
    last seen, never earlier than the last byte really came.

    Memory is O(``max_uploads``): when full, the oldest finished record is
    forgotten to make room; only when every record is still in progress is
    a new upload declined (served untracked, with one warning). Expiry
    needs no background thread: finished records are kept in the order
    they finished, so each ``start()`` forgets those whose time has come
    from the front, and looks at the oldest unfinished ones for stalls.
    Reads never return an expired record, purged or not.

    ``clock`` gives epoch seconds; tests pass their own.
    """

    throttled = False
    per_process = True
    """Each process has its own: the add-on warns under a server that runs
    several processes, or serves one request at a time."""

    def __init__(
        self,
        *,
        timeout: float = 300.0,
        stall_timeout: float = 3600.0,
        max_uploads: int = 10000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.max_uploads = max_uploads
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, UploadRecord] = {}
        self._live: dict[str, LiveProgress] = {}
        self._by_id: dict[str, list[str]] = {}
        self._by_owner: dict[str, dict[str, None]] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._unfinished: OrderedDict[str, None] = OrderedDict()
        self._full = False

    def __len__(self) -> int:
        return len(self._records)

    def start(self, upload_id: str | None, path: str, size: int | None,
              progress: LiveProgress) -> str | None:
        now = self._clock()
        key = os.urandom(9).hex()
        record = UploadRecord(key=key, id=upload_id, path=path, size=size,
                              started=now, updated=now)
        with self._lock:
            self._purge(now)
            if len(self._records) >= self.max_uploads:
                if not self._finished:
                    if not self._full:
                        self._full = True
                        log.warning(
                            "upload progress: the memory store holds its "
                            "maximum of %d uploads in progress "
                            "(upload_progress.max_uploads); new uploads are "
                            "served untracked until some end",
                            self.max_uploads)
                    return None
                self._forget(next(iter(self._finished)))
            self._full = False
            self._records[key] = record
            self._live[key] = progress
            self._unfinished[key] = None
            if upload_id is not None:
                self._by_id.setdefault(upload_id, []).append(key)
        return key

    def update(self, key: str, received: int, files: list[FileProgress] | None,
               ended: bool = False) -> bool:
        now = self._clock()
        with self._lock:
            record = self._records.get(key)
            if record is None:
                return False
            self._records[key] = progressed(record, received, files, now, ended)
            return record.cancelled

    def set_owner(self, key: str, owner: str | None) -> None:
        with self._lock:
            record = self._records.get(key)
            if record is None or record.owner_known:
                return
            record.owner = owner
            record.owner_known = True
            if owner is None:
                return
            self._by_owner.setdefault(owner, {})[key] = None
            if record.id is not None:
                for other in list(self._by_id[record.id]):
                    if replaces(record, self._records[other]):
                        self._forget(other)

    def stage(self, key: str, name: str, done: int | None, total: int | None) -> None:
        with self._lock:
            record = self._records.get(key)
            if record is not None:
                record.stage = {"name": name, "done": done, "total": total}

    def finish(self, key: str, received: int, files: list[FileProgress] | None,
               status: int | None, failed: bool, cancelled: bool) -> None:
        now = self._clock()
        with self._lock:
            record = self._records.get(key)
            if record is None:
                return
            record.received = received
            record.files = files
            record.updated = now
            record.status = status
            record.failed = failed
            record.cancelled = cancelled
            record.finished = now
            record.body_end = self._live[key].body_end
            del self._live[key]
            del self._unfinished[key]
            self._finished[key] = None

    def discard(self, key: str) -> None:
        with self._lock:
            if key in self._records:
                self._forget(key)

    def get(self, upload_id: str, owner: str | None) -> UploadRecord | None:
        now = self._clock()
        with self._lock:
            record = self._find(upload_id, owner, now)
            return None if record is None else self._as_of(record, now)

    def cancel(self, upload_id: str, owner: str | None) -> UploadRecord | None:
        now = self._clock()
        with self._lock:
            record = self._find(upload_id, owner, now)
            if record is None:
                return None
            self._refresh(record)
            if not can_cancel(record, now, self.stall_timeout):
                return None
            self._live[record.key].cancel()
            record.cancelled = True
            return self._as_of(record, now)

    def list(self, owner: str) -> list[UploadRecord]:
        now = self._clock()
        with self._lock:
            records = [self._records[key] for key in self._by_owner.get(owner, ())]
            return sorted((self._as_of(record, now) for record in records
                           if self._alive(record, now)),
                          key=lambda record: record.started, reverse=True)

    def _find(self, upload_id: str, owner: str | None, now: float) -> UploadRecord | None:
        records = (self._records[key] for key in self._by_id.get(upload_id, ()))
        return poll_answer((record for record in records if self._alive(record, now)),
                           owner)

    def _alive(self, record: UploadRecord, now: float) -> bool:
        """Whether ``record`` is still kept; brings its progress up to date."""
        progress = self._live.get(record.key)
        if progress is not None and progress.received != record.received:
            record.received = progress.received
            record.updated = now
        return now < record.expires(self.timeout, self.stall_timeout)

    def _as_of(self, record: UploadRecord, now: float) -> UploadRecord:
        self._refresh(record)
        return record.as_of(now, self.stall_timeout)

    def _refresh(self, record: UploadRecord) -> None:
        """Bring an unfinished record's file parts and ``body_end`` up to
        date from its upload's live progress."""
        progress = self._live.get(record.key)
        if progress is not None:
            record.files = progress.files
            record.body_end = progress.body_end

    def _purge(self, now: float) -> None:
        """Forget the records whose time has come; the lock is held."""
        finished = self._finished
        while finished:
            key = next(iter(finished))
            if self._alive(self._records[key], now):
                break
            self._forget(key)
        for _ in range(2):
            if not self._unfinished:
                break
            key = next(iter(self._unfinished))
            if self._alive(self._records[key], now):
                self._unfinished.move_to_end(key)
            else:
                self._forget(key)

    def _forget(self, key: str) -> None:
        """Drop a record and its index entries; the lock is held."""
        record = self._records.pop(key)
        self._live.pop(key, None)
        self._finished.pop(key, None)
        self._unfinished.pop(key, None)
        if record.id is not None:
            keys = self._by_id[record.id]
            keys.remove(key)
            if not keys:
                del self._by_id[record.id]
        if record.owner is not None:
            owned = self._by_owner[record.owner]
            del owned[key]
            if not owned:
                del self._by_owner[record.owner]


def memory_store_factory(settings: Mapping[str, Any]) -> MemoryUploadProgressStore:
    """The factory behind ``upload_progress.store = memory`` (the default),
    for a factory of your own to wrap. ``settings`` are the app's settings,
    already parsed by the add-on."""
    return MemoryUploadProgressStore(
        timeout=settings["upload_progress.timeout"],
        stall_timeout=settings["upload_progress.stall_timeout"],
        max_uploads=settings["upload_progress.max_uploads"],
    )
