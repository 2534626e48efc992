"""An app and a server-like WSGI call for the in-process attack tests.

``serve_upload`` calls the app as gunicorn would: the body comes through a
real ``gunicorn.http.body.Body`` (not seekable), and the response body is
closed at the end, which is when the add-on ends the record. ``GatedInput``
is a server input that blocks before chosen reads, so that a test can act
(poll, cancel) while the upload is in the middle of arriving.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import webob
from pyramid.config import Configurator

from pyramid_upload_progress import IUploadProgressStore
from tests.plain_app import HeaderSecurityPolicy

WAIT = 10.0
"""The longest any test waits for another thread."""


def make_app(views: dict[str, Callable[[Any], Any]], settings: dict[str, str] | None = None,
             store: Any = None) -> Any:
    """An app with the add-on (threshold 0) and one route per view, at
    ``/<name>``; ``X-User`` names the principal."""
    with Configurator(settings={"upload_progress.threshold": "0", **(settings or {})}) as config:
        config.set_security_policy(HeaderSecurityPolicy())
        if store is not None:
            config.registry.registerUtility(store, IUploadProgressStore)
        config.include("pyramid_upload_progress")
        for name, view in views.items():
            config.add_route(name, "/" + name)
            config.add_view(view, route_name=name)
        return config.make_wsgi_app()


def store_of(app: Any) -> Any:
    return app.registry.getUtility(IUploadProgressStore)


class GatedInput:
    """A server input over ``data``, answering each read in full as a server
    does; before the reads numbered in ``gates`` (from 0) it signals
    ``waiting`` and blocks until ``go`` is set."""

    def __init__(self, data: bytes, gates: tuple[int, ...] = ()) -> None:
        self._data = data
        self._pos = 0
        self._gates = set(gates)
        self._reads = 0
        self.waiting = threading.Event()
        self.go = threading.Event()

    def read(self, size: int | None = -1) -> bytes:
        if self._reads in self._gates:
            self.waiting.set()
            if not self.go.wait(WAIT):
                raise TimeoutError("the test never opened the gate")
            self.go.clear()
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
    from tests.server_inputs import cheroot_length, gunicorn_length

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
