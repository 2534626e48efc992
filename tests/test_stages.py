"""Processing stages: ``request.upload_progress.stage()`` shows in polls
while the app works on an upload and stays after its end;
``pyramid_upload_progress.stage(request, ...)`` is the same in one call
whether or not the request is tracked.

``done`` and ``total`` are ints or ``None`` (anything ``operator.index``
accepts is taken as its int); any other value raises ``TypeError`` at the
call, so that no value JSON cannot carry reaches a store or an answer; a
stage call never raises because of the store. Misuse (other threads, after
the response, from event subscribers) is tested against every store.
"""
from __future__ import annotations

import json
import threading
from decimal import Decimal
from fractions import Fraction

import pytest
import webtest
from pyramid.response import Response
from pyramid.testing import DummyRequest

from pyramid_upload_progress import MemoryUploadProgressStore, UploadFinished, UploadStarted, stage
from tests.apps import (
    WAIT,
    Background,
    Gate,
    GatedInput,
    basic_app,
    make_app,
    poll,
    serve_upload,
    store_of,
    wsgi_call,
    wsgi_call_in_thread,
)
from tests.e2e.client import ALICE
from tests.store_kinds import each_store, store_settings


SIZE = 50_000


class Index:
    """An int-like that is not an int, as a numpy integer is: it has
    ``__index__``."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def stage_then_answer(values):
    """A view that reads the body, calls ``stage("thumbnails", done, total)``
    with ``values``, then ``stage("store", 1, 2)``; it answers what the
    first call raised."""

    def view(request):
        request.body_file.read()
        try:
            request.upload_progress.stage("thumbnails", *values)
            raised = None
        except TypeError as exc:
            raised = str(exc)
        request.upload_progress.stage("store", 1, 2)
        return Response(json={"raised": raised})

    return view


def staged(kind, values, upload_id="s1"):
    app = make_app({"stage": stage_then_answer(values)}, store_settings(kind))
    response = serve_upload(app, b"s" * SIZE, "/stage", headers=ALICE,
                            query=f"X-Progress-ID={upload_id}")
    return app, response.json["raised"]


def report(app, upload_id="s1"):
    """The poll's and the listing's answers, parsed as strictly as a
    browser's ``JSON.parse`` (no ``NaN``)."""
    client = webtest.TestApp(app)
    answers = []
    for path in (f"/upload-progress?X-Progress-ID={upload_id}", "/upload-progress"):
        response = client.get(path, headers=ALICE)
        assert response.status_int == 200
        answers.append(json.loads(response.body, parse_constant=_no_constant))
    return answers


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


@each_store()
@pytest.mark.parametrize("bad", [Decimal(3), float("nan"), 3.0, "3", Fraction(3, 1), [3]],
                         ids=["Decimal", "nan", "float", "str", "Fraction", "list"])
@pytest.mark.parametrize("where", ["done", "total"])
def test_a_value_that_is_not_an_int_raises_typeerror_at_the_call(kind, bad, where):
    values = (bad, 12) if where == "done" else (3, bad)
    app, raised = staged(kind, values)
    assert raised is not None and where in raised and "int" in raised
    poll, listing = report(app)
    # Nothing of the refused call reached the store; the upload is tracked
    # to its end.
    assert (poll["state"], poll["received"]) == ("done", SIZE)
    assert poll["stage"] == {"name": "store", "done": 1, "total": 2}
    assert [upload["stage"] for upload in listing["uploads"]] == [poll["stage"]]


@each_store()
@pytest.mark.parametrize("value, taken", [(Index(3), 3), (True, 1), (None, None), (7, 7)],
                         ids=["__index__", "bool", "None", "int"])
def test_what_operator_index_accepts_is_taken_as_its_int(kind, value, taken):
    app = make_app({"stage": stage_and_hold_view(value)}, store_settings(kind))
    response = serve_upload(app, b"s" * SIZE, "/stage", headers=ALICE,
                            query="X-Progress-ID=s2")
    assert response.status_int == 200
    poll, _ = report(app, "s2")
    assert poll["stage"] == {"name": "thumbnails", "done": taken, "total": taken}
    assert type(poll["stage"]["done"]) is type(taken)


def stage_and_hold_view(value):
    def view(request):
        request.body_file.read()
        request.upload_progress.stage("thumbnails", value, value)
        return Response("ok")

    return view


# -- misuse: other threads, after the response --------------------------------

@each_store()
def test_stage_from_another_thread_while_the_request_reads(kind):
    """A worker thread of the app reports stages while the request's thread
    is still reading the body, and the view waits for it before answering
    (as an app joins its worker): neither raises, the body is counted
    whole, and the last stage the thread set is the one kept."""
    calls = 300
    raw = GatedInput(b"t" * SIZE, gates=(2,))
    staged_upload = {}
    staged = threading.Event()

    def view(request):
        staged_upload["progress"] = request.upload_progress
        data = b"".join(iter(lambda: request.body_file.read(1000), b""))
        assert staged.wait(WAIT)
        return Response(json={"read": len(data)})

    app = make_app({"read": view}, store_settings(kind))
    thread = Background(lambda: serve_upload(app, None, "/read", raw=raw, headers=ALICE,
                                             query="X-Progress-ID=t1"))
    thread.start()
    assert raw.waiting.wait(WAIT)
    progress = staged_upload["progress"]
    stager = Background(lambda: [progress.stage("unpack", n, calls) for n in range(calls)])
    stager.start()
    raw.go.set()  # the body goes on while the other thread stages
    stager.result()
    staged.set()
    assert thread.result().json == {"read": SIZE}
    record = store_of(app).get("t1", "alice")
    assert (record.state, record.received) == ("done", SIZE)
    assert record.stage == {"name": "unpack", "done": calls - 1, "total": calls}


