"""The include serves the JavaScript client, unless told not to."""
import pytest
import webtest
from pyramid.config import Configurator
from pyramid.response import Response

CLIENT = "pyramid_upload_progress:static/upload-progress.js"


def link_to_client(request):
    return Response(request.static_url(CLIENT))


def make_app(settings):
    with Configurator(settings=settings) as config:
        config.include("pyramid_upload_progress")
        config.add_route("link", "/link")
        config.add_view(link_to_client, route_name="link")
        return webtest.TestApp(config.make_wsgi_app())


def test_the_client_is_served_under_the_report_path():
    response = make_app({}).get("/upload-progress/static/upload-progress.js")
    assert response.content_type in ("text/javascript", "application/javascript")
    assert b"export function upload(" in response.body


def test_the_client_follows_upload_progress_path():
    app = make_app({"upload_progress.path": "/progress"})
    assert app.get("/progress/static/upload-progress.js").status_int == 200
    assert app.get("/link").text == "http://localhost/progress/static/upload-progress.js"


def test_static_url_names_the_served_client():
    app = make_app({})
    assert app.get(app.get("/link").text).status_int == 200


@pytest.mark.parametrize("value", ["false", "off", "0", "no"])
def test_client_false_serves_no_client(value):
    app = make_app({"upload_progress.client": value})
    app.get("/upload-progress/static/upload-progress.js", status=404)
    assert app.get("/upload-progress").json == {"uploads": []}
