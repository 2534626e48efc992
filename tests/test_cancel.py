"""Cancelling an upload: ``DELETE`` with the id, by its owner, while the body
arrives.

``DELETE`` with an id answers 200 with the upload, ``cancelled: true``, or
404 unless that upload is still receiving its body (unknown, someone
else's, finished, or already read whole); without an id, 400; always JSON.
After a 200 the upload's next read raises ``UploadCancelled`` (with the
memory store at once, with a throttled store within ``update_interval``),
answered 409 JSON, or by the app's own exception view for it; the record
ends in state ``error``, ``cancelled: true``, status 409. The races run
against every store: the memory store, and the throttled Redis and SQLite
stores, where a cancel reaches the upload through the store's next
progress write.

On real servers, from another connection: whether the client then stops
sending is the server's doing; these tests pin what each server does with
the unread rest of a cancelled body.
"""
from __future__ import annotations

import http.client
import json
import random
import select
import socket
import threading
import time

import pytest
import webtest
from pyramid.response import Response

from pyramid_upload_progress import IUploadProgressStore, UploadCancelled
from tests.app_clock import give_clock
from tests.apps import (
    WAIT,
    Background,
    Gate,
    basic_app,
    held_upload,
    make_app,
    poll,
    read_all,
    serve_upload,
    store_of,
    wsgi_call,
    wsgi_call_in_thread,
)
from tests.e2e.client import ALICE, HOST, ended, payload, read_response
from tests.e2e.servers import serve
from tests.store_kinds import each_store, store_settings, within_update_interval


# -- cancel -------------------------------------------------------------------

def slow_reader(gate: Gate):
    def view(request):
        request.body_file_raw.read(1000)
        gate.hold()
        request.body_file_raw.read(1000)
        return Response("read it all")

    return view


def gated_app(gate: Gate, **settings):
    return basic_app(settings, configure=lambda config: (
        config.add_route("slow", "/slow"), config.add_view(slow_reader(gate), route_name="slow")))


def test_a_cancel_from_another_request_answers_the_upload_409():
    gate = Gate()
    app = gated_app(gate)
    thread = wsgi_call_in_thread(app, b"x" * 5000, "/slow")
    assert gate.waiting.wait(WAIT)
    res = webtest.TestApp(app).delete("/upload-progress?X-Progress-ID=w1",
                                      headers={"X-User": "alice"})
    assert (res.json["cancelled"], res.json["state"]) == (True, "uploading")
    gate.go.set()
    status, body = thread.result()
    assert status.startswith("409")
    assert json.loads(body) == {"error": "upload cancelled"}
    answer = poll(webtest.TestApp(app), "w1").json
    assert (answer["state"], answer["cancelled"], answer["status"]) == ("error", True, 409)


@pytest.mark.parametrize("who, query", [
    ("bob", "X-Progress-ID=w1"),
    ("alice", "X-Progress-ID=other"),
])
def test_someone_elses_or_an_unknown_upload_cannot_be_cancelled(who, query):
    gate = Gate()
    app = gated_app(gate)
    thread = wsgi_call_in_thread(app, b"x" * 5000, "/slow")
    assert gate.waiting.wait(WAIT)
    res = webtest.TestApp(app).delete(f"/upload-progress?{query}",
                                      headers={"X-User": who}, status=404)
    assert res.content_type == "application/json"
    gate.go.set()
    status, _ = thread.result()
    assert status.startswith("200")


def test_a_finished_upload_cannot_be_cancelled():
    app = webtest.TestApp(basic_app())
    app.post("/upload?X-Progress-ID=f1", b"x" * 5000, headers={"X-User": "alice"})
    app.delete("/upload-progress?X-Progress-ID=f1", headers={"X-User": "alice"}, status=404)
    assert poll(app, "f1").json["state"] == "done"


def test_a_cancel_needs_an_id():
    app = webtest.TestApp(basic_app())
    res = app.delete("/upload-progress", headers={"X-User": "alice"}, status=400)
    assert "X-Progress-ID" in res.json["error"]


