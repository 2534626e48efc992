"""One tracked upload, from its first byte to its end."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .events import UploadFinished, UploadStarted
from .health import StoreHealth
from .multipart import MultipartScanner
from .record import FileProgress, UploadRecord
from .stream import CountingInput, counting_input
from .timing import Clock, Throttle

log = logging.getLogger(__name__)


class TrackedUpload:
    """The link between one request's counting input and its store record.

    It is also the ``progress`` an unthrottled store reads (``received``,
    ``files``, ``receiving``, ``body_end``, ``cancel()``). Its ``record``
    is the upload as this process knows it, under the store's key once
    :meth:`~pyramid_upload_progress.interfaces.IUploadProgressStore.start`
    has given one. A store that fails is never
    allowed to reach the upload: the upload goes on untracked (the store is
    dropped for the rest of it). A retried request (pyramid_retry) keeps this
    one object in its environ, so its bytes are counted once, its owner
    looked up once, its events sent once and its record ended once.

    ``throttle`` says when its writes go to the store (none of its progress
    to a store that reads it live); ``clock`` is where it reads the time.
    """

    def __init__(self, store: Any, health: StoreHealth, raw_input: Any,
                 upload_id: str | None, path: str, size: int | None,
                 boundary: bytes | None, owner: Callable[[Any], str | None],
                 throttle: Throttle, clock: Clock) -> None:
        self._store = store
        self._health = health
        self._owner = owner
        self._throttle = throttle
        self._clock = clock
        self._unwritten = False
        self._stage_name: str | None = None
        self._unwritten_stage: tuple[str, int | None, int | None] | None = None
        self._request: Any = None
        self._finished = False
        now = clock.time()
        self._floor = 0
        self.record = UploadRecord(key="", id=upload_id, path=path, size=size,
                                   started=now, updated=now)
        self._scanner = None if boundary is None else MultipartScanner(boundary)
        self.input: CountingInput = counting_input(raw_input, size, self._observer(),
                                                   self._body_ended)

    def _observer(self) -> Callable[[bytes], None] | None:
        """What the input calls with new bytes: nothing at all for a store
        that reads the progress live and a body that is not multipart."""
        scanner = self._scanner
        if not self._throttle.progress:
            return None if scanner is None else scanner.feed
        if scanner is None:
            return self._write_progress
        feed = scanner.feed

        def scan_and_write(data: bytes) -> None:
            feed(data)
            self._write_progress(data)

        return scan_and_write

    # The progress an unthrottled store reads.

    @property
    def received(self) -> int:
        return max(self.input.received, self._floor)

    @property
    def files(self) -> list[FileProgress] | None:
        return None if self._scanner is None else self._scanner.files()

    @property
    def receiving(self) -> bool:
        return not (self._finished or self.input.ended)

    @property
    def body_end(self) -> float | None:
        return self.record.body_end

    def cancel(self) -> None:
        self.input.cancelled = True

    def adopt(self, started: float, received: int, body_end: float | None) -> None:
        """Go on with the record a server runner started while the server
        received the body (the waitress runner; the caller sets the key):
        same start, ``received`` never below what it recorded, the body's
        end its own. It recorded the body's progress to its end: no
        progress write is due from here, only the owner, stages and the end."""
        self.record.started = started
        self.record.body_end = body_end
        self._floor = received
        self.input.observe = None if self._scanner is None else self._scanner.feed
        self.input.on_end = None

    # The request's side.

    def _write_progress(self, data: bytes) -> None:
        """Called with each read's new bytes; writes at most once per
        interval (counted from the end of the previous write). The read that
        ends the body is written by :meth:`_body_ended`, right after this.
        What is left unwritten otherwise goes with the next write: a
        stage's, the body's end's, or the record's end's."""
        throttle = self._throttle  # due() written out: it runs at every read
        if throttle.monotonic() < throttle.due_at or self.input.ended:
            self._unwritten = True
        else:
            self._send_progress()

    def _body_ended(self) -> None:
        """The input has just been read whole: a throttled store is told at
        once, so that it shows every byte and refuses a cancel (404), and
        a cancel that came during that read is learnt in time to refuse
        the read (the body of a cancelled upload is never read whole)."""
        now = self._clock.time()
        if self._throttle.progress and self._store is not None:
            self._send_progress(ended=True)
        if not self.input.cancelled:
            self.record.body_end = now

    def _send_progress(self, ended: bool = False) -> None:
        """Write the progress now; the store answers whether it was cancelled."""
        self._unwritten = False
        try:
            cancelled = self._store.update(self.record.key, self.input.received,
                                           self.files, ended)
        except Exception:
            self._drop_store("recording progress")
            return
        if cancelled:
            self.input.cancelled = True
        self._throttle.wrote()

    def resolve_owner(self, request: Any) -> None:
        """Look up whose upload this is, once, inside the app's handling,
        and send ``UploadStarted``. An owner lookup that raises leaves the
        upload untracked, and served."""
        if self._request is not None or self._store is None:
            return
        self._request = request
        try:
            owner = self._owner(request)
        except Exception:
            log.exception("upload progress: looking up the owner of an upload "
                          "failed; the upload is served untracked")
            store = self._store
            self._untrack()
            try:
                store.discard(self.record.key)
            except Exception:
                self._health.failed("discarding an upload")
            return
        try:
            self._store.set_owner(self.record.key, owner)
        except Exception:
            self._drop_store("recording the owner")
            return
        self.record.owner = owner
        self.record.owner_known = True
        request.registry.notify(UploadStarted(request, self.snapshot()))

    def stage(self, name: str, done: int | None, total: int | None) -> None:
        """What the app is doing with the upload now: a new name is written
        at once, the same name again at most once per interval, and the last
        call always by the end. Progress still unwritten is written first,
        so that a bar shows all the body while the app works on it."""
        if self._store is None or self._finished:
            return
        if self._unwritten:
            self._send_progress()
            if self._store is None:
                return
        new_name = name != self._stage_name
        self._stage_name = name
        self._unwritten_stage = (name, done, total)
        if new_name or self._throttle.due():
            self._write_stage(name, done, total)

    def _write_stage(self, name: str, done: int | None, total: int | None) -> None:
        self._unwritten_stage = None
        self.record.stage = {"name": name, "done": done, "total": total}
        try:
            self._store.stage(self.record.key, name, done, total)
        except Exception:
            self._drop_store("recording a stage")
            return
        self._throttle.wrote()

    def finish(self, status: int | None, failed: bool) -> None:
        """End the record once, with the response status or failed, and send
        ``UploadFinished`` if ``UploadStarted`` was sent."""
        if self._finished:
            return
        if self._store is not None and self._unwritten_stage is not None:
            self._write_stage(*self._unwritten_stage)
        self._finished = True
        stream = self.input
        record = self.record
        record.received = self.received
        record.files = self.files
        record.status = status
        record.failed = failed or stream.disconnected or stream.cancel_raised
        record.cancelled = stream.cancel_raised
        record.finished = self._clock.time()
        store = self._store
        if store is not None:
            try:
                store.finish(record.key, record.received, record.files, status,
                             record.failed, record.cancelled)
            except Exception:
                self._drop_store("recording the end")
        if record.owner_known and self._request is not None:
            self._request.registry.notify(UploadFinished(self._request, self.snapshot()))

    def snapshot(self) -> UploadRecord:
        """The upload as this process knows it, for events."""
        record = self.record
        if record.finished is None:
            record.received = self.received
            record.files = self.files
        return record.as_of(self._clock.time(), float("inf"))

    def _drop_store(self, doing: str) -> None:
        self._untrack()
        self._health.failed(doing)

    def _untrack(self) -> None:
        """No more store calls for this upload, nor work per read for them."""
        self._store = None
        self.input.observe = None if self._scanner is None else self._scanner.feed
