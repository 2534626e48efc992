"""The JSON report view: per owner and per upload id; cancel by id."""
from __future__ import annotations

import logging
import time
from typing import Any

from pyramid.response import Response

from . import ids
from .health import StoreHealth
from .interfaces import IUploadProgressStore
from .record import render_starting, render_upload
from .responses import cancelled_response, json_response
from .settings import UploadProgressSettings

log = logging.getLogger(__name__)

ALLOW = "GET, HEAD, DELETE"


class UploadProgressView:
    """The report view at ``upload_progress.path``.

    ``GET``/``HEAD`` without an id: ``{"uploads": [...]}``, the requesting
    owner's uploads, newest first (none for a request without an owner).
    With an id (query parameter or header): that upload, or a ``starting``
    answer when it is unknown, expired or someone else's. ``DELETE`` with an
    id cancels that upload while it is still receiving its body (200 with
    the UPLOAD), else 404. Every answer is JSON: 400 for a bad or missing
    id, 500 when the owner lookup raises (logged), 503 when the store fails.
    """

    def __init__(self, settings: UploadProgressSettings, health: StoreHealth) -> None:
        self._id_param = settings.id_param
        self._id_header = ids.header_key(settings.id_param)
        self._owner = settings.owner
        self._health = health

    def __call__(self, request: Any) -> Response:
        try:
            upload_id = ids.upload_id(request.environ, self._id_param, self._id_header)
        except ids.BadUploadId as exc:
            return json_response({"error": str(exc)}, 400)
        cancel = request.method == "DELETE"
        if cancel and upload_id is None:
            return json_response({"error": f"{self._id_param} is required"}, 400)
        try:
            owner = self._owner(request)
        except Exception:
            log.exception("upload progress: looking up the owner of a report "
                          "request failed")
            return json_response({"error": "the owner lookup failed"}, 500)
        store = request.registry.getUtility(IUploadProgressStore)
        try:
            if cancel:
                record = store.cancel(upload_id, owner)
            elif upload_id is not None:
                record = store.get(upload_id, owner)
            else:
                records = store.list(owner) if owner is not None else []
        except Exception:
            self._health.failed("answering a report")
            return json_response(
                {"error": "the upload progress store cannot be reached"}, 503)
        self._health.answered()
        now = time.time()
        if upload_id is None:
            return json_response({"uploads": [render_upload(r, now) for r in records]})
        if record is not None:
            return json_response(render_upload(record, now))
        if cancel:
            return json_response({"error": "no upload in progress with this id"}, 404)
        return json_response(render_starting(upload_id))


def method_not_allowed(request: Any) -> Response:
    """405 in JSON, for a method the report view does not answer."""
    return json_response({"error": f"method {request.method} not allowed"},
                         405, Allow=ALLOW)


def forbidden_view(request: Any) -> Response:
    """403 in JSON, for a report request without the view's permission."""
    return json_response({"error": "forbidden"}, 403)


def upload_cancelled_view(request: Any) -> Response:
    """The add-on's exception view for ``UploadCancelled``."""
    return cancelled_response()
