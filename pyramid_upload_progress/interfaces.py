"""The store interface: the spec a third-party store is written against."""
from zope.interface import Attribute, Interface


class IUploadProgressStore(Interface):
    """Keeps upload records and answers "this upload" and "this owner's uploads".

    Registered as a utility; the add-on looks it up once, when the application
    is made. Every method may be called from many threads at once (one per
    request in a threaded server): a store does its own locking. A method
    that fails raises any exception; the add-on then logs it and carries on
    serving the upload untracked (writes) or answers 503 (reads). No method
    may block for long: the write methods run inside the upload's request.

    Times are epoch seconds taken from the store's own clock, so that all
    the records of one store agree with each other.

    A record of an upload is an :class:`pyramid_upload_progress.record.UploadRecord`.
    Its ``key`` is chosen by the store, unique among the uploads it holds,
    and never shown to clients; ``id`` is the client's upload id, or
    ``None``. Until :meth:`set_owner` is called the owner of an upload is
    unknown (the upload is *pending*).
    """

    throttled = Attribute(
        "True if the store asks the add-on to write an upload's progress at "
        "most once per ``upload_progress.update_interval`` seconds (a store "
        "with a network round-trip per call, such as Redis). The start and "
        "the end of an upload are always written. False: every read of the "
        "body is written at once (the memory store)."
    )

    def start(upload_id, path, size):
        """Record a new upload, pending, with nothing received; return its key.

        ``upload_id`` is the client's id (already validated) or ``None``;
        ``path`` is the request path without the query string; ``size`` is
        the Content-Length, or ``None`` for a chunked body. Returns ``None``
        when the store declines to track the upload (it is full); the upload
        is then served untracked. Called from the request's thread, before
        any of the body is read.
        """

    def update(key, received):
        """Record that ``received`` bytes of the body have been read.

        ``received`` never decreases and never exceeds the size. Also marks
        the upload as alive now, for ``stall_timeout``. A key the store has
        already forgotten is ignored. Called from the thread reading the body,
        once per read (or once per ``update_interval`` for a throttled store).
        """

    def set_owner(key, owner):
        """Record whose upload this is: a string, or ``None`` for nobody.

        Called at most once per upload, from the request's thread, inside the
        application's request handling. From then on the upload appears in
        ``owner``'s listing and, by id, answers only ``owner`` (an upload
        owned by ``None`` answers anyone who knows its id). A finished
        upload of the same owner with the same ``id`` is forgotten: a reused
        id replaces the old record.
        """

    def finish(key, received, status, failed):
        """Record the end of an upload.

        ``received`` is the final byte count; ``status`` the response status
        (an int), or ``None`` when the request ended in an exception;
        ``failed`` is true when reading the body failed (the client
        disconnected) or the request raised. The record is kept for
        ``timeout`` seconds from now. Called once per upload, from the thread
        that served the request.
        """

    def discard(key):
        """Forget an upload at once (it is no longer tracked)."""

    def get(upload_id, owner):
        """Return the newest record with client id ``upload_id`` visible to
        ``owner``, or ``None``.

        Visible: the upload is pending, or owned by ``owner``, or owned by
        ``None``. Records past their expiry are never returned; an unfinished
        record that received nothing for ``stall_timeout`` seconds is returned
        as failed (see ``UploadRecord.stalled``). Called from any thread.
        """

    def list(owner):
        """Return the records owned by ``owner`` (a string), the most
        recently started first.

        Pending uploads are not listed. The same expiry rules as :meth:`get`.
        Must cost O(the owner's uploads), not O(all uploads). Called from
        any thread.
        """
