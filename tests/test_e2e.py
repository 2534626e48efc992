"""The add-on end to end: real servers on loopback, slow clients, live polls.

``tests/plain_app.py`` is served by gunicorn (gthread) and cheroot, the
servers that hand the body to the app while it arrives, and by waitress,
which does not. A client thread sends a body slowly while the test polls
the report view over other connections.
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest

from tests.e2e.client import (
    ALICE,
    UploadThread,
    ended,
    get_json,
    multipart_body,
    payload,
    poll,
    slow_upload,
    wait_for,
)
from tests.e2e.servers import serve

pytestmark = pytest.mark.e2e

APP = "tests.plain_app:app"
SIZE = 1024 * 1024
CHUNK = 64 * 1024
DELAY = 0.05


@pytest.fixture(scope="module", params=["gunicorn", "cheroot"])
def server(request):
    with serve(request.param, APP, env={"UPLOAD_PROGRESS_SETTINGS": "{}"}) as running:
        yield running


def poll_while(server, thread, upload_id, headers=ALICE):
    """Poll until the upload thread ends; return every answer seen meanwhile."""
    seen = []
    while thread.is_alive():
        seen.append(poll(server.port, upload_id, headers))
        time.sleep(0.02)
    return seen


def intermediate(answers, size):
    return [a["received"] for a in answers
            if a["state"] == "uploading" and 0 < a["received"] < size]


def upload_in_background(server, upload_id, **kw):
    kw.setdefault("size", SIZE)
    thread = UploadThread(server.port, f"/upload?X-Progress-ID={upload_id}",
                          chunk=CHUNK, delay=DELAY, headers=ALICE, **kw)
    thread.start()
    return thread


def test_polls_see_the_upload_arrive(server):
    upload_id = uuid.uuid4().hex
    thread = upload_in_background(server, upload_id)
    seen = intermediate(poll_while(server, thread, upload_id), SIZE)
    response = thread.join_result()
    assert response.json()["sha256"] == hashlib.sha256(payload(SIZE)).hexdigest()
    assert len(set(seen)) >= 3, seen
    assert seen == sorted(seen)
    final = ended(server.port, upload_id)
    assert (final["state"], final["received"], final["size"], final["status"]) == (
        "done", SIZE, SIZE, 200)


def test_the_owners_listing_has_the_upload_and_others_see_starting(server):
    upload_id = uuid.uuid4().hex
    thread = upload_in_background(server, upload_id)
    during = poll_while(server, thread, upload_id, headers={"X-User": "bob"})
    thread.join_result()
    assert {a["state"] for a in during} == {"starting"}
    ended(server.port, upload_id)
    _, _, listing = get_json(server.port, "/upload-progress", ALICE)
    [mine] = [u for u in listing["uploads"] if u["id"] == upload_id]
    assert mine["state"] == "done"
    assert poll(server.port, upload_id, {"X-User": "bob"})["state"] == "starting"


def test_a_multipart_form_upload_is_seen_arriving(server):
    upload_id = uuid.uuid4().hex
    body, _ = multipart_body("file", SIZE)
    thread = UploadThread(server.port, f"/form?X-Progress-ID={upload_id}", size=SIZE,
                          multipart="file", chunk=CHUNK, delay=DELAY, headers=ALICE)
    thread.start()
    seen = intermediate(poll_while(server, thread, upload_id), len(body))
    response = thread.join_result()
    assert response.json() == {"read": SIZE,
                               "sha256": hashlib.sha256(payload(SIZE)).hexdigest()}
    assert len(set(seen)) >= 3, seen
    final = ended(server.port, upload_id)
    assert (final["state"], final["received"]) == ("done", len(body))


def test_a_chunked_upload_is_seen_arriving_without_a_size(server):
    upload_id = uuid.uuid4().hex
    thread = upload_in_background(server, upload_id, chunked=True)
    answers = poll_while(server, thread, upload_id)
    thread.join_result()
    seen = intermediate(answers, SIZE)
    assert len(set(seen)) >= 3, seen
    assert all(a["size"] is None and a["percent"] is None
               for a in answers if a["state"] == "uploading")
    final = ended(server.port, upload_id)
    assert (final["state"], final["received"], final["size"]) == ("done", SIZE, None)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_client_that_disconnects_half_way_ends_in_error(server, chunked):
    upload_id = uuid.uuid4().hex
    thread = upload_in_background(server, upload_id, chunked=chunked,
                                  disconnect_after=SIZE // 2)
    assert thread.join_result() is None
    final = ended(server.port, upload_id, seconds=10)
    assert final["state"] == "error"
    assert 0 < final["received"] <= SIZE // 2
    assert get_json(server.port, "/upload-progress", ALICE)[0] == 200


def test_under_waitress_the_first_poll_during_a_slow_upload_sees_nothing():
    upload_id = uuid.uuid4().hex
    with serve("waitress", APP, env={"UPLOAD_PROGRESS_SETTINGS": "{}"}) as server:
        thread = upload_in_background(server, upload_id)
        while thread.sent < 2 * CHUNK:
            time.sleep(0.01)
        first = poll(server.port, upload_id)
        thread.join_result()
        final = ended(server.port, upload_id)
        output = wait_for(lambda: "read the whole request body" in server.output()
                          and server.output(), 5, "the buffered-body warning")
    assert thread.sent == SIZE
    assert first["state"] == "starting"
    assert (final["state"], final["received"]) == ("done", SIZE)
    assert output.count("read the whole request body") == 1


def test_a_bad_upload_id_leaves_the_upload_served():
    settings = json.dumps({"upload_progress.threshold": "0"})
    with serve("gunicorn", APP, env={"UPLOAD_PROGRESS_SETTINGS": settings}) as server:
        response = slow_upload(server.port, "/upload?X-Progress-ID=no%20good",
                               size=1000, chunk=1000, delay=0, headers=ALICE)
        listing = get_json(server.port, "/upload-progress", ALICE)[2]
    assert response.status == 200
    assert response.json()["read"] == 1000
    assert listing == {"uploads": []}
