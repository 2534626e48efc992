"""What is the Redis store's own, beyond the shared contract suite.

Its settings, a client of the app's own, one round-trip per call, costs that
do not grow with other owners' uploads, the server's clock, key expiry, and
how it fails and recovers when Redis is down, hung or restarted. Against
real redis-servers the tests start themselves (``tests/redis_server.py``):
the session's, and one of this module's own for the faults.
"""
from __future__ import annotations

import logging
import statistics
import time

import pytest
import webtest
from pyramid.config import Configurator

from tests.apps import store_of
from tests.e2e.client import wait_for
from tests.plain_app import HeaderSecurityPolicy, make_app, read_stream
from tests.redis_server import fresh_prefix, own_server, require_redis, session_server
from tests.stores import Progress

require_redis()

import redis  # noqa: E402

from pyramid_upload_progress.stores.redis import (  # noqa: E402
    RedisUploadProgressStore,
    redis_client,
)

SOCKET_TIMEOUT = 0.3
#: On top of a wait that should take SOCKET_TIMEOUT, for a loaded machine;
#: a second attempt would take another SOCKET_TIMEOUT.
SLACK = 0.25
OTHER_OWNERS = 10_000


@pytest.fixture(scope="module")
def server():
    return session_server()


@pytest.fixture(scope="module")
def fault_server():
    """A redis-server of this module's own, to stop, hang and restart."""
    with own_server() as server:
        yield server


@pytest.fixture
def fault_store(fault_server):
    if fault_server.process is None:
        fault_server.start()
    return RedisUploadProgressStore(redis_client(fault_server.url, SOCKET_TIMEOUT),
                                    prefix=fresh_prefix())


def settings_for(url, **more):
    return {"upload_progress.store": "redis",
            "upload_progress.redis.url": url,
            "upload_progress.redis.prefix": fresh_prefix(),
            "upload_progress.redis.socket_timeout": str(SOCKET_TIMEOUT),
            "upload_progress.threshold": "0",
            **more}


def finished_upload(store, upload_id=None, owner="alice", size=100):
    key = store.start(upload_id, "/upload", size, Progress())
    store.set_owner(key, owner)
    store.update(key, size // 2, None)
    store.finish(key, size, None, 200, False, False)
    return key


# -- settings and clients -----------------------------------------------------

def test_the_redis_setting_makes_a_redis_store_from_the_parsed_settings(server):
    settings = settings_for(server.url, **{"upload_progress.timeout": "7",
                                       "upload_progress.stall_timeout": "9"})
    store = store_of(make_app(settings))
    assert isinstance(store, RedisUploadProgressStore)
    assert (store.prefix, store.timeout, store.stall_timeout) == (
        settings["upload_progress.redis.prefix"], 7.0, 9.0)
    connection = store.client.connection_pool.connection_kwargs
    assert connection["socket_timeout"] == connection["socket_connect_timeout"] == SOCKET_TIMEOUT
    assert connection["retry"].get_retries() == 0
    assert (connection["host"], connection["port"]) == ("127.0.0.1", server.port)


def test_the_app_starts_while_redis_is_down():
    from tests.e2e.servers import free_port

    app = webtest.TestApp(make_app(settings_for(f"redis://127.0.0.1:{free_port()}/0")))
    assert app.post("/upload", b"x" * 100).json["read"] == 100


@pytest.mark.parametrize("decode_responses", [False, True])
def test_a_store_on_the_apps_own_client(server, decode_responses):
    client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=1,
                         decode_responses=decode_responses)
    with Configurator(settings={"upload_progress.threshold": "0"}) as config:
        config.set_security_policy(HeaderSecurityPolicy())
        config.include("pyramid_upload_progress")
        config.set_upload_progress_store(RedisUploadProgressStore(client, prefix=fresh_prefix()))
        config.add_route("upload", "/upload")
        config.add_view(read_stream, route_name="upload", request_method="POST")
        app = webtest.TestApp(config.make_wsgi_app())
    alice = {"X-User": "alice"}
    app.post("/upload?X-Progress-ID=mine", b"x" * 100, headers=alice)
    answer = app.get("/upload-progress?X-Progress-ID=mine", headers=alice).json
    assert (answer["state"], answer["received"], answer["size"]) == ("done", 100, 100)
    assert [u["id"] for u in app.get("/upload-progress", headers=alice).json["uploads"]] == ["mine"]


