"""A plain WSGI app that shows, from outside, how a server feeds it a body.

- ``POST <any path>`` with an ``X-Test-ID`` header reads ``wsgi.input`` in
  16 KiB reads until the body ends (Content-Length, or EOF when there is
  none), recording bytes read and a timestamp per read under that id, and
  answers ``{"read", "sha256", "span", "input_terminated"}``: ``span`` is
  the seconds between the first and the last read.
- ``GET /seen?id=ID`` answers ``{"read", "done", "error"}`` for that id, so
  a second connection can watch a body being read while it arrives.
  ``error`` names the exception ``wsgi.input.read`` raised, if any;
  ``done`` with ``read`` short of the length means reads ended early.

State lives in this process, so run it with a single server process.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

READ_SIZE = 16 * 1024

StartResponse = Callable[..., Any]


@dataclass
class Upload:
    """What the app has read of one request body so far."""

    read: int = 0
    times: list[float] = field(default_factory=list)
    done: bool = False
    error: str | None = None


_lock = threading.Lock()
uploads: dict[str, Upload] = {}


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Route POST to `receive` and GET /seen to `seen`."""
    method = environ["REQUEST_METHOD"]
    if method == "POST":
        return _json(start_response, receive(environ))
    if method == "GET" and environ.get("PATH_INFO") == "/seen":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        return _json(start_response, seen(query.get("id", [""])[0]))
    return _json(start_response, {"error": "not found"}, "404 Not Found")


def receive(environ: dict[str, Any]) -> dict[str, Any]:
    """Read the whole body, recording progress under the X-Test-ID header."""
    upload = Upload()
    with _lock:
        uploads[environ.get("HTTP_X_TEST_ID", "")] = upload
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    remaining = int(length) if length else None
    digest = hashlib.sha256()
    try:
        while remaining is None or remaining > 0:
            data = stream.read(READ_SIZE if remaining is None else min(READ_SIZE, remaining))
            if not data:
                break
            digest.update(data)
            if remaining is not None:
                remaining -= len(data)
            with _lock:
                upload.read += len(data)
                upload.times.append(time.monotonic())
    except Exception as exc:
        with _lock:
            upload.error = f"{type(exc).__module__}.{type(exc).__qualname__}"
        raise
    finally:
        with _lock:
            upload.done = True
    return {
        "read": upload.read,
        "sha256": digest.hexdigest(),
        "span": upload.times[-1] - upload.times[0] if upload.times else 0.0,
        "input_terminated": bool(environ.get("wsgi.input_terminated")),
    }


def seen(test_id: str) -> dict[str, Any]:
    """Progress of the body sent with `test_id`; zeros if none has started."""
    with _lock:
        upload = uploads.get(test_id, Upload())
        return {"read": upload.read, "done": upload.done, "error": upload.error}


def _json(
    start_response: StartResponse, data: dict[str, Any], status: str = "200 OK"
) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
