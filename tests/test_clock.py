"""An app's tracking reads the time from its execution policy's clock
(``UploadProgressPolicy.clock``): tests let time pass without waiting."""
from __future__ import annotations

import time

import webtest
from pyramid.response import Response

from pyramid_upload_progress.interfaces import IUploadFinished
from tests.app_clock import give_clock
from tests.apps import WAIT, held_upload, make_app, serve_upload
from tests.store_kinds import store_settings
from tests.e2e.client import ALICE

SIZE = 100_000
AHEAD = 1000.0


def read_all(request):
    data = b"".join(iter(lambda: request.body_file.read(1000), b""))
    return Response(json={"read": len(data)})


def received(client, upload_id):
    return client.get(f"/upload-progress?X-Progress-ID={upload_id}", headers=ALICE).json["received"]


def test_a_throttled_store_gets_progress_once_the_apps_clock_passes_the_interval():
    settings = store_settings("sqlite", **{"upload_progress.update_interval": str(AHEAD)})
    app = make_app({"read": read_all}, settings)
    client = webtest.TestApp(app)
    clock = give_clock(app)
    raw, thread = held_upload(app, b"x" * SIZE, "ahead", ALICE, gates=(2, 4))
    assert received(client, "ahead") == 0  # no write is due for AHEAD seconds
    clock.advance(AHEAD)
    raw.waiting.clear()
    raw.go.set()
    assert raw.waiting.wait(WAIT)
    assert 0 < received(client, "ahead") < SIZE
    raw.go.set()
    assert thread.result().json == {"read": SIZE}


def test_the_times_of_an_upload_are_the_apps_clocks():
    app = make_app({"read": read_all})
    clock = give_clock(app)
    clock.advance(AHEAD)
    finished = []
    app.registry.registerHandler(finished.append, (IUploadFinished,))
    serve_upload(app, b"x" * SIZE, "/read", headers=ALICE, query="X-Progress-ID=times")
    [event] = finished
    assert event.upload.finished >= time.time() + AHEAD - 60