def test_an_apps_own_exception_view_for_upload_cancelled_wins():
    gate = Gate()

    def own_answer(exc, request):
        return Response("cancelled, as this app says it", status=499)

    def configure(config):
        config.add_route("slow", "/slow")
        config.add_view(slow_reader(gate), route_name="slow")
        config.add_exception_view(own_answer, context=UploadCancelled)

    app = basic_app(configure=configure)
    thread = wsgi_call_in_thread(app, b"x" * 5000, "/slow")
    assert gate.waiting.wait(WAIT)
    webtest.TestApp(app).delete("/upload-progress?X-Progress-ID=w1", headers={"X-User": "alice"})
    gate.go.set()
    status, _ = thread.result()
    assert status.startswith("499")


def test_a_cancel_while_pyramid_retry_copies_the_body_answers_409():
    cancelled = []

    class CancellingInput:
        """Cancels its own upload once 64 KiB have been read."""

        def __init__(self, app, data):
            self._app = app
            self._data = data
            self._pos = 0

        def read(self, size=-1):
            if self._pos >= 65536 and not cancelled:
                store = self._app.registry.getUtility(IUploadProgressStore)
                cancelled.append(store.cancel("w1", None))
            size = len(self._data) if size is None or size < 0 else size
            data = self._data[self._pos:self._pos + size]
            self._pos += len(data)
            return data

    app = basic_app({"retry.attempts": "3"}, configure=lambda config: config.include("pyramid_retry"))
    body = b"x" * 300_000
    statuses, app_iter = wsgi_call(app, body, **{"wsgi.input": CancellingInput(app, body)})
    assert cancelled[0] is not None
    assert statuses[0].startswith("409")
    assert json.loads(b"".join(app_iter)) == {"error": "upload cancelled"}
    app_iter.close()
    record = app.registry.getUtility(IUploadProgressStore).get("w1", None)
    assert (record.state, record.cancelled, record.status) == ("error", True, 409)


def test_a_cancel_in_an_app_that_requires_csrf_still_answers_json():
    app = webtest.TestApp(basic_app(
        configure=lambda config: config.set_default_csrf_options(require_csrf=True)))
    res = app.delete("/upload-progress?X-Progress-ID=c1", headers={"X-User": "alice"},
                     status=404)
    assert res.content_type == "application/json"
    assert res.headers["Cache-Control"] == "no-store"


pytestmark = pytest.mark.e2e


APP = "tests.plain_app:app"


MIB = 1024 * 1024


CHUNK = 64 * 1024


DELAY = 0.01  # 6.4 MB/s: 32 MiB would take 5 s


class CancelledUpload:
    """Sends a body slowly and stops sending once the server answers."""

    def __init__(self, port: int, upload_id: str, size: int, keep_alive: bool) -> None:
        self.port = port
        self.upload_id = upload_id
        self.size = size
        self.keep_alive = keep_alive
        self.sent = 0
        self.sent_when_answered: int | None = None
        self.answered_at: float | None = None
        self.response = None

    def run(self) -> None:
        body = payload(self.size)
        head = (f"POST /upload?X-Progress-ID={self.upload_id} HTTP/1.1\r\n"
                f"Host: {HOST}:{self.port}\r\nX-User: alice\r\n"
                f"Content-Length: {self.size}\r\n"
                + ("" if self.keep_alive else "Connection: close\r\n") + "\r\n")
        with socket.create_connection((HOST, self.port), timeout=30) as sock:
            sock.sendall(head.encode())
            try:
                for start in range(0, self.size, CHUNK):
                    if select.select([sock], [], [], 0)[0]:
                        break
                    sock.sendall(body[start:start + CHUNK])
                    self.sent = start + CHUNK
                    time.sleep(DELAY)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.sent_when_answered = self.sent
            with sock.makefile("rb") as stream:
                self.response = read_response(stream)
            self.answered_at = time.monotonic()


