"""Where counting starts: an execution policy in front of the app's own.

pyramid_retry's execution policy copies every request body to a temporary
file before any tween runs, so a tween would only ever see a body that has
fully arrived. Wrapping whichever execution policy the app has puts the
counting input in front of everything in Pyramid that can read the body,
and makes a retried request one upload, ended once with its final outcome.
"""
from __future__ import annotations

import io
import logging
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from . import ids, multipart
from .environ import BUFFERED_KEY, ENVIRON_KEY
from .health import StoreHealth
from .responses import cancelled_response
from .settings import UploadProgressSettings
from .stream import UploadCancelled
from .timing import SYSTEM_CLOCK, Clock, Throttle, throttle_factory
from .tracking import TrackedUpload

log = logging.getLogger(__name__)

_BUFFERED_INPUTS = (io.BytesIO, io.BufferedRandom, tempfile.SpooledTemporaryFile)


class RunnerLink(NamedTuple):
    """What a server runner that counts bodies as the server receives them
    (the waitress runner) shares with the app's policy."""

    store: Any
    health: StoreHealth
    throttle: Callable[[Clock], Throttle]
    """Makes an upload's throttle of its writes to ``store``, on ``clock``."""
    clock: Clock
    id_param: str
    report_path: str


class UploadProgressPolicy:
    """An execution policy that tracks uploads, then calls ``inner``.

    A request that is not tracked costs a few environ look-ups. A tracked
    one gets a :class:`~pyramid_upload_progress.stream.CountingInput` as its
    ``wsgi.input`` and a record in the store; the record is ended when the
    server closes the response body (or when the request raises). What
    ``inner`` returns is still the app's response: its ``app_iter`` is
    wrapped, so that the record ends when the server closes the body (the
    app may still read the upload while it answers).

    ``clock`` is where every upload it tracks reads the time (and the
    runner it links, :meth:`link_runner`). For tests only: an app's tests
    that let time pass without waiting for it make the app, then give its
    policy a clock of their own before the uploads they time::

        policy = app.registry.getUtility(IExecutionPolicy)
        policy.clock = Clock(fake_clock, fake_clock)

    (one counter for both functions, which the test advances).
    """

    def __init__(self, inner: Callable[[dict[str, Any], Any], Any],
                 store: Any, settings: UploadProgressSettings,
                 health: StoreHealth, report_path: str, *,
                 per_process: bool = False, clock: Clock = SYSTEM_CLOCK) -> None:
        self.inner = inner
        self._store = store
        self._health = health
        self._threshold = settings.threshold
        self._report_path = report_path
        self._id_param = settings.id_param
        self._id_header = ids.header_key(settings.id_param)
        self._owner = settings.owner
        self._throttle = throttle_factory(store.throttled, settings.update_interval)
        self.clock = clock
        self._buffering_seen = False
        self._chunked_warned = False
        self._warn_per_process = per_process

    def link_runner(self) -> RunnerLink:
        """What a server runner needs to count bodies as the server receives
        them; from then on the policy never warns that the server buffers
        bodies: the runner counts them."""
        self._buffering_seen = True
        return RunnerLink(self._store, self._health, self._throttle, self.clock,
                          self._id_param, self._report_path)

    def __call__(self, environ: dict[str, Any], router: Any) -> Any:
        if not environ.get("CONTENT_LENGTH") and "HTTP_TRANSFER_ENCODING" not in environ:
            return self.inner(environ, router)  # no body: most requests
        upload = self._begin(environ)
        if upload is None:
            return self.inner(environ, router)
        unreadable = upload.record.size is None and self._chunked_unreadable(environ)
        try:
            response = self.inner(environ, router)
        except UploadCancelled:
            # Raised where no exception view could answer: in front of the
            # tweens, as pyramid_retry copies the body.
            response = cancelled_response()
        except BaseException:
            upload.finish(None, failed=True)
            raise
        length = response.content_length  # WebOb drops it as app_iter is set
        response.app_iter = _ClosingIterable(response.app_iter, upload,
                                             response.status_int, unreadable)
        response.content_length = length
        return response

    def _chunked_unreadable(self, environ: dict[str, Any]) -> bool:
        """Whether the server gives the app a chunked body with no way to
        read it (logged once): without ``wsgi.input_terminated`` WSGI lets
        the app read no further than a Content-Length it does not have, and
        WebOb shows it an empty body (uWSGI 2.0). The app then answers while
        the client is still sending, and the server drops the connection
        under it."""
        if environ.get("wsgi.input_terminated") or environ.get("webob.is_body_readable"):
            return False
        if not self._chunked_warned:
            self._chunked_warned = True
            log.warning(
                "upload progress: the server (%s) gives the application a "
                "chunked request body without wsgi.input_terminated, so the "
                "application cannot read it (it sees an empty body) and the "
                "client's upload fails; such uploads end in state 'error'. "
                "Have clients send a Content-Length (browsers do), or put a "
                "proxy that passes the body on with one in front.",
                _server_name(environ))
        return True

    def _begin(self, environ: dict[str, Any]) -> TrackedUpload | None:
        """Start tracking the request, or return None if it is not tracked."""
        size: int | None
        length = environ.get("CONTENT_LENGTH")
        if length:
            try:
                size = int(length)
            except ValueError:
                return None
            if size <= 0:
                return None
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            size = None
        else:
            return None
        if environ.get("PATH_INFO") == self._report_path:
            return None
        try:
            upload_id = ids.upload_id(environ, self._id_param, self._id_header)
        except ids.BadUploadId:
            return None
        if upload_id is None and size is not None and size < self._threshold:
            return None
        if not self._buffering_seen:
            self._warn_if_buffered(environ)
        if self._warn_per_process:
            self._warn_if_polls_miss_the_store(environ)
        upload = TrackedUpload(
            self._store, self._health, environ["wsgi.input"], upload_id,
            request_path(environ), size,
            multipart.boundary(environ.get("CONTENT_TYPE", "")),
            self._owner, self._throttle(self.clock), self.clock)
        buffered = environ.get(BUFFERED_KEY)
        try:
            if buffered is None:
                key = self._store.start(upload_id, upload.record.path, size, upload)
            else:
                key = buffered.hand_over(upload)
        except Exception:
            self._health.failed("recording a new upload")
            return None
        self._health.answered()
        if key is None:
            return None
        upload.record.key = key
        environ["wsgi.input"] = upload.input
        environ[ENVIRON_KEY] = upload
        return upload

    def _warn_if_polls_miss_the_store(self, environ: dict[str, Any]) -> None:
        """Log once if the polls of an upload cannot reach the per-process
        store (the memory store, or one that says ``per_process``) that
        holds it while it arrives: they go to another process, or this
        process serves one request at a time."""
        if environ.get("wsgi.multiprocess"):
            self._warn_per_process = False
            log.warning(
                "upload progress: the server runs several processes, and the "
                "store keeps each one's uploads to itself: a poll that "
                "reaches another process answers 'starting'. Use "
                "upload_progress.store = sqlite (one host) or redis (several "
                "hosts).")
        elif _serves_one_request_at_a_time(environ):
            self._warn_per_process = False
            log.warning(
                "upload progress: the server serves one request at a time "
                "(%s), and the store keeps this process's uploads to "
                "itself: the polls of an upload wait until it has ended. Give "
                "the server threads (gunicorn: worker_class = gthread; uWSGI: "
                "threads), or run several processes with upload_progress.store "
                "= sqlite or redis.", _server_name(environ))

    def _warn_if_buffered(self, environ: dict[str, Any]) -> None:
        """Log once if the server evidently read the whole body already."""
        if environ.get("paste.testing"):
            return
        server = _server_name(environ)
        if (server.lower().startswith("waitress")
                or isinstance(environ.get("wsgi.input"), _BUFFERED_INPUTS)
                or environ.get("webob.is_body_seekable")
                or ("uwsgi.version" in environ and _uwsgi_post_buffering())):
            self._buffering_seen = True
            log.warning(
                "upload progress: the server (%s) read the whole request body "
                "before calling the application, so clients will see "
                "'starting' until the last byte, then 'done'. Serve the app "
                "with a server that streams request bodies (gunicorn with "
                "gthread workers, cheroot, uWSGI without post-buffering), and "
                "turn off request buffering in front of it (nginx: "
                "proxy_request_buffering off;).", server)


