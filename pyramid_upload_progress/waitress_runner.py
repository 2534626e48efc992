"""The waitress runner: upload progress while waitress receives a body.

waitress, Pyramid's default server, reads each request's whole body in its
one I/O thread before it calls the application, so a counting input sees
the body only once it has arrived. This runner serves the app with waitress
(every setting ``egg:waitress#main`` takes, unchanged) and watches
waitress's request parser instead: a request with a body and an upload id
gets its record once its headers are in, pending (visible by its id alone),
with ``received`` rising as waitress receives the body; when the app runs,
the add-on's execution policy goes on with that same record (same key,
same ``started``, ``received`` never lower), and looks its owner up as for
any upload. Its ``body_end`` is when waitress had the whole body, so
``rate`` and ``eta`` are the body's real arrival.

In a PasteDeploy ``.ini``::

    [server:main]
    use = egg:pyramid_upload_progress#waitress
    listen = localhost:6543

or from Python, in place of ``waitress.serve(app, **settings)``::

    from pyramid_upload_progress.waitress_runner import serve
    serve(app, listen="localhost:6543")

waitress's I/O thread never waits on the store: its writes are handed to
one writer thread (:class:`StoreWriter`), which coalesces them per upload
and drops them, never blocks, when it is behind. A DELETE while waitress
receives the body stops it (409, and the connection closes); the app is
never called for it. waitress's own refusals (``max_request_body_size``:
413; a broken chunked body: 400) and a client gone mid-body end the record
``error``.

It relies on waitress internals, none of them documented, all unchanged
from waitress 1.4.4 to 3.0.2 (the range the ``waitress`` extra pins):

- ``waitress.server.create_server(app, map=..., **settings)``, and the
  ``channel_class`` of the ``BaseWSGIServer`` instances it puts in ``map``;
- ``HTTPChannel``: ``parser_class``, ``task_class``, ``request`` (the
  request being received), ``handle_close()``;
- ``HTTPRequestParser``: ``received(data)`` (called per socket read),
  ``close()`` (called once waitress is done with the request, served or not),
  ``headers_finished``, ``completed``, ``error``, ``content_length``,
  ``chunked``, ``body_rcv``, ``headers``, ``path``, ``query``;
- ``FixedStreamReceiver.remain``; ``len()`` of a ``ChunkedReceiver``;
- ``WSGITask``: ``get_environment()``, ``execute()``, ``status``;
- ``waitress.utilities.Error`` (``code``, ``reason``, ``to_response()``),
  as the parser's ``error`` that answers a cancel.

They are checked at start-up, with a request parsed for the check: where
they differ the runner logs one warning ("progress while waitress buffers
is off: ...") and serves exactly as plain waitress. Every use at request
time is guarded too: a request never fails because of the runner.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from pyramid.interfaces import IExecutionPolicy

from . import ids
from .policy import RunnerLink, UploadProgressPolicy, request_path
from .environ import BUFFERED_KEY
from .record import FileProgress
from .tracking import TrackedUpload

log = logging.getLogger(__name__)

MAX_PENDING = 10000
"""Uploads waiting for the writer at the most; past it a write is dropped."""

_MAX_WRAPPERS = 32
"""WSGI middleware followed from the served app to the Pyramid router."""

OFF = "progress while waitress buffers is off: "


# --- one upload while waitress receives it -----------------------------------


class BufferedUpload:
    """One upload while waitress's I/O thread receives its body.

    The I/O thread sets ``received``, ``body_end`` and, when waitress ends
    the request before the app runs, the outcome; the writer thread makes
    the store calls; the app's thread takes the record over
    (:meth:`hand_over`). ``lock`` is held by whichever of the last two is
    writing, so the record is never written by both.

    It is also the ``progress`` an unthrottled store reads (``received``,
    ``files``, ``receiving``, ``body_end``, ``cancel()``): after the hand-over
    ``files`` are the app's; ``received`` stays waitress's count, the whole
    body, which the app's reads never pass.
    """

    def __init__(self, link: RunnerLink, writer: StoreWriter, upload_id: str,
                 path: str, size: int | None) -> None:
        self._link = link
        self._writer = writer
        self.upload_id = upload_id
        self.path = path
        self.size = size
        self.started = link.clock.time()
        self.received = 0
        self.body_end: float | None = None
        self.cancelled = False
        self.outcome: tuple[int | None, bool] | None = None
        """``(status, cancelled)`` once waitress ended the request itself."""
        self.throttle = link.throttle(link.clock)
        """When the store is due the next progress write."""
        self.lock = threading.Lock()
        self.key: str | None = None
        self._ended_written = False
        self._done = False
        """No more writes from the writer: handed over, ended or dropped."""
        self._dropped = False
        self._tracked: TrackedUpload | None = None

    # The progress an unthrottled store reads.

    @property
    def files(self) -> list[FileProgress] | None:
        tracked = self._tracked
        return None if tracked is None else tracked.files

    @property
    def receiving(self) -> bool:
        return self.body_end is None and self.outcome is None and not self._done

    def cancel(self) -> None:
        self.cancelled = True

    # The writer's side.

    def write(self) -> None:
        """Bring the record up to date: start it, then end it or write its
        progress. Called by the writer thread."""
        link = self._link
        with self.lock:
            if self._done:
                return
            try:
                if self.key is None:
                    self.key = link.store.start(self.upload_id, self.path, self.size, self)
                    if self.key is None:
                        self._done = self._dropped = True
                        return
                    self.throttle.wrote()
                if self.outcome is not None:
                    self._done = True
                    status, cancelled = self.outcome
                    link.store.finish(self.key, self.received, None, status,
                                      status is None or cancelled, cancelled)
                elif self.throttle.progress and not self._ended_written and (
                        self.body_end is not None or self.throttle.due()):
                    self._write_progress()
            except Exception:
                self._done = self._dropped = True
                link.health.failed("recording an upload that waitress receives")
                return
        link.health.answered()

    def _write_progress(self) -> None:
        """Write the progress to a throttled store, the body's end once."""
        link = self._link
        ended = self._ended_written = self.body_end is not None
        if link.store.update(self.key, self.received, None, ended):
            self.cancelled = True
        self.throttle.wrote()

    # The app's side.

    def hand_over(self, tracked: TrackedUpload) -> str | None:
        """Let ``tracked`` (the app's counting of this upload) go on with
        this record, its body's progress written to the end; return the
        record's key, or ``None`` (untracked) when the store failed or
        declined the upload. Called from the app's thread by the execution
        policy, which may wait on the store (a store failure raises, and the
        policy serves the upload untracked); waits for a write of the
        writer's in progress. An upload the store cancelled before it took
        the body's end is handed over cancelled: the app's first read
        raises :class:`~pyramid_upload_progress.UploadCancelled`."""
        link = self._link
        with self.lock:
            if self._dropped:
                return None  # untracked, as an upload whose store failed stays
            self._done = True
            self._tracked = tracked
            if self.key is None:
                self.key = link.store.start(self.upload_id, self.path, self.size, self)
                if self.key is None:
                    return None
            if self.throttle.progress and not self._ended_written:
                self._ended_written = True
                if link.store.update(self.key, self.received, None, True):
                    self.cancelled = True
            tracked.adopt(self.started, self.received, self.body_end)
            if self.cancelled:  # taken by the store as the body ended
                tracked.cancel()
            return self.key

    def served(self, status: int | None) -> None:
        """The app has answered, or (``None``) waitress is done with the
        request without calling it (the client went while it waited for a
        thread); if the policy never took the record over (a middleware
        answered, or the app does not track it), end it with that status,
        unless it has its end already. Called from the app's thread."""
        with self.lock:
            if self._done or self.outcome is not None:
                return
            self.outcome = (status, False)
        self._writer.submit(self)


