"""Attack: cancelling races, in process, with the upload blocked mid-body.

DESIGN.md, "Cancelling an upload": ``DELETE`` with an id answers 200 with
the UPLOAD, ``cancelled: true``, or 404 unless that upload is still
receiving its body (unknown, someone else's, finished, or already read
whole). After a 200 the upload's next read raises ``UploadCancelled``
("with the memory store at once, with a throttled store within
update_interval"), answered 409 JSON; "the record ends in state error,
cancelled: true, status 409".

Each attack runs against every store: the memory store, and the throttled
Redis and SQLite stores, where a cancel reaches the upload through the
store's next progress write.
"""
from __future__ import annotations

import random
import threading

import webtest
from pyramid.response import Response

from tests.apps import (
    WAIT,
    Background,
    held_upload,
    make_app,
    serve_upload,
    store_of,
)
from tests.app_clock import give_clock
from tests.store_kinds import INTERVAL, each_store, store_settings
from tests.e2e.client import ALICE

SIZE = 200_000
READS = -(-SIZE // 8192)
"""How many reads of the server's input the view's 8 KiB buffer makes."""
BOB = {"X-User": "bob"}


def read_all(request):
    """Reads the whole body in 1000-byte pieces, then answers."""
    data = b"".join(iter(lambda: request.body_file.read(1000), b""))
    return Response(json={"read": len(data)})


HOLD_READ = threading.Event()
HOLD_GO = threading.Event()


def read_all_then_hold(request):
    """Reads the whole body, then waits before it answers."""
    data = request.body_file.read()
    HOLD_READ.set()
    HOLD_GO.wait(WAIT)
    return Response(json={"read": len(data)})


def make(kind="memory"):
    app = make_app({"read": read_all, "hold": read_all_then_hold}, store_settings(kind))
    return app, webtest.TestApp(app)


def within_update_interval(clock):
    """Let the time pass in which a throttled store's cancel reaches the
    upload (at its next progress write): its next read after that raises.
    The app's clock runs ahead; nothing waits."""
    clock.advance(2 * INTERVAL)


def upload_in_background(app, upload_id, gates, headers=ALICE):
    return held_upload(app, b"u" * SIZE, upload_id, headers, gates)


def cancel(client, upload_id, headers=ALICE):
    return client.delete(f"/upload-progress?X-Progress-ID={upload_id}", headers=headers,
                         expect_errors=True)


@each_store()
def test_a_delete_while_the_upload_reads_ends_it_with_409(kind):
    app, client = make(kind)
    clock = give_clock(app)
    raw, thread = upload_in_background(app, "c1", gates=(5,))
    answer = cancel(client, "c1")
    assert answer.status_int == 200 and answer.json["cancelled"] is True
    within_update_interval(clock)
    raw.go.set()
    response = thread.result()
    assert response.status_int == 409
    assert response.json == {"error": "upload cancelled"}
    record = store_of(app).get("c1", "alice")
    assert (record.state, record.cancelled, record.status) == ("error", True, 409)


@each_store()
def test_a_delete_during_the_last_read_still_ends_the_upload_cancelled(kind):
    """The DELETE comes while the read that brings the last bytes is in the
    server's hands: the upload was still receiving, so the DELETE answers
    200 ``cancelled: true`` - and then the record must end cancelled."""
    app, client = make(kind)
    last = READS - 1
    raw, thread = upload_in_background(app, "c2", gates=(last,))
    answer = cancel(client, "c2")
    raw.go.set()
    thread.result()
    record = store_of(app).get("c2", "alice")
    if answer.status_int == 200:
        assert (record.state, record.cancelled) == ("error", True)
    else:
        assert answer.status_int == 404


@each_store()
def test_a_delete_after_the_body_was_read_whole_is_404(kind):
    app, client = make(kind)
    HOLD_READ.clear()
    HOLD_GO.clear()
    thread = Background(lambda: serve_upload(app, b"x" * SIZE, "/hold", headers=ALICE,
                                             query="X-Progress-ID=c3"))
    thread.start()
    try:
        assert HOLD_READ.wait(WAIT)
        assert store_of(app).get("c3", "alice").state == "uploading"
        assert cancel(client, "c3").status_int == 404
    finally:
        HOLD_GO.set()
    assert thread.result().json == {"read": SIZE}
    assert cancel(client, "c3").status_int == 404
    record = store_of(app).get("c3", "alice")
    assert (record.state, record.cancelled) == ("done", False)


@each_store()
def test_a_delete_of_another_users_upload_is_404_and_leaves_it_alone(kind):
    app, client = make(kind)
    raw, thread = upload_in_background(app, "c4", gates=(3,))
    answer = cancel(client, "c4", headers=BOB)
    assert answer.status_int == 404
    assert answer.json == {"error": "no upload in progress with this id"}
    raw.go.set()
    assert thread.result().json == {"read": SIZE}
    record = store_of(app).get("c4", "alice")
    assert (record.state, record.cancelled, record.received) == ("done", False, SIZE)


@each_store()
def test_a_double_delete_cancels_once(kind):
    app, client = make(kind)
    clock = give_clock(app)
    raw, thread = upload_in_background(app, "c5", gates=(2,))
    assert cancel(client, "c5").status_int == 200
    assert cancel(client, "c5").status_int in (200, 404)
    within_update_interval(clock)
    raw.go.set()
    assert thread.result().status_int == 409
    assert cancel(client, "c5").status_int == 404
    record = store_of(app).get("c5", "alice")
    assert (record.state, record.cancelled, record.status) == ("error", True, 409)


@each_store()
def test_deletes_at_random_moments_are_kept_or_refused_never_lost(kind):
    """Whatever the moment: a DELETE that answered 200 ends the upload 409
    and cancelled; one that answered 404 leaves it done."""
    app, client = make(kind)
    rng = random.Random(14)
    for turn in range(40):
        upload_id = f"r{turn}"
        raw, thread = upload_in_background(app, upload_id, gates=(rng.randrange(READS),))
        answer = cancel(client, upload_id)
        raw.go.set()
        response = thread.result()
        record = store_of(app).get(upload_id, "alice")
        if answer.status_int == 200:
            assert (response.status_int, record.state, record.cancelled) == (409, "error", True), turn
        else:
            assert (response.status_int, record.state, record.cancelled) == (200, "done", False), turn


@each_store()
def test_a_polled_record_is_never_cancelled_and_done(kind):
    """Deletes (one, two, or from another user) at random moments while a
    poller reads the record: every answer is consistent - ``cancelled:
    true`` only with state ``uploading`` or ``error`` - and the end agrees
    with the DELETEs' answers."""
    app, client = make(kind)
    rng = random.Random(1414)
    seen: list[tuple[str, str, bool, int | None]] = []
    for turn in range(20):
        upload_id = f"p{turn}"
        stop = threading.Event()

        def poll(upload_id=upload_id, stop=stop):
            while not stop.is_set():
                answer = client.get(f"/upload-progress?X-Progress-ID={upload_id}",
                                    headers=ALICE).json
                seen.append((upload_id, answer["state"], answer["cancelled"],
                             answer["status"]))

        raw, thread = upload_in_background(app, upload_id, gates=(rng.randrange(READS),))
        poller = Background(poll)
        poller.start()
        try:
            answers = [cancel(client, upload_id, headers=rng.choice([ALICE, ALICE, BOB]))
                       for _ in range(rng.randrange(1, 3))]
            raw.go.set()
            response = thread.result()
        finally:
            stop.set()
        poller.result()
        record = store_of(app).get(upload_id, "alice")
        kept = [a for a in answers if a.status_int == 200]
        assert all(a.json["cancelled"] is True for a in kept), turn
        if record.cancelled:
            assert (record.state, record.status, response.status_int) == \
                ("error", 409, 409), turn
        else:
            assert (record.state, response.status_int) == ("done", 200), turn
    broken = [s for s in seen if s[2] and (s[1] == "done" or (s[1] == "error") != (s[3] == 409))]
    assert not broken, broken[:5]
