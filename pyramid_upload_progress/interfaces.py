"""The store interface: the spec a third-party store is written against.

:class:`IUploadProgressStore` is the spec, and the registry's key for the
store; :class:`UploadProgressStore` is the same seam as a
:class:`typing.Protocol`, for type checkers: annotate a store (or a
variable holding one) with it and mypy checks every method's signature.
"""
from __future__ import annotations

import builtins
from typing import Protocol

from zope.interface import Attribute, Interface

from .record import FileProgress, UploadRecord


class IUploadProgressStore(Interface):
    """Keeps upload records and answers "this upload" and "this owner's uploads".

    Registered as a utility, and checked with
    ``zope.interface.verify.verifyObject`` when the application is made. Every
    method may be called from many threads at once (one per request in a
    threaded server): a store does its own locking. A method that fails
    raises any exception; the add-on then logs the outage once (and its end)
    and carries on serving the upload untracked (writes) or answers 503
    (reads). No method may block for long: the write methods run inside the
    upload's request, so a store bounds every call (the Redis store by
    ``upload_progress.redis.socket_timeout``).

    Times are epoch seconds taken from the store's own clock, so that all
    the records of one store agree with each other.

    Type checkers see it as :class:`UploadProgressStore`.

    A record of an upload is an :class:`pyramid_upload_progress.record.UploadRecord`.
    Its ``key`` is chosen by the store, unique among the uploads it holds,
    and never shown to clients; ``id`` is the client's upload id, or
    ``None``. Until :meth:`set_owner` is called the owner of an upload is
    unknown (the upload is *pending*).

    A store whose records live in the process that serves the upload (as
    the memory store's do) says so with a class attribute ``per_process =
    True``: the add-on then warns, once, under a server that runs several
    processes (a poll may reach another one) or serves one request at a
    time (polls wait for the upload). A store without it is taken as
    shared (``False``); it is not part of the interface check.

    ``files`` arguments and record fields are ``None`` for a body that is not
    ``multipart/form-data``, else a list of mappings ``{"field": str,
    "filename": str, "received": int, "done": bool}``
    (:class:`~pyramid_upload_progress.record.FileProgress`) in body order:
    plain JSON data, for a store to keep as it comes.
    """

    throttled = Attribute(
        "How the store learns an upload's progress. True: the add-on calls "
        ":meth:`update` at most once per ``upload_progress.update_interval`` "
        "seconds (counted from the end of the previous write), and always "
        "at once for the read that ends the body (``ended``); it always "
        "calls :meth:`start`, :meth:`set_owner` and :meth:`finish`; for a "
        "store shared between processes (Redis, SQLite). False: the store "
        "lives in the process serving the upload and reads the ``progress`` "
        "object given to :meth:`start` whenever it is asked; :meth:`update` "
        "is never called (the memory store, which so shows every read at "
        "once at no cost per read)."
    )

    def start(upload_id, path, size, progress):
        """Record a new upload, pending, with nothing received; return its key.

        ``upload_id`` is the client's id (already validated) or ``None``;
        ``path`` is the request path without the query string; ``size`` is
        the Content-Length, or ``None`` for a chunked body. ``progress`` is
        the upload as it happens in this process: its attributes
        ``received`` (int) and ``files`` (see above) are the progress at
        this moment; ``body_end`` is ``None`` until the body has been read
        whole, then the epoch seconds (``time.time()`` of this process)
        when it was, for the record's ``body_end``; ``receiving`` is true
        until the body has been read whole or the client has gone; and its
        ``cancel()`` makes the upload's next read of its body raise
        :class:`pyramid_upload_progress.UploadCancelled`. A throttled store
        ignores it. Returns ``None`` when the store declines to track
        the upload (it is full); the upload is then served untracked. Called
        from the request's thread, before any of the body is read; under
        the waitress runner, for an upload with an id, from the runner's
        writer thread (or the request's) once waitress has its headers,
        some of the body perhaps received already.
        """

    def update(key, received, files, ended=False):
        """Record that ``received`` bytes of the body have been read, and
        the file parts seen so far; return whether the upload was cancelled.

        Only called for a throttled store. ``received`` never decreases and
        never exceeds the size. Also marks the upload as alive now, for
        ``stall_timeout``. ``ended`` is true when this write reports the
        read that ended the body (the read that returned the last byte of a
        sized body, or ``b""`` of a chunked one; the add-on makes that write
        at once): unless the upload was cancelled, the store then sets the
        record's ``body_end`` to its now, if it is not set already; from
        then on :meth:`cancel` refuses the upload. Returns true when
        :meth:`cancel` has been called for the upload: the add-on then makes
        its next read raise ``UploadCancelled`` (so a cancel costs no
        round-trip of its own). A key the store has already forgotten is
        ignored (return false). Called from the thread reading the body;
        under the waitress runner, while waitress receives the body, from
        the runner's writer thread.
        Implement it as ``update(self, key, received, files, ended=False)``.
        """

    def set_owner(key, owner):
        """Record whose upload this is: a string, or ``None`` for nobody.

        Called at most once per upload, from the request's thread, inside the
        application's request handling. From then on the upload appears in
        ``owner``'s listing and, by id, answers ``owner`` first (see
        :meth:`get`). A finished upload of the same owner with the same
        ``id`` is forgotten: a reused id replaces the old record.
        """

    def stage(key, name, done, total):
        """Record what the application is doing with the upload now
        (``request.upload_progress.stage(...)``): ``name`` a string, ``done``
        and ``total`` ints or ``None``. The record's ``stage`` becomes
        ``{"name": name, "done": done, "total": total}`` (the add-on has
        checked the values: plain JSON data). Called from the request's
        thread, or another thread of the app; the add-on throttles
        repeated calls with the same name like progress writes (always
        writing a new name, and the last call before :meth:`finish`).
        """

    def finish(key, received, files, status, failed, cancelled):
        """Record the end of an upload.

        ``received`` is the final byte count and ``files`` the final file
        parts; ``status`` the response status (an int), or ``None`` when
        the request ended in an exception; ``failed`` is true when reading
        the body failed (the client disconnected) or the request raised;
        ``cancelled`` is true when the upload ended because it was
        cancelled (its status is then 409 and ``failed`` true). The record
        takes ``cancelled`` as given, so an upload that was read whole
        before it could see a cancel ends as it really ended. The record is
        kept for ``timeout`` seconds from now. Called once per upload, from
        the thread that served the request; under the waitress runner, for
        an upload that waitress ended before the app ran (a cancel, its own
        413, a client gone), from the runner's writer thread.
        """

    def discard(key):
        """Forget an upload at once (it is no longer tracked)."""

    def get(upload_id, owner):
        """Return the record a poll for ``upload_id`` by ``owner`` answers,
        or ``None``.

        That is the newest of ``owner``'s own uploads with that id (not for
        ``owner is None``); only when there is none, the newest pending or
        ownerless (owned by ``None``) upload with that id. Records of other
        owners are never returned. Records past their expiry are never
        returned; an unfinished record that received nothing for
        ``stall_timeout`` seconds is returned as failed (see
        ``UploadRecord.as_of``). Called from any thread.
        """

    def list(owner):
        """Return the records owned by ``owner`` (a string), the most
        recently started first.

        Pending uploads are not listed. The same expiry rules as :meth:`get`.
        Must cost O(the owner's uploads), not O(all uploads). Called from
        any thread.
        """

    def cancel(upload_id, owner):
        """Cancel the upload that :meth:`get` would return for the same
        arguments, if it is still receiving its body (unfinished, not
        stalled, and its ``body_end`` ``None``: for an unthrottled store,
        its ``progress.body_end``); return that record, now with
        ``cancelled`` true, or ``None`` (nothing to cancel: no such upload,
        someone else's, finished, or its body read whole).

        The store marks the record cancelled and makes the uploading
        request learn it: at once through ``progress.cancel()`` for an
        unthrottled store, through the answer of the next :meth:`update`
        for a throttled one. Called from any thread, typically from another
        process than the upload's.
        """