# -- cost ---------------------------------------------------------------------

class Counting:
    """Counts the requests a redis-py connection pool sends (round-trips)."""

    def __init__(self, monkeypatch, client):
        self.count = 0
        connection_class = client.connection_pool.connection_class
        send = connection_class.send_packed_command

        def counted(connection, *args, **kwargs):
            self.count += 1
            return send(connection, *args, **kwargs)

        monkeypatch.setattr(connection_class, "send_packed_command", counted)


def test_every_store_call_is_one_round_trip_but_a_listing_two(server, monkeypatch):
    """A listing reads the owner's index, then the uploads it names: on a
    cluster they may be anywhere, so not in the index's script."""
    store = server.store()
    finished_upload(store, "warm-up")  # loads the script once
    counting = Counting(monkeypatch, store.client)
    calls = [
        (1, lambda: store.start("abc", "/upload", 1000, Progress())),
        (1, lambda: store.set_owner(key, "alice")),
        (1, lambda: store.update(key, 10, [{"field": "f", "filename": "a", "received": 1,
                                            "done": False}])),
        (1, lambda: store.stage(key, "scan", None, None)),
        (1, lambda: store.get("abc", "alice")),
        (2, lambda: store.list("alice")),
        (1, lambda: store.cancel("abc", "alice")),
        (1, lambda: store.finish(key, 1000, None, 409, True, True)),
        (1, lambda: store.discard(key)),
    ]
    key = None
    for round_trips, call in calls:
        before = counting.count
        result = call()
        key = key or result
        assert counting.count - before == round_trips


def fill_with_other_owners(server, prefix, count):
    """``count`` finished uploads of as many other owners, in one pipeline
    of the store's own script calls (the store's layout, without a
    round-trip each)."""
    from pyramid_upload_progress.stores.redis import SCRIPT_SHA

    pipe = server.client().pipeline(transaction=False)
    for n in range(count):
        key, upload = f"id-{n}:{n:018x}", f"{prefix}u:{{id-{n}}}"
        index = f"{prefix}o:owner-{n}"
        pipe.evalsha(SCRIPT_SHA, 1, upload, "start", key, f"id-{n}", "/upload", "100",
                     "60000")
        pipe.evalsha(SCRIPT_SHA, 2, upload, index, "own", key, "66000", f"owner-{n}")
        pipe.evalsha(SCRIPT_SHA, 2, upload, index, "finish", key, "100", "", "200", "0",
                     "0", "300000")
    pipe.execute()


def commands_run(server):
    """Redis's count of every command run so far, those of scripts included."""
    stats = server.client().info("commandstats")
    return {name: value["calls"] for name, value in stats.items()}


def work_of(server, call):
    before = commands_run(server)
    call()
    after = commands_run(server)
    return {name: after[name] - before.get(name, 0) for name in after
            if after[name] != before.get(name, 0)}


def test_lookup_and_listing_cost_nothing_of_other_owners_uploads(server):
    prefix = fresh_prefix()
    store = server.store(prefix=prefix)
    for n in range(3):
        finished_upload(store, f"mine-{n}")

    def reads():
        store.get("mine-1", "alice")
        store.list("alice")

    alone = work_of(server, reads)
    fill_with_other_owners(server, prefix, OTHER_OWNERS)
    assert len(server.keys(prefix)) > 2 * OTHER_OWNERS
    assert work_of(server, reads) == alone


