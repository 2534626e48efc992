"""A plain Pyramid app with the add-on, for servers in end-to-end tests.

Settings come from the environment variable ``UPLOAD_PROGRESS_SETTINGS``
(JSON), so that each test starts a server with its own.
"""
import hashlib
import json
import os

from pyramid.config import Configurator
from pyramid.response import Response


class HeaderSecurityPolicy:
    """The principal comes from an ``X-User`` header (a stand-in for a cookie)."""

    def identity(self, request):
        return request.headers.get("X-User")

    def authenticated_userid(self, request):
        return request.headers.get("X-User")

    def permits(self, request, context, permission):
        return self.authenticated_userid(request) is not None

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


def read_stream(request):
    """Reads the body as a streaming view would, in 16 KiB pieces."""
    digest = hashlib.sha256()
    read = 0
    for chunk in iter(lambda: request.body_file.read(16384), b""):
        digest.update(chunk)
        read += len(chunk)
    return Response(json={"read": read, "sha256": digest.hexdigest()})


def read_form(request):
    """Reads a multipart form, as most upload views do."""
    data = request.POST["file"].file.read()
    return Response(json={"read": len(data), "sha256": hashlib.sha256(data).hexdigest()})


def make_app(settings):
    with Configurator(settings=settings) as config:
        config.set_security_policy(HeaderSecurityPolicy())
        config.include("pyramid_upload_progress")
        config.add_route("upload", "/upload")
        config.add_view(read_stream, route_name="upload", request_method="POST")
        config.add_route("form", "/form")
        config.add_view(read_form, route_name="form", request_method="POST")
        return config.make_wsgi_app()


app = make_app(json.loads(os.environ.get("UPLOAD_PROGRESS_SETTINGS", "{}")))
