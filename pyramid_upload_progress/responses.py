"""The add-on's JSON answers, each built in one place."""
from __future__ import annotations

import json

from pyramid.response import Response


def json_response(body: object, status: int = 200, **headers: str) -> Response:
    """A JSON answer that no cache may keep: progress changes every moment."""
    response = Response(
        body=json.dumps(body, separators=(",", ":")).encode("utf-8"),
        status=status,
        content_type="application/json",
        charset=None,
        cache_control="no-store",
    )
    response.headers.update(headers)
    return response


def cancelled_response() -> Response:
    """409: the answer to an upload that was cancelled while it arrived."""
    return json_response({"error": "upload cancelled"}, 409)