class IUploadEvent(Interface):
    """A Pyramid event about one tracked upload (``config.add_subscriber``)."""

    request = Attribute("The Pyramid request that carries the upload.")
    upload = Attribute(
        "The upload as of the event: an "
        ":class:`pyramid_upload_progress.record.UploadRecord` made in the "
        "process serving it (times from its clock; ``key`` is the store's).")


class IUploadStarted(IUploadEvent):
    """Sent once per tracked upload, when its owner has been looked up,
    inside the app's handling. A subscriber that raises an HTTP exception
    (say ``HTTPRequestEntityTooLarge`` for a quota) refuses the upload
    before the application reads its body, where nothing in front of the
    app read it already."""


class IUploadFinished(IUploadEvent):
    """Sent when the record of an upload that had :class:`IUploadStarted`
    ends (done, error or cancelled), from the thread that served it. Its
    ``request`` is the one ``UploadStarted`` had: for a request that
    pyramid_retry retried, the attempt that looked the owner up."""


class LiveProgress(Protocol):
    """An upload as it happens in the process serving it: the ``progress``
    given to :meth:`IUploadProgressStore.start` (see there)."""

    @property
    def received(self) -> int: ...

    @property
    def files(self) -> builtins.list[FileProgress] | None: ...

    @property
    def receiving(self) -> bool: ...

    @property
    def body_end(self) -> float | None: ...

    def cancel(self) -> None: ...


class UploadProgressStore(Protocol):
    """:class:`IUploadProgressStore` for type checkers: the methods and
    their signatures, documented there. (``per_process``, optional, is not
    part of it.)"""

    @property
    def throttled(self) -> bool: ...

    def start(self, upload_id: str | None, path: str, size: int | None,
              progress: LiveProgress) -> str | None: ...

    def update(self, key: str, received: int, files: builtins.list[FileProgress] | None,
               ended: bool = False) -> bool: ...

    def set_owner(self, key: str, owner: str | None) -> None: ...

    def stage(self, key: str, name: str, done: int | None, total: int | None) -> None: ...

    def finish(self, key: str, received: int, files: builtins.list[FileProgress] | None,
               status: int | None, failed: bool, cancelled: bool) -> None: ...

    def discard(self, key: str) -> None: ...

    def get(self, upload_id: str, owner: str | None) -> UploadRecord | None: ...

    def list(self, owner: str) -> builtins.list[UploadRecord]: ...

    def cancel(self, upload_id: str, owner: str | None) -> UploadRecord | None: ...
