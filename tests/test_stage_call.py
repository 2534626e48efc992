"""``pyramid_upload_progress.stage(request, name, done=None, total=None)``:
reporting a stage is one call whether or not the request is tracked. It
does what ``request.upload_progress.stage`` does for a tracked request,
nothing for one that is not, and checks its values either way, so that a
bad one shows in tests that send no upload."""
from __future__ import annotations

from decimal import Decimal

import pytest
import webtest
from pyramid.response import Response
from pyramid.testing import DummyRequest

from pyramid_upload_progress import stage
from tests.apps import make_app, serve_upload
from tests.e2e.client import ALICE

SIZE = 50_000


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
