"""The demo's pages: sign in and out, the upload page, the upload itself."""
from __future__ import annotations

import hashlib
import html
import json
import string
import tempfile
from importlib.resources import files

from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import (
    HTTPException,
    HTTPRequestEntityTooLarge,
    HTTPSeeOther,
)
from pyramid.interfaces import ISecurityPolicy
from pyramid.response import Response
from pyramid.security import forget, remember
from pyramid.view import exception_view_config, view_config

READ_SIZE = 64 * 1024
CLIENT = "pyramid_upload_progress:static/upload-progress.js"


def template(name: str) -> string.Template:
    return string.Template(files(__package__).joinpath("templates", name).read_text())


def render_page(request, main: str, **values: str) -> Response:
    """The page around ``main`` (a template name), every value HTML-escaped."""
    escaped = {key: html.escape(value) for key, value in values.items()}
    csrf_token = html.escape(get_csrf_token(request))
    imports = json.dumps({"imports": {"upload-progress": request.static_url(CLIENT)}})
    page = template("page.html").substitute(
        main=template(main).substitute(escaped, csrf_token=csrf_token),
        importmap=imports.replace("</", "<\\/"),
        csrf_token=csrf_token,
        demo_js=html.escape(request.static_url("upload_progress_demo:static/demo.js")),
        demo_css=html.escape(request.static_url("upload_progress_demo:static/demo.css")),
    )
    return Response(page, content_type="text/html", charset="utf-8")


def signin_page(request, message: str = "") -> Response:
    users = request.registry.settings["demo.users"].split()
    return render_page(request, "signin.html", message=message,
                       login_url=request.route_url("login"),
                       users=", ".join(u.replace(":", " / ") for u in users))


@view_config(route_name="home", request_method="GET")
def home(request):
    """The upload page, or the sign-in form."""
    if request.authenticated_userid is None:
        return signin_page(request)
    settings = request.registry.settings
    return render_page(request, "uploads.html", user=request.authenticated_userid,
                       max_upload_size=str(settings["demo.max_upload_size"]),
                       logout_url=request.route_url("logout"),
                       upload_url=request.route_url("upload"),
                       progress_url=request.route_url("upload_progress"))


@view_config(route_name="login", request_method="POST")
def login(request):
    """Check a demo user's password; remember them in the session."""
    name = request.POST.get("name", "")
    if not request.registry.getUtility(ISecurityPolicy).check_password(name, request.POST.get("password", "")):
        return signin_page(request, "Unknown user or wrong password.")
    request.session.invalidate()
    return HTTPSeeOther(request.route_url("home"), headers=remember(request, name))


@view_config(route_name="logout", request_method="POST")
def logout(request):
    request.session.invalidate()
    return HTTPSeeOther(request.route_url("home"), headers=forget(request))


@view_config(route_name="upload", request_method="POST", permission="upload", renderer="json")
def upload(request):
    """Stream the body into a temporary file, in pieces, and delete it.

    The file's name comes in the query (``?name=``), its bytes as the body.
    A body larger than ``demo.max_upload_size`` is refused with 413: at once
    when its Content-Length says so, else when it grows past the limit.
    """
    limit = request.registry.settings["demo.max_upload_size"]
    name = request.GET.get("name", "upload")
    if request.content_length is not None and request.content_length > limit:
        raise too_large(name, limit)
    digest = hashlib.sha256()
    received = 0
    with tempfile.NamedTemporaryFile(dir=request.registry.settings["demo.upload_dir"],
                                     prefix="upload-progress-demo-", suffix=".part") as out:
        for chunk in iter(lambda: request.body_file.read(READ_SIZE), b""):
            received += len(chunk)
            if received > limit:
                raise too_large(name, limit)
            digest.update(chunk)
            out.write(chunk)
        stored_as = out.name
    return {"name": name, "received": received, "sha256": digest.hexdigest(),
            "stored_as": stored_as, "kept": False}


def too_large(name: str, limit: int) -> HTTPRequestEntityTooLarge:
    return HTTPRequestEntityTooLarge(f"{name} is larger than this demo's limit of {limit} bytes")


@exception_view_config(HTTPException, route_name="upload")
def json_error(exc, request):
    """Errors of the upload as JSON, for the page to show: 400 (CSRF), 403,
    413."""
    return Response(json={"error": exc.detail or exc.title}, status=exc.status)