@each_store()
def test_stage_after_the_response_neither_raises_nor_brings_the_record_back(kind):
    kept = {}

    def view(request):
        request.body_file.read()
        request.upload_progress.stage("scan")
        kept["progress"] = request.upload_progress
        return Response("ok")

    app = make_app({"late": view}, store_settings(kind))
    serve_upload(app, b"l" * SIZE, "/late", headers=ALICE, query="X-Progress-ID=l1")
    store = store_of(app)
    kept["progress"].stage("too late", 1, 2)
    record = store.get("l1", "alice")
    assert (record.state, record.stage) == ("done", {"name": "scan", "done": None, "total": None})
    store.discard(record.key)
    kept["progress"].stage("later still", 2, 2)
    assert store.get("l1", "alice") is None
    assert store.list("alice") == []


@each_store()
@pytest.mark.parametrize("event", [UploadStarted, UploadFinished], ids=["started", "finished"])
def test_a_raising_subscriber_ends_the_record_once_and_sends_each_event_once(kind, event):
    seen = []

    def count(name):
        return lambda e: seen.append(name)

    def broken(e):
        raise RuntimeError("the audit log is down")

    def read(request):
        request.body_file.read()
        return Response("ok")

    def subscribe(config):
        config.add_subscriber(count("started"), UploadStarted)
        config.add_subscriber(count("finished"), UploadFinished)
        config.add_subscriber(broken, event)

    app = make_app({"read": read}, store_settings(kind), configure=subscribe)
    with pytest.raises(RuntimeError):
        serve_upload(app, b"e" * SIZE, "/read", headers=ALICE, query="X-Progress-ID=ev")
    record = store_of(app).get("ev", "alice")
    assert record.finished is not None
    assert record.state == ("error" if event is UploadStarted else "done")
    assert seen == ["started", "finished"]


@each_store()
def test_stages_from_event_subscribers_are_kept_before_the_end_and_ignored_after(kind):
    """A subscriber of ``UploadStarted`` may say a stage (the upload is
    tracked then); one of ``UploadFinished`` comes after the record ended:
    its stage neither raises nor changes the record."""

    def read(request):
        request.body_file.read()
        return Response("ok")

    def subscribe(config):
        config.add_subscriber(lambda e: e.request.upload_progress.stage("queued", 0, 1),
                              UploadStarted)
        config.add_subscriber(lambda e: e.request.upload_progress.stage("too late", 1, 1),
                              UploadFinished)

    app = make_app({"read": read}, store_settings(kind), configure=subscribe)
    response = serve_upload(app, b"q" * SIZE, "/read", headers=ALICE, query="X-Progress-ID=q1")
    assert response.status_int == 200
    record = store_of(app).get("q1", "alice")
    assert (record.state, record.stage) == ("done", {"name": "queued", "done": 0, "total": 1})


# -- processing stages --------------------------------------------------------

def staged_view(gate: Gate):
    def view(request):
        request.body_file.read()
        request.upload_progress.stage("virus scan")
        request.upload_progress.stage("thumbnails", 1, 2)
        gate.hold()
        request.upload_progress.stage("thumbnails", 2, 2)
        return Response("processed")

    return view


def test_a_stage_shows_while_the_app_works_and_stays_after_the_end():
    gate = Gate()
    app = basic_app(configure=lambda config: (
        config.add_route("staged", "/staged"), config.add_view(staged_view(gate), route_name="staged")))
    thread = wsgi_call_in_thread(app, b"x" * 5000, "/staged")
    assert gate.waiting.wait(WAIT)
    answer = poll(webtest.TestApp(app), "w1").json
    assert (answer["state"], answer["received"], answer["size"]) == ("uploading", 5000, 5000)
    assert answer["stage"] == {"name": "thumbnails", "done": 1, "total": 2}
    gate.go.set()
    thread.result()
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
    return basic_app({"upload_progress.update_interval": interval}, store=store,
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


# -- stage(request, ...): one call whether or not the request is tracked --------

def read_then_stage(request):
    data = request.body_file.read()
    stage(request, "thumbnails", 3, 12)
    return Response(json={"read": len(data)})


def test_a_tracked_requests_stage_shows_in_its_upload():
    app = make_app({"read": read_then_stage})
    serve_upload(app, b"x" * SIZE, "/read", headers=ALICE, query="X-Progress-ID=staged")
    answer = webtest.TestApp(app).get("/upload-progress?X-Progress-ID=staged",
                                      headers=ALICE).json
    assert answer["stage"] == {"name": "thumbnails", "done": 3, "total": 12}


def test_an_untracked_request_is_served_as_if_nothing_was_said():
    app = make_app({"read": read_then_stage}, {"upload_progress.threshold": str(SIZE + 1)})
    response = webtest.TestApp(app).post("/read", b"x" * SIZE, headers=ALICE)
    assert response.json == {"read": SIZE}


@pytest.mark.parametrize("args", [(3,), ("scan", 1.5), ("scan", None, Decimal(2)),
                                  ("scan", float("nan"))])
def test_a_bad_stage_raises_type_error_also_untracked(args):
    with pytest.raises(TypeError):
        stage(DummyRequest(), *args)
