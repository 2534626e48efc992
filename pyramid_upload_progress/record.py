"""The record of one upload, and the one function that renders it as JSON.

An app that wants more fields in its report registers its own view, reads
records through :class:`~pyramid_upload_progress.interfaces.IUploadProgressStore`
and extends the mapping :func:`render_upload` returns.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypedDict

STARTING = "starting"
UPLOADING = "uploading"
DONE = "done"
ERROR = "error"


class FileProgress(TypedDict):
    """One file part of a ``multipart/form-data`` body, in body order."""

    field: str
    filename: str
    received: int
    done: bool


class Stage(TypedDict):
    """What the application is doing with an upload now."""

    name: str
    done: int | None
    total: int | None


@dataclass(slots=True)
class UploadRecord:
    """What a store keeps of one upload; never any other request data."""

    key: str
    """The store's own key: unique in the store, never shown to clients."""
    id: str | None
    """The client's upload id, or ``None``."""
    path: str
    """The request path, without the query string."""
    size: int | None
    """The Content-Length, or ``None`` for a chunked body."""
    started: float
    """Epoch seconds."""
    updated: float
    """Epoch seconds of the last read (or of the start): for stall detection."""
    received: int = 0
    finished: float | None = None
    status: int | None = None
    """The response status, ``None`` until known or if the request raised."""
    failed: bool = False
    """The client disconnected, the request raised (or its response body
    did), the upload was cancelled, or it stalled."""
    owner: str | None = None
    owner_known: bool = False
    """False while the upload is pending: its owner is not yet known."""
    cancelled: bool = False
    files: list[FileProgress] | None = None
    """The file parts of a ``multipart/form-data`` body, else ``None``."""
    stage: Stage | None = None
    """``{"name": str, "done": int | None, "total": int | None}`` once set."""
    body_end: float | None = None
    """Epoch seconds (the store's clock) when the body was read whole: the
    read that returned its last byte (or ``b""`` of a chunked body);
    ``None`` until then."""

    @property
    def state(self) -> str:
        """``uploading``, ``done`` or ``error`` (the nginx module's states)."""
        if self.finished is None:
            return UPLOADING
        if self.failed or self.cancelled or self.status is None or self.status >= 400:
            return ERROR
        return DONE

    def expires(self, timeout: float, stall_timeout: float) -> float:
        """When a store forgets this record: ``timeout`` after it finished,
        or after it stalled."""
        if self.finished is not None:
            return self.finished + timeout
        return self.updated + stall_timeout + timeout

    def as_of(self, now: float, stall_timeout: float) -> UploadRecord:
        """A copy of this record as a client sees it at ``now``.

        An unfinished upload that has received nothing for ``stall_timeout``
        seconds (its worker probably died) is shown finished and failed, as
        of the moment it stalled.
        """
        stalled_at = self.updated + stall_timeout
        if self.finished is None and now >= stalled_at:
            return dataclasses.replace(self, finished=stalled_at, failed=True)
        return dataclasses.replace(self)


# The store rules: each written once, here, for every store. The memory store
# and the docs' example store call them; the SQL of the SQLite store and the
# Lua of the Redis store each name the function they implement.

def poll_answer(records: Iterable[UploadRecord], owner: str | None) -> UploadRecord | None:
    """The record a poll for an id by ``owner`` answers, of ``records``: the
    live records with that id, in the order they started.

    The newest of ``owner``'s own; only when there is none, the newest
    pending or ownerless one. Another owner's record never answers (a
    request without an owner has no records of its own).
    """
    own = other = None
    for record in records:
        if record.owner_known and record.owner is not None:
            if record.owner == owner:
                own = record
        else:
            other = record
    return own if own is not None else other


def can_cancel(record: UploadRecord, now: float, stall_timeout: float) -> bool:
    """Whether ``record``'s upload can still be cancelled at ``now``: it is
    still receiving its body (unfinished, not stalled, ``body_end`` unset)."""
    return (record.finished is None and now < record.updated + stall_timeout
            and record.body_end is None)


def replaces(new: UploadRecord, old: UploadRecord) -> bool:
    """Whether naming ``new``'s owner forgets ``old``: a reused id replaces
    the same owner's finished record with that id."""
    return (old.key != new.key and new.id is not None and old.id == new.id
            and new.owner is not None and old.owner_known and old.owner == new.owner
            and old.finished is not None)


def progressed(record: UploadRecord, received: int, files: list[FileProgress] | None,
               now: float, ended: bool) -> UploadRecord:
    """``record`` after a progress write (``update``): the bytes and file
    parts, alive at ``now``; ``body_end`` set once, by the write of the read
    that ended the body, and never for a cancelled upload. A cancelled
    upload's progress goes on being recorded (it stays cancelled); a
    finished record takes no more (a late write from another thread of the
    app, racing the request's end, would take it back)."""
    if record.finished is not None:
        return record
    body_end = record.body_end
    if ended and body_end is None and not record.cancelled:
        body_end = now
    return dataclasses.replace(record, received=received, files=files, updated=now,
                               body_end=body_end)


def render_upload(record: UploadRecord, now: float) -> dict[str, Any]:
    """The UPLOAD mapping of the public contract for ``record`` at ``now``.

    ``rate`` is the body's: bytes over the time from the start to the
    body's end (``body_end``), else to the record's end, else to ``now``;
    so it does not fall while the app works on a body that is in. ``eta``
    is the time left at that rate, 0 once the body is in. Only the
    contract's fields: nothing else of the request is shown.
    """
    state = record.state
    end = record.body_end
    if end is None:
        end = record.finished if record.finished is not None else now
    elapsed = end - record.started
    rate = record.received / elapsed if elapsed > 0 else None
    percent = None
    eta = None
    if record.size:
        percent = round(100.0 * record.received / record.size, 2)
    if state == DONE or (state == UPLOADING and record.body_end is not None):
        eta = 0.0
    elif state == UPLOADING and record.size is not None and rate:
        eta = round(max(record.size - record.received, 0) / rate, 2)
    return {
        "id": record.id,
        "state": state,
        "received": record.received,
        "size": record.size,
        "percent": percent,
        "rate": None if rate is None else round(rate, 1),
        "eta": eta,
        "started": record.started,
        "finished": record.finished,
        "path": record.path,
        "status": record.status,
        "cancelled": record.cancelled,
        "files": record.files,
        "stage": record.stage,
    }


def render_starting(upload_id: str) -> dict[str, Any]:
    """The answer for an id that is unknown, expired or someone else's.

    It is the same in all three cases, as the nginx module's answer for an
    upload that has not reached the server yet, so that a poll tells nobody
    whether another user's id exists. Its fields are the UPLOAD's, with
    nothing known (``started`` and ``path`` too: nothing true can be said).
    """
    upload = dict.fromkeys(_FIELDS)
    upload.update(id=upload_id, state=STARTING, received=0, cancelled=False)
    return upload


_FIELDS = tuple(render_upload(UploadRecord("", None, "", None, 0.0, 0.0), 0.0))
