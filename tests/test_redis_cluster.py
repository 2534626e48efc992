"""The Redis store past one Redis: a Redis Cluster, Sentinel, replicas.

Against real servers the tests start themselves on loopback
(``tests/redis_cluster.py``): a cluster of three primaries with a replica
each, and a primary with one replica watched by three sentinels. The
store's contract suite runs against the cluster too
(``tests/stores.py``). Here: what a listing costs when an owner's uploads
live on every primary, reads answered by replicas, two gunicorn hosts on
one cluster, and a primary killed under a live upload, on a cluster and
behind Sentinel: the upload is served whole, polls answer 503 or the last
progress for a few seconds, then tracking resumes by itself.
"""
from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.client import ALICE, ended, get_json, wait_for
from tests.e2e.redis_app import (
    APP,
    app_env,
    assert_done,
    assert_seen_arriving,
    digest,
    polls_while_sending,
    upload,
)
from tests.e2e.servers import serve
from tests.redis_cluster import NODE_TIMEOUT, cluster, sentinel_setup, session_cluster
from tests.redis_server import fresh_prefix, require_redis
from tests.stores import Progress

require_redis()

import redis  # noqa: E402

#: A failover takes NODE_TIMEOUT to notice and about as long to elect;
#: this is what the tests allow, for a loaded 2-core machine.
FAILOVER_BOUND = 10 * NODE_TIMEOUT / 1000


def finished_upload(store, upload_id, owner="alice"):
    key = store.start(upload_id, "/upload", 100, Progress())
    store.set_owner(key, owner)
    store.update(key, 100, None, ended=True)
    store.finish(key, 100, None, 200, False, False)
    return key


def ids_on_every_primary(running, prefix, per_primary=2):
    """Upload ids whose hashes live on each of the three primaries."""
    found: dict[int, list[str]] = {}
    n = 0
    while len(found) < 3 or min(len(ids) for ids in found.values()) < per_primary:
        upload_id = f"id-{n}"
        port = running.primary_of(f"{prefix}u:{{{upload_id}}}").port
        if len(found.setdefault(port, [])) < per_primary:
            found[port].append(upload_id)
        n += 1
    return [upload_id for ids in found.values() for upload_id in ids]


class Sends:
    """Counts the requests redis-py connections send (one per round per node)."""

    def __init__(self, monkeypatch):
        self.count = 0
        send = redis.connection.Connection.send_packed_command

        def counted(connection, *args, **kwargs):
            self.count += 1
            return send(connection, *args, **kwargs)

        monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counted)


def test_a_listing_of_uploads_on_every_primary_is_two_rounds(monkeypatch):
    running = session_cluster()
    prefix = fresh_prefix()
    store = running.store(prefix=prefix)
    upload_ids = ids_on_every_primary(running, prefix)
    for upload_id in upload_ids:
        finished_upload(store, upload_id)
    finished_upload(store, "someone-elses", owner="bob")
    store.list("alice")  # the client knows every node
    sends = Sends(monkeypatch)
    listed = store.list("alice")
    assert sorted(record.id for record in listed) == sorted(upload_ids)
    assert [r.started for r in listed] == sorted((r.started for r in listed), reverse=True)
    # the owner's index, then one pipeline to each of the three primaries
    assert sends.count == 1 + 3


def test_writes_of_an_upload_with_an_owner_touch_two_nodes_in_one_round(monkeypatch):
    running = session_cluster()
    store = running.store()
    finished_upload(store, "abc")  # connects to the nodes of "abc" and alice
    sends = Sends(monkeypatch)
    key = store.start("abc", "/upload", 100, Progress())
    assert sends.count == 1
    store.set_owner(key, "alice")  # the upload's hash, and alice's index
    assert sends.count <= 1 + 2
    store.update(key, 100, None, ended=True)
    assert sends.count <= 1 + 2 + 1
    store.finish(key, 100, None, 200, False, False)  # the same two
    assert sends.count <= 1 + 2 + 1 + 2
    assert store.get("abc", "alice").state == "done"


def replica_reads(running):
    """Read-only script runs and field reads the replicas served so far."""
    total = 0
    for node in running.nodes:
        if node.process is not None and node not in running.primaries():
            stats = node.client().info("commandstats")
            total += sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0)
                         for name in ("evalsha_ro", "eval_ro", "hmget"))
    return total


def test_polls_and_listings_can_be_answered_by_replicas():
    running = session_cluster()
    prefix = fresh_prefix()
    writer = running.store(prefix=prefix)
    reader = running.store(prefix=prefix, read_from_replicas=True)
    for upload_id in ids_on_every_primary(running, prefix, per_primary=1):
        finished_upload(writer, upload_id)
    before = replica_reads(running)
    # replicas are a moment behind their primaries: wait for them, bounded
    wait_for(lambda: len(reader.list("alice")) == 3, 5, "replicas in sync")
    for _ in range(10):
        assert len(reader.list("alice")) == 3
        assert reader.get("id-0", "alice") is None or reader.get("id-0", "alice").id == "id-0"
    # a replica refuses writes: what it answered did not write
    assert replica_reads(running) > before


