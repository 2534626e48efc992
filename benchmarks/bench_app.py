"""The Pyramid app every benchmark runs, untracked, tracked, or under paste.

Only the add-on's public API is used (``config.include``, settings,
``config.set_upload_progress_store``, the report view over WSGI), so the
benchmarks keep working whatever the add-on does inside.

Views: ``/hello`` (GET, no body), ``/drain`` (reads ``request.body_file`` in
64 KiB reads), ``/form`` (``request.POST``), ``/lines`` (``readline(1024)``
on ``wsgi.input`` until the body ends), ``/to-disk`` (copies the body to a
temporary file in 64 KiB chunks). Each answers how many bytes it got.

``gunicorn bench_app:app`` serves the app made from the environment:
``BENCH_TRACKED=1`` includes the add-on, ``BENCH_SETTINGS`` (JSON) adds
settings.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response
from zope.interface import implementer

from pyramid_upload_progress import IUploadProgressStore

CHUNK = 64 * 1024
LINE = 1024
OWNER_HEADER = "HTTP_X_OWNER"

#: Settings of every tracked app: the owner comes from an ``X-Owner``
#: header, and the memory store holds the report benchmark's records.
TRACKED_SETTINGS = {
    "upload_progress.owner": "bench_app.header_owner",
    "upload_progress.max_uploads": "100000",
}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


def header_owner(request: Any) -> str | None:
    """``upload_progress.owner``: whoever the ``X-Owner`` header names."""
    return request.environ.get(OWNER_HEADER)


def hello(request: Any) -> Response:
    return Response(b"hello")


def drain(request: Any) -> Response:
    body = request.body_file
    total = 0
    while data := body.read(CHUNK):
        total += len(data)
    return Response(str(total))


def form(request: Any) -> Response:
    field = request.POST["file"]
    return Response(str(len(field.filename)))


def lines(request: Any) -> Response:
    stream = request.environ["wsgi.input"]
    left = request.content_length
    total = 0
    while left > 0 and (line := stream.readline(LINE)):
        total += len(line)
        left -= len(line)
    return Response(str(total))


def to_disk(request: Any) -> Response:
    body = request.body_file
    total = 0
    with tempfile.TemporaryFile() as file:
        while data := body.read(CHUNK):
            file.write(data)
            total += len(data)
    return Response(str(total))


VIEWS = {"hello": hello, "drain": drain, "form": form, "lines": lines, "to-disk": to_disk}


def make_app(tracked: bool, settings: Mapping[str, str] | None = None,
             store: Any = None) -> WSGIApp:
    """The benchmark app; ``tracked`` includes the add-on with
    :data:`TRACKED_SETTINGS` and ``settings``, and ``store`` (if given) as
    its store."""
    all_settings = dict(TRACKED_SETTINGS, **(settings or {})) if tracked else {}
    with Configurator(settings=all_settings) as config:
        if tracked:
            config.include("pyramid_upload_progress")
            if store is not None:
                # The store is set in code: the setting that made it would
                # only be warned about.
                config.registry.settings.pop("upload_progress.store", None)
                config.set_upload_progress_store(store)
        for name, view in VIEWS.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        return config.make_wsgi_app()


def store_from_settings(settings: Mapping[str, str]) -> Any:
    """The store the add-on makes from ``settings``, made as the add-on makes
    it (so that it can be wrapped); raises ConfigurationError as the app's
    start-up would."""
    app = make_app(True, settings)
    return app.registry.getUtility(IUploadProgressStore)


@implementer(IUploadProgressStore)
class CountingStore:
    """A store proxy that counts the calls reaching ``store`` (round-trips,
    for a store with a network hop), and says ``throttled`` as told."""

    def __init__(self, store: Any, throttled: bool) -> None:
        self._store = store
        self.throttled = throttled
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        method = getattr(self._store, name)
        if not callable(method):
            return method
        calls = self.calls

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return method(*args, **kwargs)

        setattr(self, name, counted)  # found directly from now on
        return counted

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def _app_from_environment() -> WSGIApp:
    settings = json.loads(os.environ.get("BENCH_SETTINGS", "{}"))
    return make_app(os.environ.get("BENCH_TRACKED") == "1", settings)


if os.environ.get("BENCH_SERVE"):
    app = _app_from_environment()
