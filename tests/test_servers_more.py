"""The server matrix of the deployment page: every other server our users run.

Each test is one row of the table in ``docs/deployment.rst``, measured one
way: an upload of ``SIZE`` bytes sent at ``RATE`` bytes per second while the
report view is polled every ``POLL`` seconds over other connections; a row
says "progress while it arrives" when the polls answered during the upload
saw ``received`` rise through several distinct values between 0 and the
size (``steps``).

The servers are real, started on loopback ports (``tests/e2e/more_servers.py``):
gunicorn's sync worker, uWSGI (``pip install uwsgi``), Apache with mod_wsgi
(``mod_wsgi-express``, Debian's ``apache2-bin`` and ``apache2-dev``; run
from an environment its daemon's user can read), nginx
with its upload-progress module. Under ``CI`` a server that is missing fails
its tests; elsewhere they skip.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e import mod_wsgi_env, more_servers
from tests.e2e.client import ALICE, Response, UploadThread, get_json
from tests.e2e.more_servers import STEPS, require, settings
from tests.e2e.servers import serve

pytestmark = pytest.mark.e2e

APP = "tests.plain_app:app"
SIZE = 16 * 1024 * 1024
CHUNK = 256 * 1024
RATE = 5 * 1024 * 1024
"""16 MiB at 5 MiB/s: the body takes about 3.2 s to arrive."""
POLL = 0.2
@dataclass
class Watched:
    """What the polls saw of one upload while it was arriving, and how the
    upload ended for its client."""

    answers: list[dict[str, Any]] = field(default_factory=list)
    """Every poll answered before the client had sent its last byte."""
    late: int = 0
    """Polls sent during the upload but answered after its last byte."""
    response: Response | None = None
    failure: OSError | None = None
    """What the client's request failed with, if it did."""

    @property
    def steps(self) -> list[int]:
        """The distinct values of ``received`` strictly between 0 and the
        size that the polls saw while the body was arriving, in order."""
        seen: list[int] = []
        for answer in self.answers:
            received = answer.get("received", 0)
            if 0 < received < SIZE and received not in seen:
                seen.append(received)
        return seen


def watch(port: int, path: str, *, report: str = "/upload-progress",
          chunked: bool = False) -> tuple[Watched, str]:
    """Upload ``SIZE`` bytes to ``path`` at ``RATE`` with a fresh upload id
    while polling ``report`` with it every ``POLL`` s; return what the polls
    saw and the id."""
    upload_id = uuid.uuid4().hex
    thread = UploadThread(port, f"{path}?X-Progress-ID={upload_id}", size=SIZE, chunk=CHUNK,
                          delay=CHUNK / RATE, chunked=chunked, headers=ALICE)
    watched = Watched()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            asked = time.monotonic()
            try:
                _, _, answer = get_json(port, f"{report}?X-Progress-ID={upload_id}", ALICE,
                                        timeout=30)
            except (OSError, ValueError):
                answer = None
            if stop.is_set() or thread.sent >= SIZE:
                watched.late += 1
            elif answer is not None:
                watched.answers.append(answer)
            stop.wait(max(0.0, POLL - (time.monotonic() - asked)))

    poller = threading.Thread(target=poll, daemon=True)
    thread.start()
    poller.start()
    try:
        watched.response = thread.join_result(timeout=60)
    except OSError as exc:
        watched.failure = exc
    finally:
        stop.set()
        poller.join(35)
    return watched, upload_id


def settled(port: int, upload_id: str, report: str = "/upload-progress",
            timeout: float = 10.0) -> dict[str, Any]:
    """The upload's answer once it is ``done`` or ``error`` (bounded wait):
    the add-on's report view or, at ``report="/progress"``, nginx's
    upload-progress module, whose answers have states but no ``finished``."""
    deadline = time.monotonic() + timeout
    while True:
        _, _, answer = get_json(port, f"{report}?X-Progress-ID={upload_id}", ALICE)
        if answer["state"] in ("done", "error") or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def assert_progress_while_arriving(watched: Watched) -> None:
    """The row says "yes": polls saw ``received`` rise in steps, and the
    body reached the app whole."""
    assert len(watched.steps) >= STEPS, watched
    assert watched.steps == sorted(watched.steps)
    assert watched.response is not None and watched.response.status == 200, watched
    assert watched.response.json()["read"] == SIZE


# gunicorn's sync worker: one request at a time per process.

def test_gunicorn_sync_two_workers_sqlite_show_progress_while_arriving(tmp_path):
    with more_servers.gunicorn_sync(APP, workers=2, env=settings(
            store="sqlite", **{"sqlite.path": str(tmp_path / "progress.sqlite3")})) as server:
        watched, upload_id = watch(server.port, "/upload")
        assert_progress_while_arriving(watched)
        assert settled(server.port, upload_id)["state"] == "done"


def test_gunicorn_sync_one_worker_memory_store_polls_wait_behind_the_upload():
    with more_servers.gunicorn_sync(APP, workers=1, env=settings()) as server:
        watched, upload_id = watch(server.port, "/upload")
        # A poll may come before the upload does; none during it.
        assert {answer["state"] for answer in watched.answers} <= {"starting"}, watched
        assert watched.late >= 1, watched
        assert watched.response is not None and watched.response.status == 200
        assert settled(server.port, upload_id)["state"] == "done"
        assert server.output().count("serves one request at a time") == 1, server.output()


# uWSGI serving HTTP itself (--http-socket).

@pytest.fixture(scope="module")
def uwsgi_server():
    require("uwsgi")
    with more_servers.uwsgi(APP, env=settings()) as server:
        yield server


