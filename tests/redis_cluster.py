"""Real Redis Clusters and Sentinel setups for the tests, on loopback.

:func:`cluster` starts a Redis Cluster of three primaries with a replica
each (``redis-server --cluster-enabled yes``, joined by ``redis-cli
--cluster create``); :func:`sentinel_setup` a primary, its replica and three
Sentinels watching them. Both fail over within about two seconds
(``NODE_TIMEOUT``), so that the tests can kill a primary and watch its
replica take over. Like :mod:`tests.redis_server`, a missing
``redis-server`` or ``redis-cli`` skips a test, and fails it under CI.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.e2e.client import wait_for
from tests.e2e.servers import HOST, free_ports
from tests.redis_server import RedisServer, _missing, fresh_prefix, require_redis

#: Milliseconds without an answer after which a primary counts as down.
NODE_TIMEOUT = 1000
START_TIMEOUT = 20.0


def require_redis_cli() -> str:
    found = os.environ.get("REDIS_CLI") or shutil.which("redis-cli")
    if found is None:
        _missing("no redis-cli on PATH (Debian's redis-tools)")
    return found  # type: ignore[return-value]


class Cluster:
    """Three primaries and three replicas; ``nodes`` in start order."""

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes

    @property
    def url(self) -> str:
        """A URL naming one node, as ``upload_progress.redis.url`` does."""
        return self.nodes[0].url

    def client(self) -> Any:
        """A cluster client of the tests' own (not the store's), through
        any running node."""
        from redis.cluster import RedisCluster

        node = next(node for node in self.nodes if node.process is not None)
        return RedisCluster(host=HOST, port=node.port, socket_timeout=5,
                            decode_responses=True)

    def store(self, prefix: str | None = None, read_from_replicas: bool = False,
              **kwargs: Any) -> Any:
        """A Redis store on this cluster, under a fresh key prefix unless
        one is given, made as ``upload_progress.redis.cluster`` makes it."""
        from pyramid_upload_progress.stores.redis import (
            RedisUploadProgressStore,
            cluster_client,
        )

        return RedisUploadProgressStore(
            cluster_client(self.url, 2.0, read_from_replicas),
            prefix=prefix or fresh_prefix(), replica_reads=read_from_replicas, **kwargs)

    def primaries(self) -> list[RedisServer]:
        """The running nodes that serve slots now."""
        return [node for node in self.nodes if node.process is not None
                and node.client().info("replication")["role"] == "master"]

    def primary_of(self, key: str) -> RedisServer:
        """The running primary that serves ``key`` now."""
        port = self.client().get_node_from_key(key).port
        return next(node for node in self.nodes if node.port == port)

    def replicated(self) -> bool:
        """Three primaries, each with a replica in sync, as the slots say."""
        primaries = self.primaries()
        return len(primaries) == 3 and all(
            node.client().info("replication")["connected_slaves"] >= 1
            for node in primaries) and all(
            len(slot) >= 4 for slot in self.nodes[0].client().cluster("slots"))

    def healthy(self) -> bool:
        """Every running node sees every slot served."""
        return all(node.client().cluster("info")["cluster_state"] == "ok"
                   for node in self.nodes if node.process is not None)

    def wait_healthy(self, seconds: float = START_TIMEOUT) -> None:
        wait_for(self.healthy, seconds, "cluster state ok")

    def keys(self, match: str) -> list[str]:
        return [key for node in self.primaries()
                for key in node.client().scan_iter(match=match, count=1000)]

    def now(self) -> float:
        return self.primaries()[0].now()


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """A 3-primary, 3-replica Redis Cluster of its own, stopped after."""
    binary, cli = require_redis(), require_redis_cli()
    # A node listens on two ports (clients, cluster bus): twelve, all different.
    ports = iter(free_ports(12))
    nodes = [RedisServer(binary, "--cluster-enabled", "yes",
                         "--cluster-config-file", "nodes.conf",
                         "--cluster-node-timeout", str(NODE_TIMEOUT),
                         "--cluster-replica-validity-factor", "0",
                         "--cluster-port", str(next(ports)), port=next(ports))
             for _ in range(6)]
    try:
        for node in nodes:
            node.start()
        subprocess.run([cli, "--cluster", "create",
                        *(f"{HOST}:{node.port}" for node in nodes),
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, capture_output=True, timeout=START_TIMEOUT)
        running = Cluster(nodes)
        running.wait_healthy()
        wait_for(running.replicated, START_TIMEOUT, "3 primaries, each with a replica")
        yield running
    finally:
        for node in nodes:
            node.close()


class SentinelSetup:
    """A primary, its replica, and three sentinels that watch them."""

    MASTER = "mymaster"

    def __init__(self, servers: list[RedisServer], sentinels: list[RedisServer]) -> None:
        self.servers = servers
        self.sentinels = sentinels

    @property
    def addresses(self) -> str:
        """The ``upload_progress.redis.sentinels`` setting."""
        return " ".join(f"{HOST}:{sentinel.port}" for sentinel in self.sentinels)

    def primary(self) -> RedisServer:
        """The server the sentinels name primary now."""
        host, port = self.sentinels[0].client().sentinel_get_master_addr_by_name(
            self.MASTER)
        return next(server for server in self.servers if server.port == int(port))

    def replicas_known(self) -> bool:
        replicas = self.sentinels[0].client().sentinel_slaves(self.MASTER)
        return bool(replicas) and all("s_down" not in r["flags"] for r in replicas)


@contextlib.contextmanager
def sentinel_setup() -> Iterator[SentinelSetup]:
    """A Sentinel setup of its own, stopped after."""
    binary = require_redis()
    primary = RedisServer(binary)
    replica = RedisServer(binary, "--replicaof", HOST, str(primary.port))
    sentinels = []
    for _ in range(3):
        sentinel = RedisServer(binary, "--sentinel")
        config = Path(sentinel.dir, "sentinel.conf")
        config.write_text(
            f"sentinel monitor {SentinelSetup.MASTER} {HOST} {primary.port} 2\n"
            f"sentinel down-after-milliseconds {SentinelSetup.MASTER} {NODE_TIMEOUT}\n"
            f"sentinel failover-timeout {SentinelSetup.MASTER} 5000\n")
        sentinel.config = (str(config),)
        sentinels.append(sentinel)
    everything = [primary, replica, *sentinels]
    try:
        for server in everything:
            server.start()
        setup = SentinelSetup([primary, replica], sentinels)
        wait_for(lambda: replica.client().info("replication")["master_link_status"]
                   == "up", START_TIMEOUT, "replica in sync")
        wait_for(setup.replicas_known, START_TIMEOUT, "sentinels know the replica")
        wait_for(lambda: all(len(s.client().sentinel_sentinels(SentinelSetup.MASTER)) == 2
                               for s in sentinels), START_TIMEOUT, "sentinels know each other")
        yield setup
    finally:
        for server in everything:
            server.close()


_session: Cluster | None = None


def session_cluster() -> Cluster:
    """The test session's shared cluster, started at its first use."""
    global _session
    if _session is None:
        stack = contextlib.ExitStack()
        _session = stack.enter_context(cluster())
        atexit.register(stack.close)
    return _session