def report_latency(app, path, runs=200):
    """The median time of the report view's answer, in milliseconds."""
    alice = {"X-User": "alice"}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        app.get(path, headers=alice)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def test_report_latency_with_10000_other_owners_is_that_of_an_empty_redis(server, capsys):
    settings = settings_for(server.url)
    app = webtest.TestApp(make_app(settings))
    for n in range(3):
        app.post(f"/upload?X-Progress-ID=mine-{n}", b"x" * 100, headers={"X-User": "alice"})
    paths = ("/upload-progress?X-Progress-ID=mine-1", "/upload-progress")
    empty = [report_latency(app, path) for path in paths]
    fill_with_other_owners(server, settings["upload_progress.redis.prefix"], OTHER_OWNERS)
    full = [report_latency(app, path) for path in paths]
    with capsys.disabled():
        print(f"\nreport view median latency, ms (by id, listing): empty Redis "
              f"{empty[0]:.2f}, {empty[1]:.2f}; with {OTHER_OWNERS} other owners' "
              f"uploads {full[0]:.2f}, {full[1]:.2f}")
    for alone, crowded in zip(empty, full):
        assert crowded < 2 * alone + 1.0


# -- one clock ----------------------------------------------------------------

def test_times_come_from_the_redis_servers_clock(server, monkeypatch):
    store = server.store()
    monkeypatch.setattr(time, "time", lambda: 1_000_000_000.0)  # this host is off
    finished_upload(store, "abc")
    record = store.get("abc", "alice")
    assert abs(record.started - server.now()) < 5
    assert abs(record.finished - server.now()) < 5


# -- expiry -------------------------------------------------------------------

def ttls(server, prefix):
    """Every key under ``prefix`` and its PTTL (-1: none)."""
    client = server.client()
    return {key: client.pttl(key) for key in server.keys(prefix)}


def test_after_a_flood_of_uploads_every_key_expires(server):
    prefix = fresh_prefix()
    store = server.store(prefix=prefix)
    for n in range(1000):
        key = store.start(f"id-{n % 50}", "/upload", 100, Progress())
        if n % 7 == 0:
            continue  # pending forever: its worker died
        store.set_owner(key, None if n % 11 == 0 else f"owner-{n % 13}")
        store.update(key, 50, None)
        store.stage(key, "scan", 1, 2)
        if n % 17 == 0:
            store.cancel(f"id-{n % 50}", f"owner-{n % 13}")
            continue
        if n % 19 == 0:
            store.discard(key)
            continue
        store.finish(key, 100, None, 200, n % 5 == 0, False)
        store.get(f"id-{n % 50}", f"owner-{n % 13}")
        store.list(f"owner-{n % 13}")
    keys = ttls(server, prefix)
    kinds = {key[len(prefix):].split(":")[0] for key in keys}
    assert kinds == {"u", "o"}
    assert [key for key, ttl in keys.items() if ttl < 0] == []


def test_an_index_lives_as_long_as_its_longest_lived_record(server):
    prefix = fresh_prefix()
    store = server.store(prefix=prefix, timeout=10, stall_timeout=100)
    finished_upload(store, "abc")  # kept 10 s
    key = store.start("abc", "/upload", 100, Progress())  # kept 110 s
    store.set_owner(key, "alice")
    keys = ttls(server, prefix)
    record = keys[f"{prefix}u:{{abc}}"]  # the hash of both uploads with id abc
    assert record > 100_000
    assert keys[f"{prefix}o:alice"] >= record - 50


def test_nothing_is_left_of_finished_uploads_after_timeout(server):
    prefix = fresh_prefix()
    store = server.store(prefix=prefix, timeout=0.3, stall_timeout=5)
    for n in range(5):
        finished_upload(store, f"id-{n}", owner=f"owner-{n % 2}")
    assert server.keys(prefix)
    wait_for(lambda: server.keys(prefix) == [], 5, "every key expired")


