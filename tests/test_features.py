"""Beyond every peer (issue 15): per-file progress, cancel from any tab,
upload events, and processing stages, in-process through the app."""
from __future__ import annotations

import json
import threading

import pytest
import webtest
from pyramid.httpexceptions import HTTPRequestEntityTooLarge
from pyramid.response import Response
from pyramid_retry import RetryableException

from pyramid_upload_progress import (
    IUploadProgressStore,
    MemoryUploadProgressStore,
    UploadCancelled,
    UploadFinished,
    UploadStarted,
)

from .test_functional import make_app, poll, wsgi_call

BOUNDARY = "b0undary-7f3a"


def multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body of (field, filename, content) parts."""
    body = b""
    for field, filename, content in parts:
        disposition = f'form-data; name="{field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n"
                 .encode("utf-8") + content + b"\r\n")
    return body + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


class Gate:
    """Lets a test hold a view at a point while it polls from outside."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.go = threading.Event()

    def wait(self) -> None:
        self.reached.set()
        assert self.go.wait(10)


def in_thread(function, *args):
    result: dict = {}

    def run():
        statuses, app_iter = function(*args)
        result["status"] = statuses[0] if statuses else None
        result["body"] = b"".join(app_iter)
        app_iter.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


# -- per-file progress --------------------------------------------------------

def read_form(request):
    return Response(json=sorted(k for k in request.POST))


def form_app(**settings):
    return make_app(settings, configure=lambda config: (
        config.add_route("form", "/form"), config.add_view(read_form, route_name="form")))


def test_a_multipart_upload_lists_its_file_parts_in_body_order():
    body = multipart(("title", None, b"holiday"), ("photo", "a.jpg", b"A" * 3000),
                     ("note", None, b"x"), ("empty", "", b""), ("scan", "b.pdf", b"B" * 10))
    app = webtest.TestApp(form_app())
    app.request("/form?X-Progress-ID=m1", method="POST", body=body,
                headers={"Content-Type": MULTIPART, "X-User": "alice"})
    assert poll(app, "m1").json["files"] == [
        {"field": "photo", "filename": "a.jpg", "received": 3000, "done": True},
        {"field": "scan", "filename": "b.pdf", "received": 10, "done": True},
    ]


def test_a_body_that_is_not_multipart_has_no_files():
    app = webtest.TestApp(make_app())
    app.post("/upload?X-Progress-ID=n1", b"x" * 5000, headers={"X-User": "alice"})
    assert poll(app, "n1").json["files"] is None


@pytest.mark.parametrize("piece", [1, 7, 100, 65536])
def test_file_parts_are_the_same_whatever_the_size_of_the_reads(piece):
    body = multipart(("a", "one.bin", b"\r\n--b0undar" * 50), ("b", "två.txt", b"z" * 999))
    seen = []

    def read_in_pieces(request):
        while request.body_file_raw.read(piece):
            pass
        seen.append(request.upload_progress)
        return Response("ok")

    app = make_app(configure=lambda config: (
        config.add_route("pieces", "/pieces"), config.add_view(read_in_pieces, route_name="pieces")))
    statuses, app_iter = wsgi_call(app, body, path="/pieces", CONTENT_TYPE=MULTIPART)
    app_iter.close()
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    assert record.files == [
        {"field": "a", "filename": "one.bin", "received": 550, "done": True},
        {"field": "b", "filename": "två.txt", "received": 999, "done": True},
    ]


def test_a_poll_shows_the_first_file_growing_then_the_second():
    body = multipart(("a", "first.bin", b"1" * 4000), ("b", "second.bin", b"2" * 4000))
    snapshots = []

    def read_and_look(request):
        store = request.registry.getUtility(IUploadProgressStore)
        while request.body_file_raw.read(1000):
            snapshots.append(store.get("w1", "alice").files)
        return Response("ok")

    app = make_app(configure=lambda config: (
        config.add_route("look", "/look"), config.add_view(read_and_look, route_name="look")))
    statuses, app_iter = wsgi_call(app, body, path="/look", CONTENT_TYPE=MULTIPART)
    app_iter.close()
    first_only = [s for s in snapshots if len(s) == 1]
    assert len({s[0]["received"] for s in first_only}) >= 3
    assert [s[0]["received"] for s in first_only] == sorted(s[0]["received"] for s in first_only)
    assert snapshots[-1] == [
        {"field": "a", "filename": "first.bin", "received": 4000, "done": True},
        {"field": "b", "filename": "second.bin", "received": 4000, "done": True},
    ]


# -- cancel -------------------------------------------------------------------

def slow_reader(gate: Gate):
    def view(request):
        request.body_file_raw.read(1000)
        gate.wait()
        request.body_file_raw.read(1000)
        return Response("read it all")

    return view


def gated_app(gate: Gate, **settings):
    return make_app(settings, configure=lambda config: (
        config.add_route("slow", "/slow"), config.add_view(slow_reader(gate), route_name="slow")))