def _serves_one_request_at_a_time(environ: dict[str, Any]) -> bool:
    """Whether the server is known to serve one request at a time in this
    process: gunicorn's sync worker (its other workers say
    ``wsgi.multithread``), or uWSGI with one core (one thread, no async).
    Other servers' flags are not trusted for this: gevent's pywsgi says
    neither multithread nor multiprocess and serves many requests at once."""
    if environ.get("wsgi.multithread") or environ.get("paste.testing"):
        return False
    if "uwsgi.version" in environ:
        return getattr(sys.modules.get("uwsgi"), "cores", 0) == 1
    return str(environ.get("SERVER_SOFTWARE", "")).startswith("gunicorn")


def _uwsgi_post_buffering() -> bool:
    """Whether uWSGI reads every body before it calls the app: its
    ``post-buffering`` option (its ``wsgi.input`` is the same either way)."""
    value = getattr(sys.modules.get("uwsgi"), "opt", {}).get("post-buffering")
    if isinstance(value, list):  # the option given more than once
        value = value[-1]
    try:
        return int(value or 0) > 0
    except (TypeError, ValueError):
        return False


def _server_name(environ: dict[str, Any]) -> str:
    """The server's name and version, as its environ tells them."""
    version = environ.get("uwsgi.version")
    if version is not None:
        return "uWSGI " + (version.decode("latin-1") if isinstance(version, bytes) else version)
    return str(environ.get("SERVER_SOFTWARE", "")) or "unknown"


def request_path(environ: dict[str, Any]) -> str:
    """The request's path, decoded, never with its query string."""
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:
        return path.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return path


class _ClosingIterable:
    """The response body; on ``close()``, closes it and ends the record."""

    def __init__(self, app_iter: Iterable[bytes], upload: TrackedUpload,
                 status: int, unreadable: bool) -> None:
        self._app_iter = app_iter
        self._upload = upload
        self._status = status
        self._failed = False
        self._unreadable = unreadable
        """The server gave no way to read the body: if none of it was
        read, it never reached the app."""

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._app_iter
        except Exception:
            self._failed = True
            raise

    def close(self) -> None:
        try:
            close = getattr(self._app_iter, "close", None)
            if close is not None:
                close()
        finally:
            self._upload.finish(self._status, self._failed or (
                self._unreadable and not self._upload.received))