def test_a_dead_workers_upload_turns_error_then_leaves_nothing(server):
    prefix = fresh_prefix()
    store = server.store(prefix=prefix, timeout=0.4, stall_timeout=0.4)
    key = store.start("abc", "/upload", 1000, Progress())
    store.set_owner(key, "alice")
    store.update(key, 300, None)  # then the worker is killed: no finish
    assert store.get("abc", "alice").state == "uploading"
    wait_for(lambda: store.get("abc", "alice").state == "error", 5, "the record in error")
    assert store.get("abc", "alice").received == 300
    wait_for(lambda: store.get("abc", "alice") is None, 5, "the record expired")
    wait_for(lambda: server.keys(prefix) == [], 5, "every key expired")


# -- failures -----------------------------------------------------------------

def timed(call):
    start = time.monotonic()
    try:
        call()
    except redis.RedisError as exc:
        return time.monotonic() - start, exc
    return time.monotonic() - start, None


def test_a_stopped_redis_fails_a_call_at_once(fault_server, fault_store):
    fault_server.stop()
    elapsed, error = timed(lambda: fault_store.get("abc", "alice"))
    assert isinstance(error, redis.ConnectionError)
    assert elapsed < SOCKET_TIMEOUT + SLACK


@pytest.mark.parametrize("connected", [False, True], ids=["new-connection", "pooled"])
def test_a_hung_redis_fails_a_call_after_socket_timeout_once(
        fault_server, fault_store, connected):
    if connected:
        fault_store.get("abc", "alice")
    fault_server.pause()
    try:
        elapsed, error = timed(lambda: fault_store.start("abc", "/upload", 10, None))
    finally:
        fault_server.resume()
    assert isinstance(error, redis.TimeoutError)
    assert SOCKET_TIMEOUT * 0.9 < elapsed < SOCKET_TIMEOUT + SLACK  # no retries


def test_the_store_answers_again_once_redis_is_back(fault_server, fault_store):
    finished_upload(fault_store, "before")
    fault_server.pause()
    assert timed(lambda: fault_store.get("before", "alice"))[1] is not None
    fault_server.resume()
    assert fault_store.get("before", "alice").state == "done"
    for _ in range(2):  # restarts: the pooled connections are stale, the script gone
        fault_server.stop()
        assert timed(lambda: fault_store.list("alice"))[1] is not None
        fault_server.start()
        finished_upload(fault_store, "after")
        assert fault_store.get("after", "alice").state == "done"


def test_a_hung_redis_costs_an_upload_one_socket_timeout_and_a_report_503(
        fault_server, caplog):
    settings = settings_for(fault_server.url)
    app = webtest.TestApp(make_app(settings))
    alice = {"X-User": "alice"}
    app.post("/upload?X-Progress-ID=warm", b"x" * 100, headers=alice)
    fault_server.pause()
    try:
        with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
            for n in range(3):
                start = time.monotonic()
                answer = app.post(f"/upload?X-Progress-ID=u{n}", b"x" * 5000, headers=alice)
                assert answer.json["read"] == 5000
                assert time.monotonic() - start < SOCKET_TIMEOUT + SLACK
                start = time.monotonic()
                report = app.get("/upload-progress?X-Progress-ID=u0", headers=alice,
                                 status=503)
                assert time.monotonic() - start < SOCKET_TIMEOUT + SLACK
                assert report.content_type == "application/json"
    finally:
        fault_server.resume()
    outages = [r for r in caplog.records if "store failed" in r.getMessage()]
    assert len(outages) == 1
    app.post("/upload?X-Progress-ID=back", b"x" * 100, headers=alice)
    assert app.get("/upload-progress?X-Progress-ID=back", headers=alice).json["state"] == "done"


# -- the end of the body, and reads that never write ---------------------------

def test_the_read_that_ends_the_body_is_recorded_and_refuses_a_cancel(server):
    store = server.store()
    key = store.start("abc", "/upload", 100, Progress())
    store.set_owner(key, "alice")
    store.update(key, 100, None)  # all bytes, but the body's end not yet read
    assert store.get("abc", "alice").body_end is None
    before = server.now()
    store.update(key, 100, None, ended=True)
    body_end = store.get("abc", "alice").body_end
    assert before - 0.01 <= body_end <= server.now() + 0.01
    store.update(key, 100, None, ended=True)  # once set, kept
    assert store.get("abc", "alice").body_end == body_end
    assert store.cancel("abc", "alice") is None


