"""The in-process store: the default, for an app served by one process."""
from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from zope.interface import implementer

from ..interfaces import IUploadProgressStore
from ..record import UploadRecord

log = logging.getLogger(__name__)


@implementer(IUploadProgressStore)
class MemoryUploadProgressStore:
    """Upload records in a dict, shared by the threads of one process.

    Expiry needs no background thread: a heap orders records by when they
    may expire, and each :meth:`start` forgets those whose time has come,
    so the cost is paid by the expired records alone. Reads never return an
    expired record, purged or not. Progress updates take no lock: they only
    set two attributes of a record.

    ``clock`` gives epoch seconds; tests pass their own.
    """

    throttled = False

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
        self._by_id: dict[str, list[str]] = {}
        self._by_owner: dict[str, dict[str, None]] = {}
        self._expiry: list[tuple[float, str]] = []
        self._full = False

    def __len__(self) -> int:
        return len(self._records)

    def start(self, upload_id: str | None, path: str, size: int | None) -> str | None:
        now = self._clock()
        key = os.urandom(9).hex()
        record = UploadRecord(key=key, id=upload_id, path=path, size=size,
                              started=now, updated=now)
        with self._lock:
            self._purge(now)
            if len(self._records) >= self.max_uploads:
                if not self._full:
                    self._full = True
                    log.warning(
                        "upload progress: the memory store holds its maximum "
                        "of %d uploads (upload_progress.max_uploads); new "
                        "uploads are served untracked until some expire",
                        self.max_uploads)
                return None
            self._full = False
            self._records[key] = record
            if upload_id is not None:
                self._by_id.setdefault(upload_id, []).append(key)
            heapq.heappush(self._expiry, (record.expires(self.timeout, self.stall_timeout), key))
        return key

    def update(self, key: str, received: int) -> None:
        record = self._records.get(key)
        if record is not None:
            record.received = received
            record.updated = self._clock()

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
                    old = self._records[other]
                    if other != key and old.owner_known and old.owner == owner \
                            and old.finished is not None:
                        self._forget(other)

    def finish(self, key: str, received: int, status: int | None, failed: bool) -> None:
        now = self._clock()
        with self._lock:
            record = self._records.get(key)
            if record is None:
                return
            record.received = received
            record.updated = now
            record.status = status
            record.failed = failed
            record.finished = now
            heapq.heappush(self._expiry, (now + self.timeout, key))

    def discard(self, key: str) -> None:
        with self._lock:
            if key in self._records:
                self._forget(key)

    def get(self, upload_id: str, owner: str | None) -> UploadRecord | None:
        now = self._clock()
        with self._lock:
            for key in reversed(self._by_id.get(upload_id, ())):
                record = self._records[key]
                if record.visible_to(owner) and self._alive(record, now):
                    return record.as_of(now, self.stall_timeout)
        return None

    def list(self, owner: str) -> list[UploadRecord]:
        now = self._clock()
        with self._lock:
            # Owners become known out of start order (a large upload behind
            # pyramid_retry gets its owner last); the sort is stable, so the
            # reversal puts ties in the newest-known-first order.
            records = [self._records[key]
                       for key in reversed(self._by_owner.get(owner, {}))]
            records.sort(key=lambda record: record.started, reverse=True)
            return [record.as_of(now, self.stall_timeout)
                    for record in records if self._alive(record, now)]

    def _alive(self, record: UploadRecord, now: float) -> bool:
        return now < record.expires(self.timeout, self.stall_timeout)

    def _purge(self, now: float) -> None:
        """Forget the records whose time has come; the lock is held."""
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, key = heapq.heappop(expiry)
            record = self._records.get(key)
            if record is None:
                continue
            due = record.expires(self.timeout, self.stall_timeout)
            if due <= now:
                self._forget(key)
            elif record.finished is None:
                # It received bytes since it was scheduled: look again later.
                heapq.heappush(expiry, (due, key))

    def _forget(self, key: str) -> None:
        """Drop a record and its index entries; the lock is held."""
        record = self._records.pop(key)
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
    """The factory behind ``upload_progress.store = memory`` (the default).

    ``settings`` are the app's settings, already parsed by the add-on.
    """
    return MemoryUploadProgressStore(
        timeout=settings["upload_progress.timeout"],
        stall_timeout=settings["upload_progress.stall_timeout"],
        max_uploads=settings["upload_progress.max_uploads"],
    )
