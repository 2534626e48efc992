"""The JSON report view: per owner, and per upload id."""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from pyramid.response import Response

from . import ids
from .interfaces import IUploadProgressStore
from .record import render_starting, render_upload
from .settings import UploadProgressSettings

log = logging.getLogger(__name__)


def json_response(body: object, status: int = 200) -> Response:
    """A JSON answer that no cache may keep: progress changes every moment."""
    return Response(
        body=json.dumps(body, separators=(",", ":")).encode("utf-8"),
        status=status,
        content_type="application/json",
        charset=None,
        cache_control="no-store",
    )


class UploadProgressView:
    """``GET upload_progress.path``: the requester's uploads, or one by id.

    Without an id: ``{"uploads": [...]}``, the requesting owner's uploads,
    newest first (none for a request without an owner). With an id (query
    parameter or header): that upload, or a ``starting`` answer when it is
    unknown, expired or someone else's. 400 for a bad id, 503 when the store
    fails.
    """

    def __init__(self, settings: UploadProgressSettings) -> None:
        self._id_param = settings.id_param
        self._id_header = ids.header_key(settings.id_param)
        self._owner = settings.owner

    def __call__(self, request: Any) -> Response:
        try:
            upload_id = ids.upload_id(request.environ, self._id_param, self._id_header)
        except ids.BadUploadId as exc:
            return json_response({"error": str(exc)}, 400)
        owner = self._owner(request)
        store = request.registry.getUtility(IUploadProgressStore)
        try:
            if upload_id is not None:
                record = store.get(upload_id, owner)
            elif owner is not None:
                records = store.list(owner)
            else:
                records = []
        except Exception:
            log.exception("upload progress: the store failed answering a report")
            return json_response(
                {"error": "the upload progress store cannot be reached"}, 503)
        now = time.time()
        if upload_id is None:
            return json_response({"uploads": [render_upload(r, now) for r in records]})
        if record is None:
            return json_response(render_starting(upload_id))
        return json_response(render_upload(record, now))


def forbidden_view(request: Any) -> Response:
    """403 in JSON, for a report request without ``upload_progress.permission``."""
    return json_response({"error": "forbidden"}, 403)