def test_a_body_read_whole_is_decided_by_its_end_not_by_its_size(server):
    store = server.store()
    key = store.start("abc", "/upload", 100, Progress())
    store.set_owner(key, "alice")
    store.update(key, 100, None)
    assert store.cancel("abc", "alice").cancelled
    assert store.update(key, 100, None, ended=True) is True


READS = {"evalsha", "evalsha_ro", "time", "hgetall", "hmget", "zrangebyscore"}


def test_polls_and_listings_never_write_even_over_expired_entries(server):
    prefix = fresh_prefix()
    store = server.store(prefix=prefix, timeout=0.2, stall_timeout=5)
    for n in range(3):
        finished_upload(store, f"mine-{n}")
        finished_upload(store, "again")
    wait_for(lambda: store.get("again", "alice") is None, 5, "the last one expired too")

    def reads():
        assert store.get("mine-1", "alice") is None
        assert store.get("again", "alice") is None
        assert store.list("alice") == []

    commands = {name.removeprefix("cmdstat_") for name in work_of(server, reads)}
    assert commands - {"info"} <= READS
    assert server.keys(prefix) == []  # ... and gone by expiry


def test_writes_drop_expired_uploads_from_a_hash_and_an_index(server):
    prefix = fresh_prefix()
    store = server.store(prefix=prefix, timeout=0.2, stall_timeout=5)
    finished_upload(store, "abc")
    finished_upload(store, "def")
    longer = server.store(prefix=prefix, timeout=60, stall_timeout=5)
    key = longer.start("abc", "/upload", 100, Progress())  # keeps both keys alive
    longer.set_owner(key, "alice")
    wait_for(lambda: store.get("def", "alice") is None, 5, "the short ones expired")
    longer.start("abc", "/upload", 100, Progress())
    longer.set_owner(longer.start("def", "/upload", 100, Progress()), "alice")
    client = server.client()
    fields = client.hkeys(f"{prefix}u:{{abc}}")
    assert len({field.split(":")[0] for field in fields}) == 2  # the expired one dropped
    assert client.zcard(f"{prefix}o:alice") == 2


def test_reads_can_be_answered_by_a_replica(server):
    from tests.e2e.servers import HOST
    from tests.redis_server import RedisServer

    replica = RedisServer(require_redis(), "--replicaof", HOST, str(server.port))
    try:
        replica.start()
        wait_for(lambda: replica.client().info("replication")["master_link_status"] == "up",
                 10, "the replica linked")
        prefix = fresh_prefix()
        store = server.store(prefix=prefix)
        finished_upload(store, "abc")
        reader = RedisUploadProgressStore(server.store().client, prefix=prefix,
                                          read_client=redis_client(replica.url, 2.0),
                                          replica_reads=True)
        wait_for(lambda: reader.list("alice"), 10, "the replica in sync")  # the replica catches up
        assert reader.get("abc", "alice").state == "done"
        assert [record.id for record in reader.list("alice")] == ["abc"]
        calls = replica.client().info("commandstats")
        assert calls["cmdstat_evalsha_ro"]["calls"] >= 2
    finally:
        replica.close()


def test_an_upload_longer_than_its_lifetime_stays_listed(server):
    """Each progress write renews an upload's lifetime (stall_timeout +
    timeout); its entry in the owner's index is renewed with it."""
    prefix = fresh_prefix()
    store = server.store(prefix=prefix, timeout=0.2, stall_timeout=0.3)
    key = store.start("long", "/upload", 10**6, Progress())
    store.set_owner(key, "alice")
    started = time.monotonic()
    received = 0
    while time.monotonic() - started < 2.0:  # four lifetimes
        received += 1
        store.update(key, received, None)
        assert [record.received for record in store.list("alice")] == [received]
        time.sleep(0.05)
    assert server.client().pttl(f"{prefix}o:alice") > 0
