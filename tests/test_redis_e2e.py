"""The Redis store end to end: gunicorn (gthread) worker processes and
"hosts" (separate masters) sharing one real Redis, a worker killed mid-upload,
Redis stopped, hung and restarted under live uploads, and what Redis costs
per upload.

The app is ``tests/plain_app.py`` (through ``tests/e2e/worker_app.py``, which
says which worker answered); it answers an upload with its size and
SHA-256, so a test sees that the bytes arrived intact.
"""
from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from tests.e2e.client import ALICE, ended, poll, slow_upload, wait_for, worker_answer
from tests.e2e.redis_app import (
    APP,
    CHUNK,
    DELAY,
    SIZE,
    SOCKET_TIMEOUT,
    app_env,
    assert_done,
    assert_seen_arriving,
    digest,
    polls_while_sending,
    upload,
)
from tests.e2e.servers import serve
from tests.redis_server import fresh_prefix, own_server, require_redis, session_server

require_redis()

pytestmark = pytest.mark.e2e

#: Slack on top of the time a step should take, for a loaded 2-core machine.
SLACK = 1.0


@pytest.fixture(scope="module")
def redis_url():
    return session_server().url


# -- shared by processes and hosts ---------------------------------------------

def test_every_worker_process_answers_with_the_same_progress(redis_url):
    upload_id = uuid.uuid4().hex
    with serve("gunicorn", APP, env=app_env(redis_url), workers=3, threads=8) as server:
        thread = upload(server, upload_id)
        answers, pids = polls_while_sending(server, thread, upload_id)
        assert thread.join_result().json() == {"read": SIZE, "sha256": digest(SIZE)}
        ended(server.port, upload_id)
        finals = [worker_answer(server.port, upload_id) for _ in range(10)]
    assert_seen_arriving(answers)
    assert len(pids | {pid for _, pid, _ in finals}) >= 2, "one worker answered every poll"
    for status, _, answer in finals:
        assert status == 200, answer
        assert_done(answer)


def test_two_hosts_on_one_redis_see_each_others_uploads(redis_url):
    upload_id = uuid.uuid4().hex
    env = app_env(redis_url)
    with serve("gunicorn", APP, env=env, workers=1, threads=8) as host_a, \
            serve("gunicorn", APP, env=env, workers=1, threads=8) as host_b:
        thread = upload(host_a, upload_id)
        answers, _ = polls_while_sending(host_b, thread, upload_id)
        assert thread.join_result().json()["sha256"] == digest(SIZE)
        ended(host_a.port, upload_id)
        finals = [poll(host.port, upload_id) for host in (host_a, host_b)]
    assert_seen_arriving(answers)
    for answer in finals:
        assert_done(answer)


def test_a_killed_workers_upload_turns_error_then_vanishes(redis_url):
    upload_id = uuid.uuid4().hex
    prefix = fresh_prefix()
    env = app_env(redis_url, prefix, **{"upload_progress.timeout": "1",
                                        "upload_progress.stall_timeout": "1"})
    with serve("gunicorn", APP, env=env, workers=1, threads=8) as server:
        thread = upload(server, upload_id, delay=0.1)
        _, pid, _ = wait_for(lambda: (found := worker_answer(server.port, upload_id))[0] == 200
                             and found[2]["received"] > 0 and found, 10, "progress")
        os.kill(int(pid), signal.SIGKILL)
        with pytest.raises(OSError):
            thread.join_result()
        died = wait_for(lambda: (a := poll(server.port, upload_id))["state"] == "error" and a,
                        1 + 2 * SLACK, "error")
        wait_for(lambda: poll(server.port, upload_id)["state"] == "starting",
                 2 + 2 * SLACK, "expiry")
    assert 0 < died["received"] < SIZE and died["finished"] is not None
    assert session_server().keys(prefix) == []


# -- Redis fails ----------------------------------------------------------------

@pytest.fixture(scope="module")
def fault_redis():
    """A redis-server of this module's own, to stop, hang and restart."""
    with own_server() as server:
        yield server


@pytest.fixture(scope="module")
def fault_app(fault_redis):
    with serve("gunicorn", APP, env=app_env(fault_redis.url), workers=2,
               threads=8) as server:
        yield server


@pytest.fixture
def faults(fault_redis, fault_app):
    """The fault server running again after each test, and the app's log
    lines of this test."""
    seen = len(fault_app.output())
    yield lambda: fault_app.output()[seen:]
    if fault_redis.process is None:
        fault_redis.start()
    else:
        fault_redis.resume()


