"""The JavaScript client against nginx's upload-progress module, in headless
Chromium: what ``docs/client.rst`` says of it, measured.

The page's origin is nginx (``tests/e2e/more_servers.py``: its module
tracks ``/buffered/`` and ``/streamed/`` and reports at ``/progress``) in
front of gunicorn, reached through a proxy that sends the browser's bytes
on at ``RATE``, as a slow network would. The client uploads with
``progressUrl: '/progress'`` and records what every callback saw.
"""
from __future__ import annotations

import pytest

from tests.browser import quit_chromium, start_chromium
from tests.e2e import more_servers
from tests.e2e.more_servers import STEPS, require, settings
from tests.e2e.proxy import ThrottlingProxy
from tests.e2e.servers import serve

pytestmark = pytest.mark.e2e

SIZE = 4 * 1024 * 1024
RATE = 1024 * 1024
"""4 MiB at 1 MiB/s: about 4 s on the wire."""

UPLOAD_THROUGH_THE_MODULE = """
const [path, size, done] = arguments;
import('/upload-progress/static/upload-progress.js').then((client) => {
  const seen = [];
  const sending = client.upload(path, new Blob([new Uint8Array(size)]), {
    progressUrl: '/progress', interval: 200,
    onProgress(up) { seen.push([up.state, up.received]); },
  });
  sending.done.then(
    (response) => done({seen, status: response.status}),
    (error) => done({seen, error: String(error)}));
});
"""


@pytest.fixture(scope="module")
def page():
    """A browser whose page comes from nginx, through the slow link."""
    require("nginx")
    with serve("gunicorn", "tests.plain_app:app", env=settings()) as upstream, \
            more_servers.nginx(upstream.port) as nginx, \
            ThrottlingProxy(nginx.port, rate=RATE) as link:
        session, profile = start_chromium()
        try:
            session.set_script_timeout(30)
            session.get(link.url + "/upload-progress")
            yield session
        finally:
            quit_chromium(session, profile)


def steps(seen: list[list]) -> list[int]:
    """The distinct ``received`` values between 0 and SIZE the client saw
    while the module said ``uploading``."""
    values: list[int] = []
    for state, received in seen:
        if state == "uploading" and 0 < received < SIZE and received not in values:
            values.append(received)
    return values


def test_the_client_shows_progress_from_nginxs_module_while_nginx_buffers(page):
    result = page.execute_async_script(UPLOAD_THROUGH_THE_MODULE, "/buffered/upload", SIZE)
    assert result.get("status") == 200, result
    assert len(steps(result["seen"])) >= STEPS, result
    assert steps(result["seen"]) == sorted(steps(result["seen"]))


def test_the_client_gets_no_progress_from_nginxs_module_without_request_buffering(page):
    result = page.execute_async_script(UPLOAD_THROUGH_THE_MODULE, "/streamed/upload", SIZE)
    assert result.get("status") == 200, result
    assert len(steps(result["seen"])) <= 1, result
