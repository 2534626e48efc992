"""The demo's pages: sign in and out, the upload page, the upload itself."""
from __future__ import annotations

import hashlib
import html
import json
import shutil
import string
import tempfile
import time
from importlib.resources import files

from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import (
    HTTPException,
    HTTPLengthRequired,
    HTTPRequestEntityTooLarge,
    HTTPSeeOther,
    HTTPUnsupportedMediaType,
)
from pyramid.response import Response
from pyramid.security import forget, remember
from pyramid.view import exception_view_config, view_config

from pyramid_upload_progress import stage

from .security import check_credentials

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
    users = request.registry.settings["demo.users"]
    return render_page(request, "signin.html", message=message,
                       login_url=request.route_url("login"),
                       users=", ".join(f"{name} / {password}" for name, password in users.items()))


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
    if not check_credentials(request.registry.settings["demo.users"], name,
                             request.POST.get("password", "")):
        return signin_page(request, "Unknown user or wrong password.")
    request.session.invalidate()
    return HTTPSeeOther(request.route_url("home"), headers=remember(request, name))


@view_config(route_name="logout", request_method="POST")
def logout(request):
    request.session.invalidate()
    return HTTPSeeOther(request.route_url("home"), headers=forget(request))


@view_config(route_name="upload", request_method="POST", permission="upload", renderer="json")
def upload(request):
    """Take a form of files (``multipart/form-data``, field ``files``), check
    and "store" each one, then delete everything: this is a demo.

    The form is read as any Pyramid view reads one, through ``request.POST``:
    WebOb copies the body, in 64 KiB pieces while it arrives, into an unnamed
    temporary file, and ``cgi.FieldStorage`` parses that copy, each file into
    its own unnamed temporary file. Nothing is ever whole in memory, no
    library beyond WebOb is needed, and the add-on still sees each file go
    by: it finds the parts in the bytes as they pass, whatever reads them.
    Then the view says what it does with them (the UPLOAD's ``stage``):
    ``checksum`` (sha256 of each file), then ``storing`` n of N (a copy of
    each into ``demo.upload_dir``, deleted at once); each step of each file
    waits ``demo.processing_delay`` seconds, so the stages can be watched.

    A body over ``demo.max_upload_size`` is refused unread with 413, one
    without a Content-Length with 411 (``request.POST`` would read it all
    before any limit could apply), any other body than a form with 415.
    """
    settings = request.registry.settings
    limit = settings["demo.max_upload_size"]
    if request.content_type != "multipart/form-data":
        raise HTTPUnsupportedMediaType("send the files as a multipart/form-data form")
    if request.content_length is None:
        raise HTTPLengthRequired("a form upload must say its Content-Length")
    if request.content_length > limit:
        raise HTTPRequestEntityTooLarge(f"the upload is larger than this demo's limit of {limit} bytes")
    files = [field for field in request.POST.getall("files") if getattr(field, "filename", None)]
    try:
        return process(request, files, settings)
    finally:
        for field in files:
            field.file.close()


def process(request, files, settings) -> dict:
    """What the demo does with the files once the body is in, stage by stage."""
    delay = settings["demo.processing_delay"]
    stage(request, "checksum")
    digests = []
    for field in files:
        time.sleep(delay)
        digest = hashlib.sha256()
        for chunk in iter(lambda: field.file.read(READ_SIZE), b""):
            digest.update(chunk)
        digests.append(digest.hexdigest())
    stored = []
    for n, field in enumerate(files, 1):
        stage(request, "storing", n - 1, len(files))
        time.sleep(delay)
        field.file.seek(0)
        with tempfile.NamedTemporaryFile(dir=settings["demo.upload_dir"],
                                         prefix="upload-progress-demo-", suffix=".stored") as out:
            shutil.copyfileobj(field.file, out, READ_SIZE)
            stored.append({"name": field.filename, "received": out.tell(),
                           "sha256": digests[n - 1], "stored_as": out.name})
    stage(request, "storing", len(files), len(files))
    return {"files": stored, "received": sum(f["received"] for f in stored), "kept": False}


@exception_view_config(HTTPException, route_name="upload")
def json_error(exc, request):
    """Errors of the upload as JSON, for the page to show: 400 (CSRF), 403,
    411, 413, 415."""
    return Response(json={"error": exc.detail or exc.title}, status=exc.status)