def test_uwsgi_http_socket_shows_progress_while_arriving(uwsgi_server):
    watched, upload_id = watch(uwsgi_server.port, "/upload")
    assert_progress_while_arriving(watched)
    assert settled(uwsgi_server.port, upload_id)["state"] == "done"
    assert "read the whole request body" not in uwsgi_server.output()


def test_uwsgi_chunked_body_reaches_the_app_empty_and_its_upload_ends_in_error(uwsgi_server):
    """uWSGI 2.0 gives a WSGI app no way to read a chunked body (no
    ``wsgi.input_terminated``; WebOb sees an empty body): the app answers
    before the body has arrived, uWSGI closes the connection under the
    client, and the record says so instead of ``done``."""
    watched, upload_id = watch(uwsgi_server.port, "/upload", chunked=True)
    assert watched.steps == []
    assert watched.failure is not None or watched.response.json()["read"] == 0, watched
    answer = settled(uwsgi_server.port, upload_id)
    assert (answer["state"], answer["received"], answer["size"]) == ("error", 0, None), answer
    assert uwsgi_server.output().count("chunked request body") == 1, uwsgi_server.output()


def test_uwsgi_post_buffering_hides_the_body_and_is_warned_about():
    require("uwsgi")
    with more_servers.uwsgi(APP, "--post-buffering", "8192", env=settings()) as server:
        watched, upload_id = watch(server.port, "/upload")
        assert watched.steps == [], watched
        assert watched.response is not None and watched.response.status == 200
        assert settled(server.port, upload_id)["state"] == "done"
        assert server.output().count("read the whole request body") == 1, server.output()


# Apache with mod_wsgi in daemon mode, through mod_wsgi-express.

#: The first of these tests may build mod_wsgi's environment (a compile, a
#: minute or more; see tests/e2e/mod_wsgi_env.py), then cached.
builds_mod_wsgi = pytest.mark.timeout(2 * mod_wsgi_env.BUILD_TIMEOUT)


@pytest.fixture(scope="module")
def mod_wsgi_server():
    require("mod_wsgi")
    with more_servers.mod_wsgi_express(
            "tests.plain_app", "--limit-request-body", str(2 * SIZE), "--chunked-request",
            env=settings()) as server:
        yield server


@builds_mod_wsgi
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_mod_wsgi_shows_progress_while_arriving_with_the_body_limit_raised(
        mod_wsgi_server, chunked):
    watched, upload_id = watch(mod_wsgi_server.port, "/upload", chunked=chunked)
    assert_progress_while_arriving(watched)
    answer = settled(mod_wsgi_server.port, upload_id)
    assert (answer["state"], answer["size"]) == ("done", None if chunked else SIZE)


@builds_mod_wsgi
def test_mod_wsgi_default_body_limit_refuses_the_upload_before_the_app_sees_it():
    """``mod_wsgi-express``'s default ``--limit-request-body`` is 10 MiB:
    Apache answers 413 itself, so the add-on never sees the upload."""
    require("mod_wsgi")
    with more_servers.mod_wsgi_express("tests.plain_app", env=settings()) as server:
        watched, upload_id = watch(server.port, "/upload")
        assert watched.response is not None and watched.response.status == 413, watched
        assert {answer["state"] for answer in watched.answers} <= {"starting"}, watched
        assert get_json(server.port, f"/upload-progress?X-Progress-ID={upload_id}",
                        ALICE)[2]["state"] == "starting"


# nginx in front of gunicorn (gthread), with its upload-progress module.

@pytest.fixture(scope="module")
def nginx_server():
    require("nginx")
    with serve("gunicorn", APP, env=settings()) as upstream, \
            more_servers.nginx(upstream.port) as proxy:
        yield proxy


def test_nginx_default_buffering_hides_the_body_from_the_app_and_its_module_counts(
        nginx_server):
    addon, _ = watch(nginx_server.port, "/buffered/upload")
    assert addon.steps == [], addon
    assert addon.response is not None and addon.response.status == 200
    module, upload_id = watch(nginx_server.port, "/buffered/upload", report="/progress")
    assert len(module.steps) >= STEPS, module
    assert settled(nginx_server.port, upload_id, report="/progress")["state"] == "done"


def test_nginx_without_request_buffering_the_app_counts_and_its_module_does_not(
        nginx_server):
    """With ``proxy_request_buffering off`` nginx's module reports no
    progress: measured, ``received`` is the whole size from the first poll
    while the body is still arriving."""
    addon, _ = watch(nginx_server.port, "/streamed/upload")
    assert_progress_while_arriving(addon)
    module, upload_id = watch(nginx_server.port, "/streamed/upload", report="/progress")
    assert len(module.steps) <= 1, module
    assert "uploading" in {answer["state"] for answer in module.answers}, module
    assert settled(nginx_server.port, upload_id, report="/progress")["state"] == "done"


def test_nginx_module_shows_no_chunked_body_arriving_and_the_app_does(nginx_server):
    """For a chunked body nginx's module reports a ``received`` that is
    not a byte count (measured: -8193 throughout), buffered or not; the
    add-on behind ``proxy_request_buffering off`` shows it arrive."""
    module, upload_id = watch(nginx_server.port, "/buffered/upload", report="/progress",
                              chunked=True)
    assert module.steps == [], module
    assert "uploading" in {answer["state"] for answer in module.answers}, module
    assert module.response is not None and module.response.status == 200
    addon, upload_id = watch(nginx_server.port, "/streamed/upload", chunked=True)
    assert_progress_while_arriving(addon)
    assert settled(nginx_server.port, upload_id)["size"] is None
