"""The record of one upload, and the one function that renders it as JSON.

An app that wants more fields in its report registers its own view, reads
records through :class:`~pyramid_upload_progress.interfaces.IUploadProgressStore`
and extends the mapping :func:`render_upload` returns.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

STARTING = "starting"
UPLOADING = "uploading"
DONE = "done"
ERROR = "error"


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
    files: list[dict[str, Any]] | None = None
    """The file parts of a ``multipart/form-data`` body, else ``None``."""
    stage: dict[str, Any] | None = None
    """``{"name": str, "done": int | None, "total": int | None}`` once set."""
    body_end: float | None = None
    """Epoch seconds when the body was read whole (the store's clock), else
    ``None``: ``rate`` is the body's, from its first byte to its last."""

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


def render_upload(record: UploadRecord, now: float) -> dict[str, Any]:
    """The UPLOAD mapping of the public contract for ``record`` at ``now``.

    ``rate`` is the average from the start to the body's end (else to the
    record's end, else to ``now``), ``eta`` the time left at that rate. Only the contract's fields: nothing else of the request is shown.
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
    if state == DONE:
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
