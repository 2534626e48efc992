"""The waitress runner, in this process, over real sockets.

A Pyramid app with the add-on is served by ``create_server`` of
``pyramid_upload_progress.waitress_runner`` (the runner's function form) in
a thread; uploads are sent a chunk at a time over loopback and polled over
HTTP. Each test is one promise of the runner: progress while waitress
buffers, one record through the hand-over to the app, the I/O thread never
waiting on a store, cancel and waitress's own refusals, and failing open
where waitress's internals moved.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.response import Response
from waitress import wasyncore

from pyramid_upload_progress import MemoryUploadProgressStore, waitress_runner
from pyramid_upload_progress.stores.sqlite import SQLiteUploadProgressStore
from pyramid_upload_progress.waitress_runner import StoreWriter, create_server, find_policy
from tests.e2e.client import (
    ALICE,
    UploadThread,
    get_json,
    listing,
    poll,
    read_response,
    slow_upload,
    wait_for,
)
from tests.plain_app import HeaderSecurityPolicy, read_stream

pytestmark = pytest.mark.timeout(60)

SIZE = 1024 * 1024
CHUNK = 64 * 1024
DELAY = 0.03
POLL_EVERY = 0.01
#: How long a test waits for a condition (a record's end, say).
WAIT = 10.0


class RecordingSQLiteStore(SQLiteUploadProgressStore):
    """A throttled store (SQLite) that notes every write's ``received``."""

    def __init__(self, path: str) -> None:
        # Polls, the writer and the app's thread share the file: on a busy
        # machine 100 ms of lock (the default) may not do.
        super().__init__(path, lock_timeout=2.0)
        self.create()  # not lazily, by the first of several threads at once
        self.writes: list[tuple[str, int, bool]] = []
        self.starts = 0

    def start(self, upload_id, path, size, progress):
        self.starts += 1
        return super().start(upload_id, path, size, progress)

    def update(self, key, received, files, ended=False):
        self.writes.append(("update", received, ended))
        return super().update(key, received, files, ended)

    def finish(self, key, received, files, status, failed, cancelled):
        self.writes.append(("finish", received, False))
        return super().finish(key, received, files, status, failed, cancelled)


def runner_app(store: Any = None, gate: threading.Event | None = None,
             **settings: Any) -> Any:
    """The app: ``/upload`` reads the body in 16 KiB pieces (once ``gate``
    is set, if given); ``calls`` counts the upload view's calls."""
    calls = []

    def upload(request):
        calls.append(request.path)
        if gate is not None:
            gate.wait(WAIT)
        return read_stream(request)

    with Configurator(settings={"upload_progress.update_interval": "0.05",
                                **settings}) as config:
        config.set_security_policy(HeaderSecurityPolicy())
        config.include("pyramid_upload_progress")
        if store is not None:
            config.set_upload_progress_store(store)
        config.add_route("upload", "/upload")
        config.add_view(upload, route_name="upload", request_method="POST")
        config.add_route("home", "/")
        config.add_view(lambda request: Response("home"), route_name="home")
        app = config.make_wsgi_app()
    app.calls = calls
    return app