# -- two hosts, and failover, end to end --------------------------------------

def cluster_env(running, prefix=None, **settings):
    return app_env(running.url, prefix, **{"upload_progress.redis.cluster": "true",
                                           **settings})


def test_two_hosts_on_a_cluster_see_each_others_uploads():
    running = session_cluster()
    upload_id = uuid.uuid4().hex
    env = cluster_env(running)
    with serve("gunicorn", APP, env=env, workers=1, threads=8) as host_a, \
            serve("gunicorn", APP, env=env, workers=1, threads=8) as host_b:
        thread = upload(host_a, upload_id)
        answers, _ = polls_while_sending(host_b, thread, upload_id)
        assert thread.join_result().json()["sha256"] == digest(1024 * 1024)
        ended(host_a.port, upload_id)
        finals = [get_json(host.port, f"/upload-progress?X-Progress-ID={upload_id}",
                           ALICE)[2] for host in (host_a, host_b)]
        listed = get_json(host_b.port, "/upload-progress", ALICE)[2]["uploads"]
    assert_seen_arriving(answers)
    for answer in finals:
        assert_done(answer)
    assert upload_id in [u["id"] for u in listed]


SLOW_SIZE = 1024 * 1024
SLOW_CHUNK = 16 * 1024
SLOW_DELAY = 0.1  # 64 chunks: about 6.4 s, room for a failover


def watch_failover(poller, thread, upload_id, kill, capsys, what):
    """Kill a primary once the upload is under way and poll it from
    ``poller`` until it answers again, checking that every answer meanwhile
    is a 503 or the upload's progress so far; returns when it killed
    (``time.monotonic()``)."""
    received = wait_for(lambda: (a := status_and_answer(poller, upload_id))[0] == 200
                        and a[1]["received"] > 0 and a[1]["received"], 10, "progress")
    kill()
    killed = time.monotonic()
    back = None
    statuses = []
    while back is None:
        assert time.monotonic() - killed < FAILOVER_BOUND, statuses
        status, answer = status_and_answer(poller, upload_id)
        statuses.append(status)
        assert status in (200, 503), answer
        if status == 200:
            assert answer["state"] == "uploading", answer
            assert 0 <= answer["received"] <= thread.sent
            if 503 in statuses or time.monotonic() - killed > 2 * NODE_TIMEOUT / 1000:
                back = time.monotonic() - killed
        time.sleep(0.05)
    with capsys.disabled():
        print(f"\n{what}: polls of an upload answer again {back:.2f} s after its "
              f"primary was killed ({statuses.count(503)} of {len(statuses)} polls "
              f"answered 503; progress before the kill {received})")
    return killed


def status_and_answer(server, upload_id):
    """One poll on a fresh connection, whatever it answers: (status, answer)."""
    status, _, answer = get_json(server.port, f"/upload-progress?X-Progress-ID={upload_id}",
                                 ALICE)
    return status, answer


def assert_tracking_resumes(host_a, host_b, killed, capsys, what,
                            seconds=FAILOVER_BOUND):
    """Small uploads on A, one after another from now, until one is seen
    done from B; the first such must start within ``seconds`` of the kill."""
    size = 64 * 1024
    for _ in range(200):
        started = time.monotonic()
        upload_id = uuid.uuid4().hex
        thread = upload(host_a, upload_id, size=size, chunk=size, delay=0)
        assert thread.join_result().json()["sha256"] == digest(size)
        answer = wait_for(lambda: (a := status_and_answer(host_b, upload_id))[0] in (200, 503)
                          and a, 5, "an answer")
        if answer[0] == 200 and answer[1]["state"] == "done":
            break
        assert started - killed < seconds, answer
        time.sleep(0.1)
    with capsys.disabled():
        print(f"{what}: the first upload tracked whole started "
              f"{started - killed:.2f} s after the kill")


def test_a_cluster_primary_killed_mid_upload(capsys):
    upload_id = uuid.uuid4().hex
    prefix = fresh_prefix()
    with cluster() as running:
        env = cluster_env(running, prefix)
        with serve("gunicorn", APP, env=env, workers=1, threads=8) as host_a, \
                serve("gunicorn", APP, env=env, workers=1, threads=8) as host_b:
            thread = upload(host_a, upload_id, size=SLOW_SIZE, chunk=SLOW_CHUNK,
                            delay=SLOW_DELAY)
            primary = running.primary_of(f"{prefix}u:{{{upload_id}}}")
            killed = watch_failover(host_b, thread, upload_id,
                                    lambda: primary.stop(kill=True), capsys, "cluster")
            assert_tracking_resumes(host_a, host_b, killed, capsys, "cluster")
            assert thread.join_result().json() == {"read": SLOW_SIZE,
                                                   "sha256": digest(SLOW_SIZE)}
            assert primary not in running.primaries()


