"""Row 8: how many uploads one Redis node tracks, and how a cluster adds up.

Many client threads call the Redis store as the add-on does (start,
set_owner, update, get, list, finish), each operation for a while on its
own, against one redis-server and against a cluster of three primaries
(with a replica each), both started here on 127.0.0.1. Two figures per
operation: the store calls per second the clients got through, and the
server time one call costs (Redis's own ``INFO commandstats``, summed over
the primaries), which is what bounds a node: Redis runs scripts on one
core. From the server times, at the default ``update_interval`` (0.25 s:
four progress writes a second) and one poll a second per upload, plus its
start, owner and end over an upload of ``UPLOAD_SECONDS``:

    concurrent uploads per node = 1 s / (4 update + 1 get + (start +
                                  set_owner + update + finish) / UPLOAD_SECONDS)

On a cluster each primary carries the uploads whose ids hash to its slots:
the row shows how evenly the calls spread over the primaries. The clients
share the machine's cores with the servers, so calls per second measured
here are the clients' limit as much as Redis's; the server time is not.
"""
from __future__ import annotations

import contextlib
import itertools
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import over_socket
from harness import Row

from pyramid_upload_progress.stores.redis import (
    RedisUploadProgressStore,
    cluster_client,
    redis_client,
)

OPS = ("start", "set_owner", "update", "get", "list", "finish")
UPLOAD_SECONDS = 60.0
UPDATES_PER_SECOND = 4  # the default update_interval, 0.25 s
POLLS_PER_SECOND = 1
UPLOADS_PER_OWNER = 10
SERVER_COMMANDS = ("evalsha", "evalsha_ro", "eval", "hmget")


def server_usec(clients: list[Any]) -> tuple[float, dict[int, int]]:
    """Server time spent on the store's commands so far (µs), and the
    calls each node ran, by port."""
    usec, calls = 0.0, {}
    for client in clients:
        stats = client.info("commandstats")
        port = client.connection_pool.connection_kwargs["port"]
        calls[port] = 0
        for name in SERVER_COMMANDS:
            found = stats.get(f"cmdstat_{name}")
            if found:
                usec += found["usec"]
                calls[port] += found["calls"]
    return usec, calls


def hammer(call: Callable[[int], Any], seconds: float, threads: int) -> int:
    """``call(n)`` from ``threads`` threads for ``seconds``: calls made."""
    counter = itertools.count()
    done = [0] * threads
    stop = time.monotonic() + seconds

    def work(slot: int) -> None:
        while time.monotonic() < stop:
            call(next(counter))
            done[slot] += 1

    workers = [threading.Thread(target=work, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done)


def measure(store: RedisUploadProgressStore, primaries: list[Any], seconds: float,
            threads: int) -> tuple[dict[str, tuple[float, float]], dict[int, int]]:
    """Per operation: (store calls per second, server µs per store call);
    and the calls each primary ran."""
    keys: list[str] = []
    lock = threading.Lock()

    def start(n: int) -> None:
        key = store.start(f"id-{n}", "/upload", 1_000_000, None)
        with lock:
            keys.append(key)

    def owner(n: int) -> str:
        return f"owner-{n // UPLOADS_PER_OWNER}"

    calls: dict[str, Callable[[int], Any]] = {
        "start": start,
        "set_owner": lambda n: store.set_owner(keys[n % len(keys)], owner(n % len(keys))),
        "update": lambda n: store.update(keys[n % len(keys)], n, None),
        "get": lambda n: store.get(f"id-{n % len(keys)}", owner(n % len(keys))),
        "list": lambda n: store.list(owner(n % len(keys))),
        "finish": lambda n: store.finish(keys[n % len(keys)], 1_000_000, None, 200,
                                         False, False),
    }
    figures = {}
    _, first = server_usec(primaries)
    for op in OPS:
        usec_before, _ = server_usec(primaries)
        began = time.perf_counter()
        made = hammer(calls[op], seconds, threads)
        elapsed = time.perf_counter() - began
        usec_after, _ = server_usec(primaries)
        figures[op] = (made / elapsed, (usec_after - usec_before) / made)
    _, last = server_usec(primaries)
    return figures, {port: last[port] - first.get(port, 0) for port in last}


def uploads_per_node(figures: dict[str, tuple[float, float]]) -> float:
    usec = {op: cost for op, (_, cost) in figures.items()}
    per_upload = (UPDATES_PER_SECOND * usec["update"] + POLLS_PER_SECOND * usec["get"]
                  + (usec["start"] + usec["set_owner"] + usec["update"] + usec["finish"])
                  / UPLOAD_SECONDS)
    return 1e6 / per_upload


@contextlib.contextmanager
def _servers(tmp: str) -> Iterator[tuple[Any, Any] | None]:
    """(one redis-server's URL, a cluster) or None without redis-server/cli."""
    from tests.redis_cluster import cluster  # imports pytest: only when run

    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        yield None
        return
    with over_socket.redis_server(tmp) as url, cluster() as running:
        yield url, running


def capacity_rows(tmp: str, seconds: float, threads: int) -> list[Row]:
    with _servers(tmp) as found:
        if found is None:
            return [Row("8", "Redis capacity", note="skipped: needs redis-server and "
                        "redis-cli (Debian's redis-server, redis-tools)")]
        url, running = found
        single = redis_client(url, 2.0)
        one, _ = measure(RedisUploadProgressStore(single, prefix="bench:"), [single],
                         seconds, threads)
        primaries = [node.client() for node in running.primaries()]
        many, spread = measure(RedisUploadProgressStore(
            cluster_client(running.url, 2.0, False), prefix="bench:"), primaries,
            seconds, threads)
    rows = []
    for name, figures, nodes in (("8a", one, 1), ("8b", many, len(primaries))):
        per_node = uploads_per_node(figures)
        detail = ", ".join(f"{op} {rate:,.0f}/s {usec:.0f} µs" for op, (rate, usec)
                           in figures.items())
        where = "one Redis" if nodes == 1 else f"cluster of {nodes} primaries"
        note = (f"{where}, {threads} client threads: store calls per second and server "
                f"time per call: {detail}")
        if nodes > 1:
            share = sorted(spread.values())
            note += (f"; calls per primary {', '.join(f'{c:,}' for c in share)} "
                     f"(max/min {share[-1] / max(share[0], 1):.2f})")
        rows.append(Row(
            name, f"Redis capacity, {where}: concurrent uploads (4 writes + 1 poll /s each)",
            tracked=f"{per_node * nodes:,.0f}", note=note))
    return rows
