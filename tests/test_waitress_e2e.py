"""The waitress runner as users run it: ``pserve`` of a starter-shaped app.

The app is the cookiecutter-shaped ``tests/sqla_app.py`` (pyramid_tm,
pyramid_retry, a security policy that loads the user from the database),
served by ``pserve`` from a PasteDeploy ``.ini`` whose ``[server:main]``
says ``use = egg:pyramid_upload_progress#waitress``: the one line that
differs from the starter's ``development.ini``. Each test runs on the
oldest and the newest waitress the ``waitress`` extra supports, each in a
venv of its own (``tests/waitress_venvs.py``).

- A slow 32 MiB upload shows ``received`` rising in at least 10 steps by
  its id, then lands done in its owner's listing, never going down.
- A hung Redis (SIGSTOP) during uploads stalls no other request: waitress's
  I/O thread never waits on the store.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.client import UploadThread, get_json, listing, poll
from tests.e2e.servers import HOST, REPO_ROOT, Server, _stop, _wait_until_ready, free_port
from tests.redis_server import own_server
from tests.waitress_venvs import NEWEST, OLDEST, waitress_venv

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MiB = 1024 * 1024
SIZE = 32 * MiB
CHUNK = 256 * 1024
DELAY = 0.025  # 128 chunks: about 3.2 s to arrive, 10 MiB/s
POLL_EVERY = 0.2
ALICE = {"X-User-Id": "1"}
#: How long a test waits for a record's end.
SETTLE_TIMEOUT = 10.0

INI = """\
[app:main]
use = call:tests.sqla_app:main
sqlalchemy.url = sqlite:///{db}
retry.attempts = 3
{settings}

[server:main]
use = egg:pyramid_upload_progress#waitress
listen = {host}:{port}
threads = 8

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)s [%(name)s] %(message)s
"""


@pytest.fixture(scope="module", params=[OLDEST, NEWEST])
def waitress_bin(request) -> Path:
    return waitress_venv(request.param)


@contextlib.contextmanager
def pserve(bin_dir: Path, tmp: Path, **settings: str) -> Iterator[Server]:
    """``pserve`` of the app, with these ``upload_progress.*`` settings."""
    port = free_port()
    ini = tmp / "app.ini"
    ini.write_text(INI.format(
        db=tmp / "app.sqlite", host=HOST, port=port,
        settings="\n".join(f"upload_progress.{name} = {value}"
                           for name, value in settings.items())))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([str(bin_dir / "pserve"), str(ini)], cwd=REPO_ROOT,
                                   env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        server = Server("pserve", port, process, log)
        try:
            _wait_until_ready(server)
            yield server
        except Exception as exc:
            exc.add_note(f"--- pserve output ---\n{server.output()}")
            raise
        finally:
            _stop(process)


def test_a_slow_upload_rises_by_id_then_lands_in_the_owners_listing(waitress_bin, tmp_path,
                                                                   capsys):
    with pserve(waitress_bin, tmp_path) as server:
        upload = UploadThread(server.url, "/upload", size=SIZE, chunk=CHUNK, delay=DELAY,
                              headers={**ALICE, "X-Progress-ID": "big32"})
        upload.start()
        by_id, in_listing = [], []
        deadline = time.monotonic() + 60
        while upload.is_alive() and time.monotonic() < deadline:
            by_id.append(poll(server.url, "big32", ALICE))
            in_listing += listing(server.url, ALICE, upload_id="big32")
            time.sleep(POLL_EVERY)
        response = upload.join_result()
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not [u for u in in_listing if u["state"] == "done"]:
            assert time.monotonic() < deadline, in_listing[-1:]
            in_listing += listing(server.url, ALICE, upload_id="big32")
            time.sleep(0.05)
        output = server.output()
    assert response.status == 200 and response.json()["bytes"] == SIZE
    steps = sorted({u["received"] for u in by_id if u["state"] == "uploading"
                    and 0 < u["received"] < SIZE})
    with capsys.disabled():
        print(f"\nwaitress runner, {waitress_bin.parent.name}: {len(steps)} steps by id "
              f"over {len(by_id)} polls, {len(in_listing)} answers in the listing")
    assert len(steps) >= 10, [u["received"] for u in by_id]
    seen = [u["received"] for u in by_id + in_listing if u["state"] != "starting"]
    assert seen == sorted(seen), seen  # never down, by id then in the listing
    assert (in_listing[-1]["state"], in_listing[-1]["received"]) == ("done", SIZE)
    assert "upload progress:" not in output


def test_a_hung_redis_stalls_no_other_request(waitress_bin, tmp_path, capsys):
    with own_server() as redis, pserve(
            waitress_bin, tmp_path, store="redis", **{"redis.url": redis.url,
                                                      "redis.socket_timeout": "3"}) as server:
        home = _latencies(server, 10)
        uploads = [UploadThread(server.url, "/upload", size=8 * MiB, chunk=CHUNK,
                                delay=0.1, headers={**ALICE, "X-Progress-ID": f"hung{n}"})
                   for n in range(3)]
        for upload in uploads:
            upload.start()
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while poll(server.url, "hung2", ALICE)["received"] == 0:
            assert time.monotonic() < deadline, "no progress before the hang"
            time.sleep(0.05)
        redis.pause()
        try:
            hung = _latencies(server, 20)
        finally:
            redis.resume()
        responses = [upload.join_result() for upload in uploads]
    with capsys.disabled():
        print(f"\nwaitress runner, GET / latency, ms: Redis answering "
              f"median {_ms(sorted(home)[len(home) // 2])} max {_ms(max(home))}; "
              f"Redis hung (SIGSTOP, socket_timeout 3 s, 3 uploads arriving) "
              f"median {_ms(sorted(hung)[len(hung) // 2])} max {_ms(max(hung))}")
    assert [response.status for response in responses] == [200, 200, 200]
    # A request that waited on the store would take socket_timeout (3 s).
    assert max(hung) < 1.0, hung


def _latencies(server: Server, count: int) -> list[float]:
    """Seconds each of ``count`` home page requests took, 0.1 s apart."""
    took = []
    for _ in range(count):
        began = time.monotonic()
        status, _, _ = get_json(server.url, "/", ALICE)
        took.append(time.monotonic() - began)
        assert status == 200
        time.sleep(0.1)
    return took


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"