def delete(port: int, upload_id: str, headers=ALICE):
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("DELETE", f"/upload-progress?X-Progress-ID={upload_id}",
                           headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def cancel_after(server, upload_id: str, size: int, keep_alive: bool):
    upload = CancelledUpload(server.port, upload_id, size, keep_alive)
    thread = threading.Thread(target=upload.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while upload.sent < 2 * MIB and time.monotonic() < deadline:
        time.sleep(0.01)
    status, answer = delete(server.port, upload_id)
    cancelled_at, sent_at_cancel = time.monotonic(), upload.sent
    thread.join(30)
    assert not thread.is_alive()
    return upload, status, answer, cancelled_at, sent_at_cancel


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "connection-close"])
def test_gunicorn_answers_a_cancelled_upload_409_and_stops_the_sender(keep_alive):
    with serve("gunicorn", APP, env={"UPLOAD_PROGRESS_SETTINGS": "{}"}) as server:
        upload, status, answer, cancelled_at, sent_at_cancel = cancel_after(
            server, "gc1", 32 * MIB, keep_alive)
        assert (status, answer["cancelled"]) == (200, True)
        assert upload.response.status == 409
        assert json.loads(upload.response.body) == {"error": "upload cancelled"}
        assert upload.answered_at - cancelled_at < 2
        assert upload.sent_when_answered < sent_at_cancel + 4 * MIB < 32 * MIB
        record = ended(server.port, "gc1")
        assert (record["state"], record["cancelled"], record["status"]) == ("error", True, 409)


def test_cheroot_reads_the_rest_of_a_keep_alive_clients_body_before_the_409():
    with serve("cheroot", APP, env={"UPLOAD_PROGRESS_SETTINGS": "{}"}) as server:
        upload, status, answer, _, _ = cancel_after(server, "cc1", 6 * MIB, keep_alive=True)
        assert status == 200
        assert upload.response.status == 409
        assert upload.sent_when_answered == 6 * MIB
        assert ended(server.port, "cc1")["cancelled"] is True


def test_cheroot_answers_a_connection_close_client_409_at_once():
    with serve("cheroot", APP, env={"UPLOAD_PROGRESS_SETTINGS": "{}"}) as server:
        upload, status, _, cancelled_at, sent_at_cancel = cancel_after(
            server, "cc2", 32 * MIB, keep_alive=False)
        assert status == 200
        assert upload.response.status == 409
        assert upload.answered_at - cancelled_at < 2
        assert upload.sent_when_answered < sent_at_cancel + 4 * MIB


def test_another_user_cannot_cancel_over_the_wire():
    with serve("gunicorn", APP, env={"UPLOAD_PROGRESS_SETTINGS": "{}"}) as server:
        upload = CancelledUpload(server.port, "gc3", 4 * MIB, keep_alive=False)
        thread = threading.Thread(target=upload.run, daemon=True)
        thread.start()
        while upload.sent < MIB and thread.is_alive():
            time.sleep(0.01)
        assert delete(server.port, "gc3", {"X-User": "mallory"})[0] == 404
        thread.join(30)
        assert upload.response.status == 200
        assert json.loads(upload.response.body)["read"] == 4 * MIB


# -- races with the upload held mid-body, with every store ----------------------

SIZE = 200_000
READS = -(-SIZE // 8192)
"""How many reads of the server's input the view's 8 KiB buffer makes."""
BOB = {"X-User": "bob"}
HELD = Gate()
"""Where ``read_all_then_hold`` holds."""


def read_all_then_hold(request):
    """Reads the whole body, then waits before it answers."""
    data = request.body_file.read()
    HELD.hold()
    return Response(json={"read": len(data)})


def make(kind="memory"):
    app = make_app({"read": read_all, "hold": read_all_then_hold}, store_settings(kind))
    return app, webtest.TestApp(app)


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
    HELD.waiting.clear()
    HELD.go.clear()
    thread = Background(lambda: serve_upload(app, b"x" * SIZE, "/hold", headers=ALICE,
                                             query="X-Progress-ID=c3"))
    thread.start()
    try:
        assert HELD.waiting.wait(WAIT)
        assert store_of(app).get("c3", "alice").state == "uploading"
        assert cancel(client, "c3").status_int == 404
    finally:
        HELD.go.set()
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

        def poll_until_stopped(upload_id=upload_id, stop=stop):
            while not stop.is_set():
                answer = poll(client, upload_id).json
                seen.append((upload_id, answer["state"], answer["cancelled"],
                             answer["status"]))

        raw, thread = upload_in_background(app, upload_id, gates=(rng.randrange(READS),))
        poller = Background(poll_until_stopped)
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