def test_a_cancel_from_another_request_answers_the_upload_409():
    gate = Gate()
    app = gated_app(gate)
    thread, result = in_thread(wsgi_call, app, b"x" * 5000, "/slow")
    assert gate.reached.wait(10)
    res = webtest.TestApp(app).delete("/upload-progress?X-Progress-ID=w1",
                                      headers={"X-User": "alice"})
    assert (res.json["cancelled"], res.json["state"]) == (True, "uploading")
    gate.go.set()
    thread.join(10)
    assert result["status"].startswith("409")
    assert json.loads(result["body"]) == {"error": "upload cancelled"}
    answer = poll(webtest.TestApp(app), "w1").json
    assert (answer["state"], answer["cancelled"], answer["status"]) == ("error", True, 409)


@pytest.mark.parametrize("who, query", [
    ("bob", "X-Progress-ID=w1"),
    ("alice", "X-Progress-ID=other"),
])
def test_someone_elses_or_an_unknown_upload_cannot_be_cancelled(who, query):
    gate = Gate()
    app = gated_app(gate)
    thread, result = in_thread(wsgi_call, app, b"x" * 5000, "/slow")
    assert gate.reached.wait(10)
    res = webtest.TestApp(app).delete(f"/upload-progress?{query}",
                                      headers={"X-User": who}, status=404)
    assert res.content_type == "application/json"
    gate.go.set()
    thread.join(10)
    assert result["status"].startswith("200")


def test_a_finished_upload_cannot_be_cancelled():
    app = webtest.TestApp(make_app())
    app.post("/upload?X-Progress-ID=f1", b"x" * 5000, headers={"X-User": "alice"})
    app.delete("/upload-progress?X-Progress-ID=f1", headers={"X-User": "alice"}, status=404)
    assert poll(app, "f1").json["state"] == "done"


def test_a_cancel_needs_an_id():
    app = webtest.TestApp(make_app())
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

    app = make_app(configure=configure)
    thread, result = in_thread(wsgi_call, app, b"x" * 5000, "/slow")
    assert gate.reached.wait(10)
    webtest.TestApp(app).delete("/upload-progress?X-Progress-ID=w1", headers={"X-User": "alice"})
    gate.go.set()
    thread.join(10)
    assert result["status"].startswith("499")


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

    app = make_app({"retry.attempts": "3"}, configure=lambda config: config.include("pyramid_retry"))
    body = b"x" * 300_000
    statuses, app_iter = wsgi_call(app, body, **{"wsgi.input": CancellingInput(app, body)})
    assert cancelled[0] is not None
    assert statuses[0].startswith("409")
    assert json.loads(b"".join(app_iter)) == {"error": "upload cancelled"}
    app_iter.close()
    record = app.registry.getUtility(IUploadProgressStore).get("w1", None)
    assert (record.state, record.cancelled, record.status) == ("error", True, 409)


# -- events -------------------------------------------------------------------

def events_app(subscriber=None, **settings):
    seen = []

    def configure(config):
        config.add_subscriber(lambda event: seen.append(("started", event)), UploadStarted)
        config.add_subscriber(lambda event: seen.append(("finished", event)), UploadFinished)
        if subscriber is not None:
            config.add_subscriber(subscriber, UploadStarted)

    return make_app(settings, configure=configure), seen


def test_an_upload_sends_started_and_finished_once_with_request_and_record():
    app, seen = events_app()
    webtest.TestApp(app).post("/upload?X-Progress-ID=e1", b"x" * 5000,
                              headers={"X-User": "alice"})
    assert [name for name, _ in seen] == ["started", "finished"]
    started, finished = seen[0][1], seen[1][1]
    assert started.request is finished.request
    assert (started.upload.id, started.upload.owner, started.upload.state) == ("e1", "alice", "uploading")
    assert (finished.upload.received, finished.upload.state, finished.upload.status) == (5000, "done", 200)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_events_carry_the_stores_key(kind):
    from tests.store_kinds import store_settings

    app, seen = events_app(**store_settings(kind))
    webtest.TestApp(app).post("/upload?X-Progress-ID=k1", b"x" * 5000,
                              headers={"X-User": "alice"})
    key = app.registry.getUtility(IUploadProgressStore).get("k1", "alice").key
    assert key
    assert [(name, event.upload.key) for name, event in seen] == \
        [("started", key), ("finished", key)]


def test_a_retried_upload_sends_each_event_once():
    attempts = []

    def flaky(request):
        attempts.append(len(request.body))
        if len(attempts) == 1:
            raise RetryableException("try again")
        return Response(json={"read": len(request.body)})

    def configure(config):
        config.include("pyramid_retry")
        config.add_route("flaky", "/flaky")
        config.add_view(flaky, route_name="flaky")

    seen = []
    app = make_app({"retry.attempts": "3"}, configure=lambda config: (
        configure(config),
        config.add_subscriber(lambda event: seen.append(type(event).__name__), UploadStarted),
        config.add_subscriber(lambda event: seen.append(type(event).__name__), UploadFinished)))
    statuses, app_iter = wsgi_call(app, b"x" * 5000, path="/flaky")
    app_iter.close()
    assert attempts == [5000, 5000]
    assert seen == ["UploadStarted", "UploadFinished"]