@pytest.mark.parametrize("replicas", ["false", "true"], ids=["primary", "replica-reads"])
def test_a_sentinel_primary_killed_mid_upload(capsys, replicas):
    upload_id = uuid.uuid4().hex
    with sentinel_setup() as setup:
        env = app_env("redis://127.0.0.1:6379/0", **{
            "upload_progress.redis.sentinels": setup.addresses,
            "upload_progress.redis.read_from_replicas": replicas})
        old = setup.primary()
        with serve("gunicorn", APP, env=env, workers=1, threads=8) as host_a, \
                serve("gunicorn", APP, env=env, workers=1, threads=8) as host_b:
            thread = upload(host_a, upload_id, size=SLOW_SIZE, chunk=SLOW_CHUNK,
                            delay=SLOW_DELAY)
            what = f"sentinel, read_from_replicas {replicas}"
            killed = watch_failover(host_b, thread, upload_id,
                                    lambda: old.stop(kill=True), capsys, what)
            assert_tracking_resumes(host_a, host_b, killed, capsys, what)
            assert thread.join_result().json() == {"read": SLOW_SIZE,
                                                   "sha256": digest(SLOW_SIZE)}
            assert setup.primary() is not old


@pytest.mark.parametrize("settings", [
    {"upload_progress.redis.cluster": "true", "upload_progress.redis.sentinels": "h:1"},
    {"upload_progress.redis.read_from_replicas": "true"},
    {"upload_progress.redis.sentinels": "nohost"},
])
def test_settings_that_cannot_work_stop_the_app(settings):
    from pyramid.exceptions import ConfigurationError

    from tests.plain_app import make_app

    with pytest.raises(ConfigurationError):
        make_app({"upload_progress.store": "redis", **settings})


def test_the_app_starts_while_the_cluster_is_down():
    import webtest

    from tests.e2e.servers import free_port
    from tests.plain_app import make_app

    app = webtest.TestApp(make_app({
        "upload_progress.store": "redis", "upload_progress.threshold": "0",
        "upload_progress.redis.url": f"redis://127.0.0.1:{free_port()}/0",
        "upload_progress.redis.cluster": "true",
        "upload_progress.redis.socket_timeout": "0.3"}))
    assert app.post("/upload?X-Progress-ID=abc", b"x" * 100).json["read"] == 100
    app.get("/upload-progress?X-Progress-ID=abc", status=503)


def test_the_sentinel_settings_make_clients_of_the_named_primary_and_a_replica():
    from redis.sentinel import SentinelManagedSSLConnection

    from pyramid_upload_progress import IUploadProgressStore
    from tests.plain_app import make_app

    app = make_app({
        "upload_progress.store": "redis",
        "upload_progress.redis.url": "rediss://someone:secret@ignored:1/3",
        "upload_progress.redis.sentinels": "127.0.0.1:1 [::1]:2",
        "upload_progress.redis.sentinel_master": "uploads",
        "upload_progress.redis.read_from_replicas": "true",
        "upload_progress.redis.socket_timeout": "0.3"})  # sentinels down: starts all the same
    store = app.registry.getUtility(IUploadProgressStore)
    primary, replica = store.client.connection_pool, store.read_client.connection_pool
    assert (primary.service_name, primary.is_master) == ("uploads", True)
    assert (replica.service_name, replica.is_master) == ("uploads", False)
    sentinels = primary.sentinel_manager.sentinels
    assert [(s.connection_pool.connection_kwargs["host"],
             s.connection_pool.connection_kwargs["port"]) for s in sentinels] == [
        ("127.0.0.1", 1), ("::1", 2)]
    assert sentinels[0].connection_pool.connection_kwargs["socket_timeout"] == 0.3
    options = primary.connection_kwargs
    assert (options["db"], options["username"], options["password"]) == (3, "someone", "secret")
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.3
    assert primary.connection_class is SentinelManagedSSLConnection
    assert store.replica_reads


def test_the_capacity_benchmark_row_runs(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        import redis_capacity
    finally:
        sys.path.pop(0)
    rows = redis_capacity.capacity_rows(str(tmp_path), seconds=0.2, threads=4)
    assert [row.row for row in rows] == ["8a", "8b"]
    for row in rows:
        assert int(row.tracked.replace(",", "")) > 0
        for op in redis_capacity.OPS:
            assert f"{op} " in row.note
    assert "calls per primary" in rows[1].note
