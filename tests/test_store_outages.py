"""A store that fails never reaches the upload: the upload is served, polls
answer a JSON 503, and an outage is logged once and its end once.
"""
from __future__ import annotations

import logging

import pytest
import webtest
from zope.interface import implementer

from pyramid_upload_progress import IUploadProgressStore, MemoryUploadProgressStore
from tests.apps import basic_app, poll, upload


@implementer(IUploadProgressStore)
class FailingStore:
    """A store whose server is down: every call raises."""

    throttled = False

    def _down(self, *args):
        raise ConnectionError("store is down")

    start = update = set_owner = stage = finish = discard = get = list = cancel = _down


def test_a_failing_store_answers_503_json():
    app = webtest.TestApp(basic_app(store=FailingStore()))
    for path in ("/upload-progress", "/upload-progress?X-Progress-ID=x1"):
        res = app.get(path, headers={"X-User": "alice"}, status=503)
        assert res.content_type == "application/json"
        assert res.headers["Cache-Control"] == "no-store"
        assert "error" in res.json


def test_a_failing_store_never_reaches_the_upload(caplog):
    app = webtest.TestApp(basic_app(store=FailingStore()))
    assert upload(app, upload_id="u1", size=5000).json == {"read": 5000}
    assert "store is down" in caplog.text


@implementer(IUploadProgressStore)
class StoreFailingAfterStart(MemoryUploadProgressStore):
    """Starts uploads, then fails on ``method``; throttled, so that it is
    sent progress writes."""

    throttled = True

    def __init__(self, method):
        super().__init__()
        self.calls = []

        def fail(*args, **kw):
            self.calls.append(method)
            raise ConnectionError(f"{method} failed")

        setattr(self, method, fail)


@pytest.mark.parametrize("method", ["update", "set_owner", "finish"])
def test_a_store_failing_mid_upload_never_reaches_the_upload(method):
    store = StoreFailingAfterStart(method)
    app = webtest.TestApp(basic_app({"upload_progress.update_interval": "0"}, store=store))
    assert upload(app, upload_id="u1", size=5000).json == {"read": 5000}
    assert store.calls == [method]


class FlappingStore(MemoryUploadProgressStore):
    """A store that is down while ``down`` is true."""

    def __init__(self):
        super().__init__()
        self.down = False

    def start(self, *args):
        if self.down:
            raise ConnectionError("store is down")
        return super().start(*args)

    def get(self, *args):
        if self.down:
            raise ConnectionError("store is down")
        return super().get(*args)


def test_an_outage_is_logged_once_and_its_end_once(caplog):
    store = FlappingStore()
    app = webtest.TestApp(basic_app(store=store))
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        store.down = True
        for n in range(5):
            upload(app, upload_id=f"o{n}", size=5000)
            poll(app, f"o{n}", status=503)
        store.down = False
        upload(app, upload_id="back", size=5000)
        assert poll(app, "back").json["state"] == "done"
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "failed" in m]) == 1
    assert messages.count("upload progress: the store answers again") == 1
