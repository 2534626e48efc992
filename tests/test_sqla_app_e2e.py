"""The cookiecutter-shaped app (``tests/sqla_app.py``) on gunicorn gthread.

Over real sockets, with and without pyramid_debugtoolbar: a slow upload
shows its progress by id while it arrives (pending: pyramid_retry copies the
body before any tween, so its owner is known only once the body is in), then
lands done in its owner's listing and nobody else's; a retried upload is one
record, done, counted once. A record ends when the server closes the
response, a moment after the client has read it: the tests wait for that,
bounded, before they look at how it ended.
"""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from tests.e2e.client import UploadThread, get_json, listing, payload, poll, slow_upload
from tests.e2e.servers import serve

pytestmark = pytest.mark.e2e

APP = "tests.sqla_app:app"
SIZE = 1024 * 1024
CHUNK = 64 * 1024
DELAY = 0.05  # 16 chunks: about 0.75 s to arrive
POLL_EVERY = 0.02
#: The record ends when the server closes the response, a moment after the
#: client has its bytes: how long a test waits for that.
SETTLE_TIMEOUT = 5.0


@pytest.fixture(scope="module", params=["plain", "toolbar"])
def variant(request):
    return request.param


@pytest.fixture(scope="module")
def server(variant, tmp_path_factory):
    db = tmp_path_factory.mktemp("sqla_e2e") / "app.sqlite"
    env = {"SQLA_APP_DB": str(db), "SQLA_APP_TOOLBAR": str(int(variant == "toolbar"))}
    with serve("gunicorn", APP, env=env, workers=1, threads=8) as running:
        yield running


@pytest.fixture
def quiet_addon(server):
    """Fails the test if the add-on logged anything (an error, or the
    warning that the server buffered the body) while it ran."""
    before = len(server.output())
    yield
    assert "upload progress:" not in server.output()[before:]


def user(userid) -> dict[str, str]:
    return {"X-User-Id": str(userid)}


def settled(server, pid, userid=1):
    """The upload as its owner's listing shows it once it has left
    ``uploading``; polls for at most ``SETTLE_TIMEOUT`` seconds."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        records = listing(server.url, user(userid), upload_id=pid)
        if records and records[0]["state"] != "uploading":
            [record] = records
            return record
        assert time.monotonic() < deadline, f"still not ended: {records}"
        time.sleep(POLL_EVERY)


def watch(server, path, pid):
    """Upload slowly to ``path`` as user 1 and poll it by id meanwhile.

    Returns the response, every ``received`` the polls saw, and whether
    user 1's listing lacked the upload each time it was asked while the body
    was still arriving.
    """
    upload = UploadThread(server.url, path, size=SIZE, chunk=CHUNK, delay=DELAY,
                          headers={**user(1), "X-Progress-ID": pid})
    seen, unlisted_while_arriving = [], []
    upload.start()
    while upload.is_alive():
        in_listing = bool(listing(server.url, user(1), upload_id=pid))
        answer = poll(server.url, pid, user(1))
        if answer["state"] == "uploading" and answer["received"] < SIZE:
            # Asked before this poll: the body was still arriving then.
            unlisted_while_arriving.append(not in_listing)
        seen.append(answer["received"])
        time.sleep(POLL_EVERY)
    return upload.join_result(), seen, unlisted_while_arriving


def test_progress_shows_by_id_while_the_upload_arrives(server, quiet_addon):
    pid = uuid.uuid4().hex
    response, seen, unlisted = watch(server, "/upload", pid)

    assert response.status == 200
    assert response.json()["bytes"] == SIZE
    assert seen == sorted(seen)
    assert len({r for r in seen if 0 < r < SIZE}) >= 3, seen
    assert unlisted and all(unlisted), "a pending upload must be in no listing"


def test_a_finished_upload_is_done_for_its_owner_alone(server, quiet_addon):
    pid = uuid.uuid4().hex
    response = slow_upload(server.url, "/upload", size=SIZE, chunk=CHUNK * 4, delay=0,
                           headers={**user(1), "X-Progress-ID": pid})
    assert response.status == 200

    record = settled(server, pid)
    assert record["state"] == "done"
    assert record["received"] == record["size"] == SIZE
    assert poll(server.url, pid, user(1))["state"] == "done"
    assert listing(server.url, user(2), upload_id=pid) == []
    answer = poll(server.url, pid, user(2))
    assert (answer["state"], answer["received"], answer["size"]) == ("starting", 0, None)


def test_a_retried_upload_is_one_done_record(server, quiet_addon):
    pid = uuid.uuid4().hex
    response, seen, _ = watch(server, "/upload-retry", pid)

    assert response.status == 200
    body = response.json()
    digest = hashlib.sha256(payload(SIZE)).hexdigest()
    assert body["attempt"] == 1  # it really was retried
    assert body["sha256"] == body["first_attempt"]["sha256"] == digest
    assert seen == sorted(seen)
    assert len({r for r in seen if 0 < r < SIZE}) >= 3, seen
    record = settled(server, pid)
    assert record["state"] == "done"
    assert record["received"] == record["size"] == SIZE
    status, _, rows = get_json(server.url, f"/upload-count?id={pid}")
    assert (status, rows) == (200, {"rows": 1, "sizes": [SIZE]})


def test_an_upload_whose_view_raises_ends_in_error(server, variant, quiet_addon):
    pid = uuid.uuid4().hex
    response = slow_upload(server.url, "/upload-fail", size=SIZE, chunk=CHUNK * 4, delay=0,
                           headers={**user(1), "X-Progress-ID": pid})

    assert response.status == 500
    # The toolbar, when there, renders its debugger page: it is really active.
    assert (b"debugtoolbar" in response.body) == (variant == "toolbar")
    record = settled(server, pid)
    assert record["state"] == "error"
    assert record["received"] == SIZE
    assert record["status"] == (500 if variant == "toolbar" else None)
