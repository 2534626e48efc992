"""Apps with the add-on and the ways tests call them in process.

``make_app`` builds an app with one route per view; ``basic_app`` is the
app most tests poll (``/upload`` reads the body, ``/too-large`` answers
413, ``/explode`` raises; threshold 1000 bytes). ``upload`` and ``poll``
go through WebTest. ``wsgi_call`` and ``serve_upload`` call the app as a
streaming server would, with a non-seekable input; ``serve_upload`` gives
the body through a real ``gunicorn.http.body.Body`` and closes the
response body at the end, which is when the add-on ends the record.
``Gate`` holds a view, and ``GatedInput`` a server input, at a chosen
point, so that a test can act (poll, cancel) while the upload is in the
middle of arriving; ``Background`` runs the upload meanwhile.
"""
from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import webob
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPRequestEntityTooLarge
from pyramid.response import Response

from pyramid_upload_progress import IUploadProgressStore
from tests.plain_app import HeaderSecurityPolicy
from tests.server_inputs import cheroot_length, gunicorn_length

WAIT = 10.0
"""The longest any test waits for another thread."""


def make_app(views: dict[str, Callable[[Any], Any]] | None = None,
             settings: dict[str, str] | None = None, store: Any = None,
             configure: Callable[[Configurator], Any] | None = None) -> Any:
    """An app with the add-on (threshold 0 unless ``settings`` say) and one
    route per view, at ``/<name>``; ``X-User`` names the principal.
    ``store`` is registered before the include, ``configure(config)`` is
    called after it."""
    with Configurator(settings={"upload_progress.threshold": "0", **(settings or {})}) as config:
        config.set_security_policy(HeaderSecurityPolicy())
        if store is not None:
            config.registry.registerUtility(store, IUploadProgressStore)
        config.include("pyramid_upload_progress")
        for name, view in (views or {}).items():
            config.add_route(name, "/" + name)
            config.add_view(view, route_name=name)
        if configure is not None:
            configure(config)
        return config.make_wsgi_app()


def read_body(request):
    return Response(json={"read": len(request.body)})


def reject_too_large(request):
    request.body_file.read(10)
    raise HTTPRequestEntityTooLarge()


def explode(request):
    request.body_file.read(10)
    raise RuntimeError("the view failed")


def basic_app(settings: dict[str, str] | None = None,
              configure: Callable[[Configurator], Any] | None = None, store: Any = None) -> Any:
    """``make_app`` with ``/upload`` (reads the body), ``/too-large``
    (answers 413) and ``/explode`` (raises), bodies from 1000 bytes on
    tracked."""
    return make_app({"upload": read_body, "too-large": reject_too_large, "explode": explode},
                    {"upload_progress.threshold": "1000", **(settings or {})}, store, configure)


def store_of(app: Any) -> Any:
    """The store of an app, or of the app a ``webtest.TestApp`` wraps."""
    return getattr(app, "app", app).registry.getUtility(IUploadProgressStore)


def upload(testapp, path="/upload", size=2000, user="alice", upload_id=None, **kw):
    """POST ``size`` bytes through WebTest, by ``user`` (None: anonymous)."""
    if upload_id is not None:
        path += f"?X-Progress-ID={upload_id}"
    headers = {"X-User": user} if user else {}
    return testapp.post(path, b"x" * size, headers=headers, **kw)


def poll(testapp, upload_id=None, user="alice", headers=None, **kw):
    """GET the report view through WebTest (without an id: the listing) by
    ``user`` (None: anonymous), or with ``headers`` that say who asks; the
    WebTest response."""
    path = "/upload-progress"
    if upload_id is not None:
        path += f"?X-Progress-ID={upload_id}"
    if headers is None:
        headers = {"X-User": user} if user else {}
    return testapp.get(path, headers=headers, **kw)


def wsgi_call(app, body, path="/upload", query="X-Progress-ID=w1", **environ):
    """Call the app as a streaming server would, by alice, with a
    non-seekable input: (the statuses started, the response body)."""

    class ServerInput:
        def __init__(self, data):
            self._data = io.BytesIO(data)

        def read(self, size=-1):
            return self._data.read(size)

        def readline(self, size=-1):
            return self._data.readline(size)

    env = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": ServerInput(body),
        "CONTENT_LENGTH": str(len(body)), "HTTP_X_USER": "alice", **environ,
    }
    statuses = []
    app_iter = app(env, lambda status, headers, exc_info=None: statuses.append(status))
    return statuses, app_iter


