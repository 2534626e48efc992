"""Events: ``UploadStarted`` and ``UploadFinished`` are sent once an upload,
with the request, the record and the store's key; a subscriber may refuse
an upload before the view reads it, and never leaves a record uploading.
"""
from __future__ import annotations

import pytest
import webtest
from pyramid.httpexceptions import HTTPRequestEntityTooLarge
from pyramid.response import Response
from pyramid_retry import RetryableException

from pyramid_upload_progress import IUploadProgressStore, UploadFinished, UploadStarted
from tests.apps import basic_app, wsgi_call


# -- events -------------------------------------------------------------------

def events_app(subscriber=None, **settings):
    seen = []

    def configure(config):
        config.add_subscriber(lambda event: seen.append(("started", event)), UploadStarted)
        config.add_subscriber(lambda event: seen.append(("finished", event)), UploadFinished)
        if subscriber is not None:
            config.add_subscriber(subscriber, UploadStarted)

    return basic_app(settings, configure=configure), seen


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
    app = basic_app({"retry.attempts": "3"}, configure=lambda config: (
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