def timed_upload(server, upload_id, size=SIZE, delay=DELAY, during=None):
    """An upload of ``size`` bytes, ``during(thread)`` called once it is
    under way: (seconds it took, the app's answer)."""
    start = time.monotonic()
    thread = upload(server, upload_id, size=size, delay=delay)
    if during is not None:
        wait_for(lambda: thread.sent >= size // 4, 10, "a quarter sent")
        during(thread)
    answer = thread.join_result().json()
    return time.monotonic() - start, answer


def nominal(size=SIZE, delay=DELAY):
    """How long an upload takes when nothing goes wrong."""
    return (size // CHUNK) * delay


def assert_tracked_again(server):
    upload_id = uuid.uuid4().hex
    elapsed, answer = timed_upload(server, upload_id, size=256 * 1024, delay=0)
    assert answer["sha256"] == digest(256 * 1024)
    assert_done(ended(server.port, upload_id), 256 * 1024)


def assert_outage_logged_once(lines, workers=2):
    """At most once per worker process (each has its own view of the store's
    health), and a traceback (with its chained causes) only there."""
    outages = lines.count("the store failed")
    assert outages <= workers, lines
    chained = ("During handling of the above exception", "The above exception was")
    previous = [line for line in lines.splitlines() if line.strip()]
    tracebacks = sum(1 for before, line in zip([""] + previous, previous)
                     if line.startswith("Traceback") and not before.startswith(chained))
    assert tracebacks <= outages, lines


def test_redis_down_before_an_upload(fault_redis, fault_app, faults):
    fault_redis.stop()
    elapsed, answer = timed_upload(fault_app, "down", size=256 * 1024, delay=0)
    assert answer == {"read": 256 * 1024, "sha256": digest(256 * 1024)}
    assert elapsed < SOCKET_TIMEOUT + SLACK
    start = time.monotonic()
    poll(fault_app.port, "down", expect=503)
    assert time.monotonic() - start < SOCKET_TIMEOUT + SLACK
    fault_redis.start()
    assert_tracked_again(fault_app)
    assert "the store failed" in faults()
    assert_outage_logged_once(faults())


def test_redis_stopped_mid_upload(fault_redis, fault_app, faults):
    elapsed, answer = timed_upload(fault_app, "stopped", during=lambda _: fault_redis.stop())
    assert answer == {"read": SIZE, "sha256": digest(SIZE)}
    assert elapsed < nominal() + SOCKET_TIMEOUT + SLACK
    fault_redis.start()
    assert_tracked_again(fault_app)


def test_redis_hung_mid_upload(fault_redis, fault_app, faults):
    polled = []

    def hang(thread):
        fault_redis.pause()
        start = time.monotonic()
        poll(fault_app.port, "hung", expect=503)
        polled.append(time.monotonic() - start)

    elapsed, answer = timed_upload(fault_app, "hung", during=hang)
    assert answer == {"read": SIZE, "sha256": digest(SIZE)}
    assert elapsed < nominal() + SOCKET_TIMEOUT + SLACK
    assert polled[0] < SOCKET_TIMEOUT + SLACK
    fault_redis.resume()
    assert_tracked_again(fault_app)
    assert_outage_logged_once(faults())


def test_redis_restarted_mid_upload(fault_redis, fault_app, faults):
    def restart(thread):
        fault_redis.stop()
        fault_redis.start()

    elapsed, answer = timed_upload(fault_app, "restarted", during=restart)
    assert answer == {"read": SIZE, "sha256": digest(SIZE)}
    assert elapsed < nominal() + SOCKET_TIMEOUT + SLACK
    assert_tracked_again(fault_app)


# -- cost -------------------------------------------------------------------------

SCRIPT_COMMANDS = {"hset", "hdel", "hmget", "hgetall", "exists", "del", "time", "pttl",
                   "pexpireat", "zadd", "zrem", "zrange", "zremrangebyscore"}


def finished(redis_server, prefix, upload_id):
    """Whether the record of ``upload_id`` has ended, read from Redis itself
    (the app may end a record just after the client has its answer)."""
    fields = redis_server.client().hkeys(f"{prefix}u:{{{upload_id}}}")
    return any(field.endswith(":finished") for field in fields)


def test_round_trips_of_a_64_mib_upload(capsys):
    size, interval, prefix = 64 * 1024 * 1024, 0.25, fresh_prefix()
    with own_server() as redis_server, serve(
            "gunicorn", APP, env=app_env(redis_server.url, prefix, **{
                "upload_progress.update_interval": str(interval)}),
            workers=1, threads=4) as server:
        slow_upload(server.port, "/upload?X-Progress-ID=warm-up", size=10, chunk=10,
                    delay=0, headers=ALICE)
        wait_for(lambda: finished(redis_server, prefix, "warm-up"), 5, "end")
        before = redis_server.client().info("commandstats")
        start = time.monotonic()
        response = slow_upload(server.port, "/upload?X-Progress-ID=big", size=size,
                               chunk=1024 * 1024, delay=0.02, headers=ALICE)
        duration = time.monotonic() - start
        wait_for(lambda: finished(redis_server, prefix, "big"), 5, "end")
        after = redis_server.client().info("commandstats")
    assert response.json()["sha256"] == digest(size)
    calls = {name.removeprefix("cmdstat_"): stats["calls"] - before.get(name, {}).get("calls", 0)
             for name, stats in after.items()}
    round_trips = calls.pop("evalsha")
    for ours in ("info", "hkeys"):
        calls.pop(ours, None)
    assert {name for name, count in calls.items() if count} <= SCRIPT_COMMANDS
    with capsys.disabled():
        print(f"\n64 MiB upload in {duration:.2f} s, update_interval {interval} s: "
              f"{round_trips} Redis round-trips (duration / interval = "
              f"{duration / interval:.1f})")
    # start, owner, end, the read that ends the body, and progress at most
    # once per interval, the first an interval after the start: the contract's
    # bound, duration / update_interval + 3, and the body's last read (without
    # it a cancel of a body read whole would answer 200, not 404).
    assert round_trips <= duration / interval + 4