def wsgi_call_in_thread(app, body: bytes, path: str) -> Background:
    """``wsgi_call`` in a thread; its ``result()`` is (status, body), the
    response body read whole and closed."""

    def call():
        statuses, app_iter = wsgi_call(app, body, path)
        try:
            return statuses[0] if statuses else None, b"".join(app_iter)
        finally:
            app_iter.close()

    thread = Background(call)
    thread.start()
    return thread


def streaming_view(request):
    """Answers while it reads the upload: the record ends only at close."""

    def body():
        for chunk in iter(lambda: request.body_file.read(100), b""):
            yield b"."

    return Response(app_iter=body())


def stream_configure(config):
    config.add_route("stream", "/stream")
    config.add_view(streaming_view, route_name="stream")


def read_all(request):
    """Reads the whole body in 1000-byte reads; answers how much it read."""
    return Response(json={"read": len(b"".join(iter(lambda: request.body_file.read(1000), b"")))})


class Gate:
    """A point where an upload holds: ``hold()`` signals ``waiting`` and
    blocks until the test sets ``go``."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.go = threading.Event()

    def hold(self) -> None:
        self.waiting.set()
        if not self.go.wait(WAIT):
            raise TimeoutError("the test never opened the gate")
        self.go.clear()


class GatedInput(Gate):
    """A server input over ``data``, answering each read in full as a server
    does; before the reads numbered in ``gates`` (from 0) it holds."""

    def __init__(self, data: bytes, gates: tuple[int, ...] = ()) -> None:
        super().__init__()
        self._data = data
        self._pos = 0
        self._gates = set(gates)
        self._reads = 0

    def read(self, size: int | None = -1) -> bytes:
        if self._reads in self._gates:
            self.hold()
        self._reads += 1
        if size is None or size < 0:
            size = len(self._data)
        data = self._data[self._pos:self._pos + size]
        self._pos += len(data)
        return data


def serve_upload(app: Any, body: bytes | None, path: str, *, raw: Any = None,
                 headers: dict[str, str] | None = None, query: str = "",
                 content_type: str = "application/octet-stream",
                 server: str = "gunicorn") -> webob.Response:
    """POST ``body`` (or the input ``raw``) to ``path`` as a streaming server
    would (``server``: whose input the body comes through), the response
    body read and closed; an exception the app lets through is raised."""
    make_input = gunicorn_length if server == "gunicorn" else cheroot_length
    length = len(body) if body is not None else len(raw._data)
    environ = webob.Request.blank(f"{path}?{query}" if query else path,
                                  method="POST", headers=headers or {}).environ
    environ.update({
        "CONTENT_LENGTH": str(length), "CONTENT_TYPE": content_type,
        "wsgi.input": raw if raw is not None else make_input(body, length, [4096]),
        "SERVER_SOFTWARE": server,
    })
    environ.pop("webob.is_body_seekable", None)
    status, headerlist, app_iter = webob.Request(environ).call_application(app)
    try:
        body = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    return webob.Response(body=body, status=status, headerlist=headerlist)


def held_upload(app: Any, data: bytes, upload_id: str, headers: dict[str, str],
                gates: tuple[int, ...] = (1,)) -> tuple[GatedInput, Background]:
    """An upload of ``data`` to ``/read`` with ``upload_id``, running in a
    thread and held at its first gate (its owner known): (its input, to
    open the gates, and the thread, whose result is the response)."""
    raw = GatedInput(data, gates=gates)
    thread = Background(lambda: serve_upload(app, None, "/read", raw=raw, headers=headers,
                                             query=f"X-Progress-ID={upload_id}"))
    thread.start()
    if not raw.waiting.wait(WAIT):
        raise TimeoutError("the upload never reached its gate")
    return raw, thread


class Background(threading.Thread):
    """Runs ``call()`` in a thread; ``result()`` returns or re-raises."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._call = call
        self._result: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._result = self._call()
        except BaseException as exc:
            self._error = exc

    def result(self) -> Any:
        self.join(WAIT)
        if self.is_alive():
            raise TimeoutError("the upload did not end")
        if self._error is not None:
            raise self._error
        return self._result