# --- the store calls of waitress's I/O thread --------------------------------


class StoreWriter:
    """One thread that makes the store calls of the uploads waitress's I/O
    thread receives, so that thread never waits on a store.

    :meth:`submit` asks for an upload's record to be brought up to date: it
    takes a lock held only for a dict operation, and never waits. An upload
    waits at most once (later submits are coalesced: the write takes the
    upload as it is then); when :data:`MAX_PENDING` uploads wait already,
    the submit is dropped. A store that hangs so holds up only this thread,
    and for ``socket_timeout`` per call at the most (the Redis store).
    """

    def __init__(self) -> None:
        self._pending: dict[BufferedUpload, None] = {}
        self._ready = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def submit(self, upload: BufferedUpload) -> None:
        with self._ready:
            if upload in self._pending:
                return
            if len(self._pending) >= MAX_PENDING:
                self.dropped += 1
                return
            self._pending[upload] = None
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="upload-progress-writer", daemon=True)
                self._thread.start()
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending:
                    self._ready.wait()
                upload = next(iter(self._pending))
                del self._pending[upload]
            upload.write()


# --- watching waitress -------------------------------------------------------


class _Cancelled:
    """Made into a ``waitress.utilities.Error`` subclass by :func:`_channel_class`:
    the parser's error that answers a cancelled upload, as the add-on does."""

    code = 409
    reason = "Conflict"

    def to_response(self, ident: str | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        return ("409 Conflict",
                [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                b'{"error": "upload cancelled"}')


class Watcher:
    """What the runner does at each socket read of a request's body: start
    an upload's record once its headers are in, count its body, end it
    when waitress does, stop the body of a cancelled upload."""

    def __init__(self, link: RunnerLink, url_prefix: str) -> None:
        self.link = link
        self.writer = StoreWriter()
        self._id_header = ids.header_key(link.id_param)
        self._header = self._id_header[len("HTTP_"):]
        self._url_prefix = url_prefix
        self._failed = False
        self.cancelled_error: Any = None

    def begin(self, parser: Any) -> BufferedUpload | None:
        """The upload whose headers ``parser`` has just read, if it is one
        to watch: a body and a valid upload id, not to the report path."""
        if parser.body_rcv is None:
            return None
        environ = {"QUERY_STRING": parser.query}
        header = parser.headers.get(self._header)
        if header is not None:
            environ[self._id_header] = header
        try:
            upload_id = ids.upload_id(environ, self.link.id_param, self._id_header)
        except ids.BadUploadId:
            return None
        if upload_id is None:
            return None
        environ = self._paths(parser.path)
        if environ["PATH_INFO"] == self.link.report_path:
            return None
        upload = parser.buffered_upload = BufferedUpload(
            self.link, self.writer, upload_id, request_path(environ),
            None if parser.chunked else parser.content_length)
        self.writer.submit(upload)
        return upload

    def _paths(self, path: str) -> dict[str, str]:
        """``SCRIPT_NAME`` and ``PATH_INFO`` as waitress gives them to the
        app for the request path ``path`` (its leading slashes made one,
        ``url_prefix`` moved to ``SCRIPT_NAME``)."""
        if path.startswith("/"):
            path = "/" + path.lstrip("/")
        prefix = self._url_prefix
        if prefix:
            if path == prefix:
                path = ""
            elif path.startswith(prefix + "/"):
                path = path[len(prefix):]
        return {"SCRIPT_NAME": prefix, "PATH_INFO": path}

    def watch(self, parser: Any, upload: BufferedUpload, data: bytes, consumed: int) -> int:
        """After waitress's parser took ``consumed`` bytes of ``data``:
        count them, and end or stop the upload. Returns the bytes consumed."""
        body = parser.body_rcv
        upload.received = len(body) if parser.chunked else parser.content_length - body.remain
        error = parser.error
        if error is not None:
            parser.progress_upload = None
            upload.outcome = (getattr(error, "code", None), False)
            self.writer.submit(upload)
        elif upload.cancelled:  # before the body's end: it is never read whole
            parser.progress_upload = None
            parser.error = self.cancelled_error("upload cancelled")
            parser.completed = True
            upload.outcome = (409, True)
            self.writer.submit(upload)
            return len(data)
        elif parser.completed:
            parser.progress_upload = None
            upload.body_end = self.link.clock.time()
            self.writer.submit(upload)
        elif upload.throttle.progress and upload.throttle.due():
            self.writer.submit(upload)
        return consumed

    def gone(self, parser: Any) -> None:
        """The connection closed while ``parser`` received a body."""
        upload = parser.progress_upload
        if upload is not None:
            parser.progress_upload = None
            upload.outcome = (None, False)
            self.writer.submit(upload)

    def failed(self) -> None:
        """Called in an ``except`` block: the runner's own code raised."""
        if not self._failed:
            self._failed = True
            log.warning("upload progress: %sa request was served without it",
                        OFF, exc_info=True)


def _channel_class(channel_base: Any, watcher: Watcher) -> type:
    """The channel class that watches: subclasses of ``channel_base`` and of
    its parser and task classes, each override guarded."""
    from waitress.utilities import Error

    parser_base = channel_base.parser_class
    task_base = channel_base.task_class
    watcher.cancelled_error = type("UploadCancelledError", (_Cancelled, Error), {})

    class ProgressParser(parser_base):  # type: ignore[misc, valid-type]
        progress_upload: BufferedUpload | None = None
        """The upload while its body is received."""
        buffered_upload: BufferedUpload | None = None
        """The upload, for the task that serves it."""
        _watching = True

        def received(self, data: bytes) -> int:
            consumed = parser_base.received(self, data)
            if self._watching:
                try:
                    upload = self.progress_upload
                    if upload is None:
                        if not self.headers_finished:
                            return consumed
                        upload = self.progress_upload = watcher.begin(self)
                        if upload is None:
                            self._watching = False
                            return consumed
                    consumed = watcher.watch(self, upload, data, consumed)
                    self._watching = self.progress_upload is not None
                except Exception:
                    self._watching = False
                    self.progress_upload = None
                    watcher.failed()
            return consumed

        def close(self) -> None:
            upload = self.buffered_upload
            if upload is not None:
                try:
                    upload.served(None)
                except Exception:
                    watcher.failed()
            parser_base.close(self)

    class ProgressTask(task_base):  # type: ignore[misc, valid-type]
        def get_environment(self) -> dict[str, Any]:
            environ = task_base.get_environment(self)
            upload = getattr(self.request, "buffered_upload", None)
            if upload is not None:
                environ[BUFFERED_KEY] = upload
            return environ

        def execute(self) -> None:
            try:
                task_base.execute(self)
            except BaseException:
                self._served(None)
                raise
            self._served(self.status)

        def _served(self, status: str | None) -> None:
            upload = getattr(self.request, "buffered_upload", None)
            if upload is not None:
                try:
                    upload.served(None if status is None else int(status.split()[0]))
                except Exception:
                    watcher.failed()

    class ProgressChannel(channel_base):  # type: ignore[misc, valid-type]
        parser_class = ProgressParser
        task_class = ProgressTask

        def handle_close(self) -> None:
            try:
                request = self.request
                if getattr(request, "progress_upload", None) is not None:
                    watcher.gone(request)
            except Exception:
                watcher.failed()
            channel_base.handle_close(self)

    return ProgressChannel


# --- start-up ----------------------------------------------------------------


def waitress_moved(channel_class: Any) -> str | None:
    """What of waitress's internals is not where the runner looks, or
    ``None``: the names are looked up, and a sized and a chunked request
    parsed, with ``channel_class``'s own parser."""
    try:
        from waitress.adjustments import Adjustments
        from waitress.utilities import Error

        for name in ("code", "reason", "to_response"):
            getattr(Error, name)
        for name in ("handle_close", "received", "request"):
            getattr(channel_class, name)
        channel_class.parser_class.close
        task_class = channel_class.task_class
        for name in ("get_environment", "execute", "status"):
            getattr(task_class, name)
        parser = channel_class.parser_class(Adjustments())
        parser.received(b"POST /p%C3%A9?a=1 HTTP/1.1\r\nContent-Length: 4\r\n"
                        b"X-Progress-Id: b\r\n\r\n")
        _expect(parser, headers_finished=True, completed=False, error=None,
                chunked=False, content_length=4, path="/p\xc3\xa9", query="a=1")
        _expect(parser.headers, X_PROGRESS_ID="b")
        _expect(parser.body_rcv, remain=4)
        parser.received(b"ab")
        _expect(parser.body_rcv, remain=2)
        parser.received(b"cd")
        _expect(parser, completed=True, error=None)
        parser = channel_class.parser_class(Adjustments())
        parser.received(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        parser.received(b"3\r\nabc\r\n")
        _expect(parser, headers_finished=True, completed=False, chunked=True)
        if len(parser.body_rcv) != 3:
            return f"len(ChunkedReceiver) is {len(parser.body_rcv)}, not 3"
        parser.received(b"0\r\n\r\n")
        _expect(parser, completed=True, error=None)
    except _Moved as exc:
        return str(exc)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class _Moved(Exception):
    """An internal of waitress's answers otherwise than the runner expects."""


def _expect(thing: Any, **values: Any) -> None:
    get = thing.get if isinstance(thing, dict) else lambda name: getattr(thing, name, _MISSING)
    for name, value in values.items():
        found = get(name)
        if found != value:
            raise _Moved(f"{type(thing).__name__}.{name} is {found!r}, not {value!r}")


_MISSING = object()


def find_policy(app: Any) -> UploadProgressPolicy | None:
    """The add-on's execution policy of the Pyramid app that ``app`` is, or
    that it wraps: WSGI middleware (PasteDeploy filters, say) is followed
    through its ``app`` or ``application`` attribute."""
    for _ in range(_MAX_WRAPPERS):
        if app is None:
            return None
        registry = getattr(app, "registry", None)
        query = getattr(registry, "queryUtility", None)
        if query is not None:
            policy = query(IExecutionPolicy)
            return policy if isinstance(policy, UploadProgressPolicy) else None
        app = getattr(app, "app", None) or getattr(app, "application", None)
    return None


def create_server(app: Any, **settings: Any) -> Any:
    """``waitress.create_server(app, **settings)``, whose servers count
    upload bodies as they arrive (see the module's docstring); or, with one
    warning saying why, plain waitress's."""
    from waitress.server import BaseWSGIServer
    from waitress.server import create_server as waitress_create_server

    socket_map = settings.pop("map", None)
    if socket_map is None:
        socket_map = {}
    server = waitress_create_server(app, map=socket_map, **settings)
    servers = [one for one in list(socket_map.values()) if isinstance(one, BaseWSGIServer)]
    policy = find_policy(app)
    if policy is None:
        log.warning("upload progress: %sthe app served is no Pyramid app that "
                    "includes pyramid_upload_progress, nor WSGI middleware with "
                    "one as its .app or .application", OFF)
        return server
    if not servers:
        log.warning("upload progress: %swaitress made no server in its map", OFF)
        return server
    moved = waitress_moved(servers[0].channel_class)
    if moved is not None:
        log.warning("upload progress: %swaitress %s is not as the runner knows "
                    "it (%s); serving as plain waitress", OFF, _version(), moved)
        return server
    watcher = Watcher(policy.link_runner(), servers[0].adj.url_prefix)
    channel_class = _channel_class(servers[0].channel_class, watcher)
    for one in servers:
        one.channel_class = channel_class
    return server


def _version() -> str:
    from importlib.metadata import version

    try:
        return version("waitress")
    except Exception:
        return "(version unknown)"


def serve(app: Any, **settings: Any) -> None:
    """Serve ``app`` as ``waitress.serve(app, **settings)`` does, counting
    upload bodies as they arrive (see the module's docstring)."""
    quiet = settings.pop("_quiet", False)
    if not quiet:
        logging.basicConfig()
    server = create_server(app, **settings)
    if not quiet:
        server.print_listen("Serving on http://{}:{}")
    server.run()


def serve_paste(app: Any, global_conf: dict[str, Any], **settings: Any) -> int:
    """The PasteDeploy server runner ``egg:pyramid_upload_progress#waitress``:
    takes every setting ``egg:waitress#main`` takes."""
    serve(app, **settings)
    return 0
