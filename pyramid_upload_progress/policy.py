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
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import ids
from .settings import UploadProgressSettings
from .upload import ENVIRON_KEY, TrackedUpload

log = logging.getLogger(__name__)

_BUFFERED_INPUTS = (io.BytesIO, io.BufferedRandom, tempfile.SpooledTemporaryFile)


class UploadProgressPolicy:
    """An execution policy that tracks uploads, then calls ``inner``.

    A request that is not tracked costs a few environ look-ups. A tracked
    one gets a :class:`~pyramid_upload_progress.stream.CountingInput` as its
    ``wsgi.input`` and a record in the store; the record is ended when the
    server closes the response body (or when the request raises).
    """

    def __init__(self, inner: Callable[[dict[str, Any], Any], Any],
                 store: Any,
                 settings: UploadProgressSettings) -> None:
        self.inner = inner
        self._store = store
        self._threshold = settings.threshold
        self._id_param = settings.id_param
        self._id_header = ids.header_key(settings.id_param)
        self._owner = settings.owner
        self._interval = settings.update_interval if store.throttled else 0.0
        self._buffering_seen = False

    def __call__(self, environ: dict[str, Any], router: Any) -> Any:
        upload = self._begin(environ)
        if upload is None:
            return self.inner(environ, router)
        try:
            response = self.inner(environ, router)
        except BaseException:
            upload.finish(None, failed=True)
            raise
        return _FinishingResponse(response, upload)

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
        try:
            upload_id = ids.upload_id(environ, self._id_param, self._id_header)
        except ids.BadUploadId:
            return None
        if upload_id is None and size is not None and size < self._threshold:
            return None
        if not self._buffering_seen:
            self._warn_if_buffered(environ)
        try:
            key = self._store.start(upload_id, _request_path(environ), size)
        except Exception:
            log.exception("upload progress: the store failed recording a new "
                          "upload; it is served untracked")
            return None
        if key is None:
            return None
        upload = TrackedUpload(self._store, key, environ["wsgi.input"], size,
                               self._owner, self._interval)
        environ["wsgi.input"] = upload.input
        environ[ENVIRON_KEY] = upload
        return upload

    def _warn_if_buffered(self, environ: dict[str, Any]) -> None:
        """Log once if the server evidently read the whole body already."""
        if environ.get("paste.testing"):
            return
        server = str(environ.get("SERVER_SOFTWARE", ""))
        if (server.lower().startswith("waitress")
                or isinstance(environ.get("wsgi.input"), _BUFFERED_INPUTS)
                or environ.get("webob.is_body_seekable")):
            self._buffering_seen = True
            log.warning(
                "upload progress: the server (%s) read the whole request body "
                "before calling the application, so clients will see 0 %% then "
                "100 %%. Serve the app with a server that streams request "
                "bodies (gunicorn with gthread workers, cheroot), and turn off "
                "request buffering in front of it (nginx: "
                "proxy_request_buffering off;).", server or "unknown")


def _request_path(environ: dict[str, Any]) -> str:
    """The request's path, decoded, never with its query string."""
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:
        return path.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return path


class _FinishingResponse:
    """The app's response, ending the upload's record when the server
    closes its body: the app may still read the upload while it answers."""

    def __init__(self, response: Any, upload: TrackedUpload) -> None:
        self._response = response
        self._upload = upload

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            app_iter = self._response(environ, start_response)
        except BaseException:
            self._upload.finish(None, failed=True)
            raise
        return _ClosingIterable(app_iter, self._upload, self._response.status_int)


class _ClosingIterable:
    """Yields the app's body; on ``close()``, closes it and ends the record."""

    def __init__(self, app_iter: Iterable[bytes], upload: TrackedUpload,
                 status: int) -> None:
        self._app_iter = app_iter
        self._upload = upload
        self._status = status
        self._failed = False

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
            self._upload.finish(self._status, self._failed)
