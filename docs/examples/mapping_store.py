"""A small upload progress store: records as JSON in a mapping.

The worked example of "Writing your own store". The mapping is a dict
unless you pass another: anything with ``get``, ``__setitem__`` and
``pop`` of strings, such as a dict that another part of your app reads
too. Three kinds of key: ``upload:KEY`` holds a record, ``id:ID`` and
``owner:OWNER`` the keys of the uploads with that id or owner, oldest
first, so that a poll and a listing read only what they answer.

One lock serves the threads of one process. A mapping shared with other
processes needs that atomicity from its own service instead (the Redis
store runs each call as one Lua script; a database, one transaction).
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from zope.interface import implementer

from pyramid_upload_progress import IUploadProgressStore, UploadRecord
from pyramid_upload_progress.interfaces import LiveProgress
from pyramid_upload_progress.record import (
    FileProgress,
    can_cancel,
    poll_answer,
    progressed,
    replaces,
)

Files = list[FileProgress] | None
Keys = list[str]
"""An index: the keys of the uploads with one id, or of one owner."""


@implementer(IUploadProgressStore)
class MappingUploadProgressStore:
    """Upload records as JSON texts in ``mapping``."""

    throttled = True
    """The add-on writes each upload's progress with :meth:`update`, at most
    once per ``upload_progress.update_interval``."""

    def __init__(self, mapping: MutableMapping[str, str] | None = None, *,
                 timeout: float = 300.0, stall_timeout: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.mapping = {} if mapping is None else mapping
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._next_purge = 0.0

    # The interface: each method takes the lock once.

    def start(self, upload_id: str | None, path: str, size: int | None,
              progress: LiveProgress) -> str:
        now = self._clock()
        record = UploadRecord(key=os.urandom(9).hex(), id=upload_id, path=path,
                              size=size, started=now, updated=now)
        with self._lock:
            self._purge(now)
            self._save(record)
            if upload_id is not None:
                self._index_add("id:" + upload_id, record.key)
        return record.key

    def update(self, key: str, received: int, files: Files, ended: bool = False) -> bool:
        now = self._clock()
        with self._lock:
            record = self._load(key)
            if record is None:
                return False
            self._save(progressed(record, received, files, now, ended))
            return record.cancelled

    def set_owner(self, key: str, owner: str | None) -> None:
        with self._lock:
            record = self._load(key)
            if record is None or record.owner_known:
                return
            record.owner, record.owner_known = owner, True
            self._save(record)
            if owner is None:
                return
            self._index_add("owner:" + owner, key)
            if record.id is not None:
                for other in map(self._load, self._index("id:" + record.id)):
                    if other is not None and replaces(record, other):
                        self._forget(other)

    def stage(self, key: str, name: str, done: int | None, total: int | None) -> None:
        with self._lock:
            record = self._load(key)
            if record is not None:
                record.stage = {"name": name, "done": done, "total": total}
                self._save(record)

    def finish(self, key: str, received: int, files: Files, status: int | None,
               failed: bool, cancelled: bool) -> None:
        now = self._clock()
        with self._lock:
            record = self._load(key)
            if record is None:
                return
            record.received, record.files, record.status = received, files, status
            record.failed, record.cancelled = failed, cancelled
            record.updated = record.finished = now
            self._save(record)

    def discard(self, key: str) -> None:
        with self._lock:
            record = self._load(key)
            if record is not None:
                self._forget(record)

    def get(self, upload_id: str, owner: str | None) -> UploadRecord | None:
        now = self._clock()
        with self._lock:
            record = self._find(upload_id, owner, now)
        return None if record is None else record.as_of(now, self.stall_timeout)

    def list(self, owner: str) -> list[UploadRecord]:
        now = self._clock()
        with self._lock:
            records = [self._load(key) for key in self._index("owner:" + owner)]
        return sorted((record.as_of(now, self.stall_timeout) for record in records
                       if record is not None and self._alive(record, now)),
                      key=lambda record: record.started, reverse=True)

    def cancel(self, upload_id: str, owner: str | None) -> UploadRecord | None:
        now = self._clock()
        with self._lock:
            record = self._find(upload_id, owner, now)
            if record is None or not can_cancel(record, now, self.stall_timeout):
                return None
            record.cancelled = True  # the next update() answers True
            self._save(record)
        return record.as_of(now, self.stall_timeout)

    # The records and their indexes in the mapping; the lock is held.

    def _load(self, key: str) -> UploadRecord | None:
        text = self.mapping.get("upload:" + key)
        return None if text is None else UploadRecord(**json.loads(text))

    def _save(self, record: UploadRecord) -> None:
        self.mapping["upload:" + record.key] = json.dumps(dataclasses.asdict(record))

    def _index(self, name: str) -> Keys:
        return json.loads(self.mapping.get(name, "[]"))

    def _index_add(self, name: str, key: str) -> None:
        self.mapping[name] = json.dumps([*self._index(name), key])

    def _index_remove(self, name: str, key: str) -> None:
        keys = [other for other in self._index(name) if other != key]
        if keys:
            self.mapping[name] = json.dumps(keys)
        else:
            self.mapping.pop(name, None)

    def _find(self, upload_id: str, owner: str | None, now: float) -> UploadRecord | None:
        records = map(self._load, self._index("id:" + upload_id))
        return poll_answer((record for record in records
                            if record is not None and self._alive(record, now)), owner)

    def _alive(self, record: UploadRecord, now: float) -> bool:
        return now < record.expires(self.timeout, self.stall_timeout)

    def _forget(self, record: UploadRecord) -> None:
        self.mapping.pop("upload:" + record.key, None)
        if record.id is not None:
            self._index_remove("id:" + record.id, record.key)
        if record.owner is not None:
            self._index_remove("owner:" + record.owner, record.key)

    def _purge(self, now: float) -> None:
        """Forget expired records: a sweep at most once per ``timeout``."""
        if now < self._next_purge:
            return
        self._next_purge = now + self.timeout
        for name in [name for name in self.mapping if name.startswith("upload:")]:
            record = self._load(name[len("upload:"):])
            if record is not None and not self._alive(record, now):
                self._forget(record)


def mapping_store_factory(settings: Mapping[str, Any]) -> MappingUploadProgressStore:
    """For ``upload_progress.store = mapping_store.mapping_store_factory``:
    ``settings`` are the app's, with the add-on's parsed and defaulted."""
    return MappingUploadProgressStore(
        timeout=settings["upload_progress.timeout"],
        stall_timeout=settings["upload_progress.stall_timeout"])