def quota(event):
    if event.upload.size > 4000:
        raise HTTPRequestEntityTooLarge("over your quota")


def test_a_quota_subscriber_refuses_an_upload_before_the_view_reads_it():
    app, seen = events_app(quota)
    statuses, app_iter = wsgi_call(app, b"x" * 5000, path="/upload")
    app_iter.close()
    assert statuses[0].startswith("413")
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    assert (record.received, record.state, record.status) == (0, "error", 413)
    assert [name for name, _ in seen] == ["started", "finished"]


def test_a_raising_subscriber_never_leaves_a_record_uploading():
    def broken(event):
        raise RuntimeError("the audit log is down")

    app, _ = events_app(broken)
    with pytest.raises(RuntimeError):
        statuses, app_iter = wsgi_call(app, b"x" * 5000, path="/upload")
        app_iter.close()
    record = app.registry.getUtility(IUploadProgressStore).get("w1", "alice")
    assert record.state == "error"


def test_an_untracked_request_sends_no_event():
    app, seen = events_app()
    webtest.TestApp(app).post("/upload", b"x" * 10, headers={"X-User": "alice"})
    assert seen == []


# -- processing stages ----------------------------------------------------------

def staged_view(gate: Gate):
    def view(request):
        request.body_file.read()
        request.upload_progress.stage("virus scan")
        request.upload_progress.stage("thumbnails", 1, 2)
        gate.wait()
        request.upload_progress.stage("thumbnails", 2, 2)
        return Response("processed")

    return view


def test_a_stage_shows_while_the_app_works_and_stays_after_the_end():
    gate = Gate()
    app = make_app(configure=lambda config: (
        config.add_route("staged", "/staged"), config.add_view(staged_view(gate), route_name="staged")))
    thread, result = in_thread(wsgi_call, app, b"x" * 5000, "/staged")
    assert gate.reached.wait(10)
    answer = poll(webtest.TestApp(app), "w1").json
    assert (answer["state"], answer["received"], answer["size"]) == ("uploading", 5000, 5000)
    assert answer["stage"] == {"name": "thumbnails", "done": 1, "total": 2}
    gate.go.set()
    thread.join(10)
    answer = poll(webtest.TestApp(app), "w1").json
    assert answer["state"] == "done"
    assert answer["stage"] == {"name": "thumbnails", "done": 2, "total": 2}


class CountingStages(MemoryUploadProgressStore):
    throttled = True

    def __init__(self, fail=False):
        super().__init__()
        self.stages = []
        self.updates = []
        self.fail = fail

    def update(self, key, received, files, ended=False):
        self.updates.append(received)
        return super().update(key, received, files, ended)

    def stage(self, key, name, done, total):
        if self.fail:
            raise ConnectionError("store is down")
        self.stages.append((name, done))
        super().stage(key, name, done, total)


def many_stages(request):
    request.body_file.read()
    for n in range(100):
        request.upload_progress.stage("resize", n, 99)
    request.upload_progress.stage("store")
    for n in range(100):
        request.upload_progress.stage("copy", n, 99)
    return Response("ok")


def stages_app(store, interval="3600"):
    return make_app({"upload_progress.update_interval": interval}, store=store,
                    configure=lambda config: (config.add_route("many", "/many"),
                                              config.add_view(many_stages, route_name="many")))


def test_a_throttled_store_gets_each_new_stage_at_once_and_the_last_call_by_the_end():
    store = CountingStages()
    statuses, app_iter = wsgi_call(stages_app(store), b"x" * 5000, path="/many")
    app_iter.close()
    assert store.stages == [("resize", 0), ("store", None), ("copy", 0), ("copy", 99)]
    assert store.get("w1", "alice").stage == {"name": "copy", "done": 99, "total": 99}
    # The body was read within the first interval: the first stage wrote it.
    assert store.updates == [5000]


def test_a_store_failing_on_a_stage_leaves_the_response_untouched():
    store = CountingStages(fail=True)
    statuses, app_iter = wsgi_call(stages_app(store), b"x" * 5000, path="/many")
    assert (statuses, b"".join(app_iter)) == (["200 OK"], b"ok")
    app_iter.close()


def test_an_untracked_request_has_no_upload_progress():
    def view(request):
        return Response(json={"tracked": request.upload_progress is not None})

    app = webtest.TestApp(make_app(configure=lambda config: (
        config.add_route("look", "/look"), config.add_view(view, route_name="look"))))
    assert app.post("/look", b"x" * 10).json == {"tracked": False}
    assert app.post("/look?X-Progress-ID=t1", b"x" * 10).json == {"tracked": True}
