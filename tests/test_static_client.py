"""The include serves the JavaScript client, unless told not to, with a
cache-busting URL and a Cache-Control suited to a versioned asset."""
import re

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.response import Response

CLIENT = "pyramid_upload_progress:static/upload-progress.js"


def link_to_client(request):
    return Response(request.static_url(CLIENT))


def client_app(settings, route_prefix=None):
    with Configurator(settings=settings) as config:
        config.include("pyramid_upload_progress", route_prefix=route_prefix)
        config.add_route("link", "/link")
        config.add_view(link_to_client, route_name="link")
        return webtest.TestApp(config.make_wsgi_app())


def test_the_client_is_served_under_the_report_path():
    response = client_app({}).get("/upload-progress/static/upload-progress.js")
    assert response.content_type in ("text/javascript", "application/javascript")
    assert b"export const {" in response.body
    assert b"import './upload-progress.global.js';" in response.body


def test_the_client_is_served_as_a_classic_script_too():
    response = client_app({}).get("/upload-progress/static/upload-progress.global.js")
    assert response.content_type in ("text/javascript", "application/javascript")
    assert b"root.UploadProgress = Object.freeze({" in response.body
    assert b"export " not in response.body


def test_the_client_follows_upload_progress_path():
    app = client_app({"upload_progress.path": "/progress"})
    assert app.get("/progress/static/upload-progress.js").status_int == 200
    assert re.fullmatch(r"http://localhost/progress/static/upload-progress\.js\?v=[0-9a-f]{12}",
                        app.get("/link").text)


def test_static_url_names_the_served_client():
    app = client_app({})
    assert app.get(app.get("/link").text).status_int == 200


@pytest.mark.parametrize("value", ["false", "off", "0", "no"])
def test_client_false_serves_no_client(value):
    app = client_app({"upload_progress.client": value})
    app.get("/upload-progress/static/upload-progress.js", status=404)
    assert app.get("/upload-progress").json == {"uploads": []}


@pytest.mark.parametrize("route_prefix", [None, "/app"])
def test_static_url_is_versioned_and_cached_for_a_year(route_prefix):
    app = client_app({}, route_prefix)
    url = app.get("/link").text
    assert f"{route_prefix or ''}/upload-progress/static/upload-progress.js?v=" in url
    response = app.get(url)
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert b"export const {" in response.body


@pytest.mark.parametrize("query", ["", "?v=0123456789ab", "?x=1"])
def test_an_unversioned_url_is_revalidated_every_time(query):
    response = client_app({}).get("/upload-progress/static/upload-progress.js" + query)
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.last_modified is not None
    again = client_app({}).get("/upload-progress/static/upload-progress.js" + query,
                             headers={"If-Modified-Since": response.headers["Last-Modified"]},
                             status=304)
    assert again.body == b""