@contextlib.contextmanager
def served(app: Any, **settings: Any) -> Iterator[str]:
    """``app`` served by the runner on a free loopback port, in a thread."""
    socket_map: dict[int, Any] = {}
    server = create_server(app, map=socket_map, **{"listen": "127.0.0.1:0", "threads": 4,
                                                   **settings})
    thread = threading.Thread(target=server.run, name="waitress-io", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.task_dispatcher.shutdown()
        # Closed from the loop's own thread, the loop then ends. (Seen once
        # in many runs: the trigger's pipe already closed; then from here.)
        try:
            server.trigger.pull_trigger(lambda: wasyncore.close_all(socket_map))
        except OSError:
            wasyncore.close_all(socket_map, ignore_all=True)
        thread.join(WAIT)


@pytest.mark.parametrize("status", [200, 403])
def test_an_upload_the_app_never_takes_ends_with_the_answers_status(status):
    app = runner_app()

    class Gate:
        """Middleware that answers ``/gate`` itself, having read the body."""

        def __init__(self, app):
            self.app = app

        def __call__(self, environ, start_response):
            if environ["PATH_INFO"] != "/gate":
                return self.app(environ, start_response)
            environ["wsgi.input"].read()
            start_response(f"{status} Whatever", [("Content-Length", "0")])
            return []

    with served(Gate(app)) as url:
        response = slow_upload(url, "/gate", size=SIZE, chunk=CHUNK, delay=0,
                               headers={**ALICE, "X-Progress-ID": "gate1"})
        assert response.status == status
        last = wait_for(lambda: (lambda a: a if a["state"] != "uploading" else None)(
            poll(url, "gate1")), WAIT, "the record's end")
    assert (last["state"], last["status"], last["received"]) == (
        "done" if status == 200 else "error", status, SIZE)


def _request(url: str, method: str, path: str) -> tuple[int, dict[str, str], Any]:
    """A request as alice; the answer's body parsed as JSON when it is."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    try:
        connection.request(method, path, headers=ALICE)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        body = json.loads(body)
    return response.status, dict(response.getheaders()), body


def watch(url: str, pid: str, upload: UploadThread) -> list[dict[str, Any]]:
    """Polls of ``pid`` until the upload's response is in and its record
    has ended (bounded)."""
    seen = []
    deadline = time.monotonic() + WAIT + 30
    while time.monotonic() < deadline:
        status, _, answer = get_json(url, "/upload-progress", {**ALICE, "X-Progress-ID": pid})
        # The SQLite store answers 503 when its file stays locked for
        # 100 ms, as it may on a busy machine: such a poll shows nothing.
        assert status in (200, 503), answer
        if status == 200:
            seen.append(answer)
            if not upload.is_alive() and answer["state"] in ("done", "error"):
                return seen
        time.sleep(POLL_EVERY)
    raise AssertionError(f"no end within the time: {seen[-3:]}")


def rising(seen: list[dict[str, Any]]) -> list[int]:
    """The distinct ``received`` figures of uploads in progress, in order."""
    steps: list[int] = []
    for answer in seen:
        if answer["state"] == "uploading" and 0 < answer["received"] and (
                not steps or answer["received"] != steps[-1]):
            steps.append(answer["received"])
    return steps


def never_down(seen: list[dict[str, Any]]) -> bool:
    received = [answer["received"] for answer in seen if answer["state"] != "starting"]
    return received == sorted(received)


# --- progress while waitress buffers ------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_received_rises_while_waitress_receives_the_body(chunked):
    app = runner_app()
    with served(app) as url:
        upload = UploadThread(url, "/upload", size=SIZE, chunk=CHUNK, delay=DELAY,
                              chunked=chunked, headers={**ALICE, "X-Progress-ID": "rise1"})
        upload.start()
        seen = watch(url, "rise1", upload)
        response = upload.join_result()
    assert response.status == 200 and response.json()["read"] == SIZE
    steps = rising(seen)
    assert len(steps) >= 5, steps
    assert never_down(seen), [answer["received"] for answer in seen]
    last = seen[-1]
    assert (last["state"], last["received"], last["status"]) == ("done", SIZE, 200)


def test_the_upload_is_pending_while_waitress_buffers_then_owned():
    app = runner_app()
    with served(app) as url:
        upload = UploadThread(url, "/upload", size=SIZE, chunk=CHUNK, delay=DELAY,
                              headers={**ALICE, "X-Progress-ID": "pend1"})
        upload.start()
        wait_for(lambda: poll(url, "pend1")["received"] > 0, WAIT, "progress by id")
        assert listing(url) == []  # pending: by id alone
        assert poll(url, "pend1", {"X-User": "bob"})["received"] > 0
        upload.join_result()
        records = wait_for(lambda: [u for u in listing(url) if u["state"] == "done"],
                           WAIT, "the upload in alice's listing")
    assert [(u["id"], u["received"]) for u in records] == [("pend1", SIZE)]


def test_rate_is_the_bodys_real_arrival():
    app = runner_app()
    with served(app) as url:
        upload = UploadThread(url, "/upload", size=SIZE, chunk=CHUNK, delay=DELAY,
                              headers={**ALICE, "X-Progress-ID": "rate1"})
        started = time.time()
        upload.start()
        seen = watch(url, "rate1", upload)
        took = time.time() - started
    # 16 chunks DELAY apart: about 0.5 s; the app reads the buffered body
    # in a moment, which a rate from the app's reads would show.
    assert seen[-1]["rate"] <= 2 * SIZE / (15 * DELAY), (seen[-1], took)


def test_a_throttled_store_is_never_written_a_lower_received(tmp_path):
    store = RecordingSQLiteStore(str(tmp_path / "up.sqlite"))
    app = runner_app(store)
    with served(app) as url:
        upload = UploadThread(url, "/upload", size=SIZE, chunk=CHUNK, delay=DELAY,
                              headers={**ALICE, "X-Progress-ID": "thr1"})
        upload.start()
        seen = watch(url, "thr1", upload)
    assert store.starts == 1
    received = [write[1] for write in store.writes]
    assert received == sorted(received) and received[-1] == SIZE, store.writes
    assert [write for write in store.writes if write[2]] == [("update", SIZE, True)]
    assert len(rising(seen)) >= 3, seen
    assert seen[-1]["state"] == "done"


def test_an_upload_without_an_id_is_counted_only_by_the_app():
    store = MemoryUploadProgressStore()
    app = runner_app(store, **{"upload_progress.threshold": "0"})
    started = []
    original = store.start
    store.start = lambda *args: started.append(args[0]) or original(*args)
    with served(app) as url:
        response = slow_upload(url, "/upload", size=SIZE, chunk=CHUNK, delay=0,
                               headers=ALICE)
    assert response.status == 200
    assert started == [None]  # one record, started by the app's policy


def test_no_buffered_body_warning_under_the_runner(caplog):
    app = runner_app(**{"upload_progress.threshold": "0"})
    with caplog.at_level(logging.WARNING), served(app) as url:
        slow_upload(url, "/upload", size=SIZE, chunk=CHUNK, delay=0, headers=ALICE)
        slow_upload(url, "/upload", size=SIZE, chunk=CHUNK, delay=0,
                    headers={**ALICE, "X-Progress-ID": "warn1"})
    assert "upload progress" not in caplog.text


# --- the I/O thread never waits on a store ------------------------------------


class HangingStore(MemoryUploadProgressStore):
    """A store whose every write hangs until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def start(self, *args):
        self.release.wait(WAIT)
        return super().start(*args)


def test_a_hanging_store_holds_up_no_body_and_no_other_request():
    store = HangingStore()
    app = runner_app(store)
    try:
        with served(app) as url:
            upload = UploadThread(url, "/upload", size=SIZE, chunk=CHUNK, delay=0,
                                  headers={**ALICE, "X-Progress-ID": "hang1"})
            upload.start()
            # The writer hangs in start(); waitress reads the body all the same.
            wait_for(lambda: upload.sent == SIZE, WAIT, "the whole body sent")
            for _ in range(5):
                began = time.monotonic()
                assert _request(url, "GET", "/")[0] == 200
                assert time.monotonic() - began < WAIT / 4
            store.release.set()
            assert upload.join_result().status == 200
    finally:
        store.release.set()


def test_the_writer_coalesces_and_never_blocks():
    writer = StoreWriter()
    entered, release = threading.Event(), threading.Event()

    class Upload:
        def __init__(self):
            self.writes = 0

        def write(self):
            self.writes += 1
            entered.set()
            release.wait(WAIT)

    first, second = Upload(), Upload()
    writer.submit(first)
    assert entered.wait(WAIT)  # the writer is stuck in first's write
    began = time.monotonic()
    for _ in range(1000):
        writer.submit(second)
    assert time.monotonic() - began < 1.0
    release.set()
    wait_for(lambda: second.writes, WAIT, "second's write")
    assert (first.writes, second.writes) == (1, 1)


def test_the_writer_drops_when_too_far_behind(monkeypatch):
    monkeypatch.setattr(waitress_runner, "MAX_PENDING", 2)
    writer = StoreWriter()
    release = threading.Event()

    class Upload:
        def write(self):
            release.wait(WAIT)

    writer.submit(Upload())
    wait_for(lambda: not writer._pending, WAIT, "the writer busy with the first")
    for _ in range(3):
        writer.submit(Upload())
    release.set()
    assert writer.dropped == 1


# --- cancel and waitress's limits ---------------------------------------------


def test_a_cancel_while_waitress_buffers_stops_the_body_and_never_calls_the_app():
    app = runner_app()
    with served(app) as url:
        upload = UploadThread(url, "/upload", size=8 * SIZE, chunk=CHUNK, delay=DELAY,
                              headers={**ALICE, "X-Progress-ID": "cancel1"})
        upload.start()
        wait_for(lambda: poll(url, "cancel1")["received"] > 0, WAIT, "progress by id")
        status, _, answer = _request(url, "DELETE", "/upload-progress?X-Progress-ID=cancel1")
        assert status == 200 and answer["cancelled"] is True
        try:
            response = upload.join_result()
        except OSError:
            response = None  # the connection closed under the client
        assert response is None or response.status == 409
        assert upload.sent < 8 * SIZE
        last = wait_for(lambda: (lambda a: a if a["state"] == "error" else None)(
            poll(url, "cancel1")), WAIT, "the record's end")
    assert (last["status"], last["cancelled"]) == (409, True)
    assert app.calls == []


@pytest.mark.parametrize("store", [None, "sqlite"])
def test_a_cancel_once_waitress_has_the_body_answers_404(store, tmp_path):
    gate = threading.Event()
    if store == "sqlite":
        store = SQLiteUploadProgressStore(str(tmp_path / "up.sqlite"))
    app = runner_app(store, gate=gate)
    with served(app) as url:
        upload = UploadThread(url, "/upload", size=SIZE, chunk=CHUNK, delay=0,
                              headers={**ALICE, "X-Progress-ID": "late1"})
        upload.start()
        try:
            wait_for(lambda: app.calls, WAIT, "the app called")  # waitress has the body
            status, _, _ = _request(url, "DELETE", "/upload-progress?X-Progress-ID=late1")
        finally:
            gate.set()
        assert upload.join_result().status == 200
        last = wait_for(lambda: (lambda a: a if a["state"] == "done" else None)(
            poll(url, "late1")), WAIT, "the record's end")
    assert status == 404
    assert last["cancelled"] is False


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_waitress_body_size_refusal_ends_the_record_with_413(chunked):
    app = runner_app()
    with served(app, max_request_body_size=SIZE // 2) as url:
        try:
            response = slow_upload(url, "/upload", size=SIZE, chunk=CHUNK, delay=0,
                                   chunked=chunked,
                                   headers={**ALICE, "X-Progress-ID": "big1"})
        except OSError:
            response = None
        assert response is None or response.status == 413
        last = wait_for(lambda: (lambda a: a if a["state"] == "error" else None)(
            poll(url, "big1")), WAIT, "the record's end")
    assert last["status"] == 413
    assert app.calls == []


def test_a_client_gone_mid_body_ends_the_record_error():
    app = runner_app()
    with served(app) as url:
        slow_upload(url, "/upload", size=SIZE, chunk=CHUNK, delay=0.01,
                    disconnect_after=SIZE // 2, headers={**ALICE, "X-Progress-ID": "gone1"})
        last = wait_for(lambda: (lambda a: a if a["state"] == "error" else None)(
            poll(url, "gone1")), WAIT, "the record's end")
    assert 0 < last["received"] <= SIZE // 2
    assert app.calls == []


# --- failing open -------------------------------------------------------------


def test_moved_internals_log_one_warning_and_serve_as_plain_waitress(monkeypatch, caplog):
    from waitress.channel import HTTPChannel
    from waitress.receiver import FixedStreamReceiver

    # A waitress whose fixed-length receiver counts under another name.
    original_init = FixedStreamReceiver.__init__

    def moved_init(self, cl, buf):
        original_init(self, cl, buf)
        self.left = self.__dict__.pop("remain")

    monkeypatch.setattr(FixedStreamReceiver, "__init__", moved_init)
    monkeypatch.setattr(FixedStreamReceiver, "remain",
                        property(lambda self: self.left,
                                 lambda self, value: setattr(self, "left", value)),
                        raising=False)
    monkeypatch.delattr(FixedStreamReceiver, "remain")
    app = runner_app()
    socket_map: dict[int, Any] = {}
    with caplog.at_level(logging.WARNING):
        server = create_server(app, map=socket_map, listen="127.0.0.1:0")
    try:
        warnings = [r.getMessage() for r in caplog.records if "upload progress" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert "progress while waitress buffers is off: " in warnings[0]
        assert "remain" in warnings[0]
        assert server.channel_class is HTTPChannel
    finally:
        wasyncore.close_all(socket_map)


def test_a_runner_failure_at_request_time_serves_the_request(monkeypatch, caplog):
    app = runner_app()

    def broken(*args, **kwargs):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(waitress_runner.BufferedUpload, "__init__", broken)
    with caplog.at_level(logging.WARNING), served(app) as url:
        for _ in range(2):
            response = slow_upload(url, "/upload", size=SIZE, chunk=CHUNK, delay=0,
                                   headers={**ALICE, "X-Progress-ID": "broken1"})
            assert response.status == 200 and response.json()["read"] == SIZE
    warnings = [r for r in caplog.records if "waitress buffers is off" in r.getMessage()]
    assert len(warnings) == 1


def test_the_runner_finds_the_app_through_middleware():
    app = runner_app()

    class Filter:
        def __init__(self, app):
            self.app = app

    class Logger:
        def __init__(self, application):
            self.application = application

    assert find_policy(Logger(Filter(Filter(app)))) is not None


def test_an_app_without_the_add_on_is_served_as_plain_waitress(caplog):
    from waitress.channel import HTTPChannel

    def plain(environ, start_response):
        start_response("200 OK", [])
        return [b"plain"]

    socket_map: dict[int, Any] = {}
    with caplog.at_level(logging.WARNING):
        server = create_server(plain, map=socket_map, listen="127.0.0.1:0")
    try:
        assert "progress while waitress buffers is off: " in caplog.text
        assert server.channel_class is HTTPChannel
    finally:
        wasyncore.close_all(socket_map)


# --- what attacks on the runner found, pinned ---------------------------------


def test_a_cancel_before_the_last_bytes_arrive_stops_the_body():
    """The DELETE answered 200 while the body was still arriving: the read
    that brings its last bytes (fewer than waitress reads at once) must not
    hand it to the app."""
    app = runner_app()
    answers = []

    def cancel_before_the_last_chunk(sent):
        if sent == SIZE:
            wait_for(lambda: poll(url, "last1")["received"] == sent, WAIT, "the body but a chunk")
            answers.append(_request(url, "DELETE", "/upload-progress?X-Progress-ID=last1"))

    with served(app) as url:
        try:
            response = slow_upload(url, "/upload", size=SIZE + 100, chunk=CHUNK, delay=0,
                                   on_sent=cancel_before_the_last_chunk,
                                   headers={**ALICE, "X-Progress-ID": "last1"})
        except OSError:
            response = None  # the connection closed under the client
        assert [(status, answer["cancelled"]) for status, _, answer in answers] == [(200, True)]
        last = wait_for(lambda: (lambda a: a if a["state"] != "uploading" else None)(
            poll(url, "last1")), WAIT, "the record's end")
    assert response is None or response.status == 409
    assert (last["state"], last["status"], last["cancelled"]) == ("error", 409, True)
    assert app.calls == []


def test_a_client_gone_once_the_body_is_in_but_before_the_app_runs_ends_the_record():
    """With ``channel_request_lookahead`` waitress reads on while a request
    waits for a thread, so it sees the client go; it then never calls the
    app for that request. The record must not stay ``uploading``."""
    gate = threading.Event()
    store = MemoryUploadProgressStore(timeout=300, stall_timeout=3600, max_uploads=100)
    app = runner_app(store=store, gate=gate)
    # Read from the store, not polled: the one thread is busy, a poll would queue.
    record = lambda: store.get("queued1", None)  # noqa: E731
    with served(app, threads=1, channel_request_lookahead=1) as url:
        busy = UploadThread(url, "/upload", size=10, chunk=10, delay=0, headers=ALICE)
        busy.start()
        try:
            wait_for(lambda: app.calls, WAIT, "the one thread busy")
            slow_upload(url, "/upload", size=SIZE, chunk=CHUNK, delay=0, disconnect_after=SIZE,
                        headers={**ALICE, "X-Progress-ID": "queued1"})
            wait_for(lambda: record() is not None and record().received == SIZE,
                     WAIT, "the whole body in")
        finally:
            gate.set()
        assert busy.join_result().status == 200
        last = wait_for(lambda: (lambda r: r if r.state != "uploading" else None)(record()),
                        WAIT, "the record's end")
    assert (last.state, last.received) == ("error", SIZE)
    assert app.calls == ["/upload"]


@pytest.mark.parametrize("path, settings", [
    ("//upload-progress", {}), ("///upload-progress", {}),
    ("/app/upload-progress", {"url_prefix": "/app"}),
    ("//app/upload-progress", {"url_prefix": "/app"})])
def test_a_body_sent_to_the_report_path_is_never_tracked(path, settings):
    """waitress gives the app ``//upload-progress`` as ``/upload-progress``
    (and moves ``url_prefix`` to ``SCRIPT_NAME``): the report view's own
    path, which is never tracked."""
    app = runner_app()
    with served(app, **settings) as url:
        response = slow_upload(url, f"{path}?X-Progress-ID=rp1", size=10, chunk=10, delay=0,
                               headers=ALICE)
        assert response.status == 405  # the report view answered
        assert poll(url, "rp1")["state"] == "starting"


class EndGatedSQLiteStore(SQLiteUploadProgressStore):
    """A throttled store whose write of a body's end waits for ``release``
    (a store that is slow just then)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, lock_timeout=2.0)
        self.create()
        self.entered, self.release = threading.Event(), threading.Event()

    def update(self, key, received, files, ended=False):
        if ended:
            self.entered.set()
            self.release.wait(WAIT)
        return super().update(key, received, files, ended)


def test_a_cancel_a_throttled_store_took_before_the_bodys_end_is_written_is_kept(tmp_path):
    """The store answered the DELETE 200 (the end of the body not written
    yet): the store then says so at that write, and the upload is stopped
    as the contract has it, never served on as if not cancelled."""
    store = EndGatedSQLiteStore(str(tmp_path / "up.sqlite"))
    app = runner_app(store)
    with served(app) as url:
        upload = UploadThread(url, "/upload", size=SIZE, chunk=CHUNK, delay=0,
                              headers={**ALICE, "X-Progress-ID": "endgate1"})
        upload.start()
        try:
            assert store.entered.wait(WAIT)  # waitress has the body; its end unwritten
            status, _, answer = _request(url, "DELETE", "/upload-progress?X-Progress-ID=endgate1")
        finally:
            store.release.set()
        assert (status, answer["cancelled"]) == (200, True)
        response = upload.join_result()
        last = wait_for(lambda: (lambda a: a if a["state"] != "uploading" else None)(
            poll(url, "endgate1")), WAIT, "the record's end")
    assert response.status == 409
    assert (last["state"], last["status"], last["cancelled"]) == ("error", 409, True)


def test_an_uploads_connection_stays_open_for_the_next_request():
    """An upload's response keeps the Content-Length the app gave it, so
    waitress keeps the connection open (HTTP/1.1 keep-alive)."""
    app = runner_app()
    with served(app) as url:
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
        try:
            connection.request("POST", "/upload?X-Progress-ID=keep1", b"x" * 1000, ALICE)
            first = connection.getresponse()
            assert first.status == 200 and json.loads(first.read())["read"] == 1000
            assert first.getheader("Content-Length") is not None
            assert not first.will_close
            connection.request("GET", "/")
            assert connection.getresponse().read() == b"home"
        finally:
            connection.close()


def test_pipelined_uploads_on_one_connection_each_get_their_own_record():
    """Two uploads with ids and a GET, sent at once on one keep-alive
    connection: waitress parses them in one read, each its own record."""
    app = runner_app()
    heads = [b"POST /upload?X-Progress-ID=pipe1 HTTP/1.1\r\nHost: h\r\nX-User: alice\r\n"
             b"Content-Length: 5000\r\n\r\n" + b"a" * 5000,
             b"POST /upload HTTP/1.1\r\nHost: h\r\nX-User: alice\r\nX-Progress-ID: pipe2\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n1b58\r\n" + b"b" * 7000 + b"\r\n0\r\n\r\n",
             b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"]
    with served(app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
            sock.sendall(b"".join(heads))
            with sock.makefile("rb") as stream:
                answers = [read_response(stream) for _ in heads]
        assert [a.status for a in answers] == [200, 200, 200]
        assert [a.json()["read"] for a in answers[:2]] == [5000, 7000]
        ends = [wait_for(lambda pid=pid: (lambda a: a if a["state"] == "done" else None)(
            poll(url, pid)), WAIT, "the record's end") for pid in ("pipe1", "pipe2")]
    assert [(e["received"], e["size"]) for e in ends] == [(5000, 5000), (7000, None)]


def _noting(name: str):
    def call(self, *args):
        self.threads.add(threading.current_thread().name)
        return getattr(MemoryUploadProgressStore, name)(self, *args)
    return call


class ThreadNotingStore(MemoryUploadProgressStore):
    """A memory store that notes the thread of every call that writes."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()

    start, set_owner, finish, discard = (
        _noting(name) for name in ("start", "set_owner", "finish", "discard"))


def test_waitress_io_thread_never_calls_the_store():
    """Served, cancelled, refused (413) and abandoned uploads: every store
    write comes from the writer or an app thread, never from waitress's
    I/O thread."""
    store = ThreadNotingStore()
    app = runner_app(store)
    with served(app, max_request_body_size=4 * SIZE) as url:
        slow_upload(url, "/upload", size=SIZE, chunk=CHUNK, delay=0,
                    headers={**ALICE, "X-Progress-ID": "io1"})
        with contextlib.suppress(OSError):
            slow_upload(url, "/upload", size=8 * SIZE, chunk=CHUNK, delay=0,
                        headers={**ALICE, "X-Progress-ID": "io2"})
        slow_upload(url, "/upload", size=SIZE, chunk=CHUNK, delay=0, disconnect_after=SIZE // 2,
                    headers={**ALICE, "X-Progress-ID": "io3"})
        for pid in ("io1", "io2", "io3"):
            wait_for(lambda pid=pid: poll(url, pid)["state"] in ("done", "error"), WAIT, pid)
    assert store.threads and "waitress-io" not in store.threads, store.threads


def test_chunk_extensions_trailers_and_expect_continue_are_counted_as_the_body():
    """A chunked body with chunk extensions and a trailer, sent after
    waitress's ``100 Continue``: ``received`` is the body's bytes, as the
    app reads them."""
    app = runner_app()
    with served(app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
            sock.sendall(b"POST /upload?X-Progress-ID=ext1 HTTP/1.1\r\nHost: h\r\n"
                         b"X-User: alice\r\nTransfer-Encoding: chunked\r\n"
                         b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
            with sock.makefile("rb") as stream:
                assert stream.readline().startswith(b"HTTP/1.1 100 ")
                assert stream.readline() == b"\r\n"
                sock.sendall(b"5;name=value\r\nhello\r\n")
                wait_for(lambda: poll(url, "ext1")["received"] == 5, WAIT, "the first chunk")
                sock.sendall(b'6;a="b;c"\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n')
                response = read_response(stream)
        last = wait_for(lambda: (lambda a: a if a["state"] == "done" else None)(
            poll(url, "ext1")), WAIT, "the record's end")
    assert (response.status, response.json()["read"]) == (200, 11)
    assert (last["received"], last["size"], last["status"]) == (11, None, 200)
