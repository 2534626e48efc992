"""The project's stores as backends of the store contract suite
(:mod:`pyramid_upload_progress.testing`).

Each backend makes a store with the suite's timeouts and says how to let
time pass for it: the memory and SQLite stores take a clock of the test's
own; a store on another server's clock (Redis) sleeps.
``tests/test_store_contract.py`` runs the contract once per backend;
``tests/test_store_equivalence.py`` drives them side by side.
"""
from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Callable

from pyramid_upload_progress.stores.memory import MemoryUploadProgressStore
from pyramid_upload_progress.stores.sqlite import SQLiteUploadProgressStore
from pyramid_upload_progress.testing import Backend, FakeClock, Progress

__all__ = ["BACKENDS", "Backend", "FakeClock", "Progress"]

BackendFactory = Callable[..., Backend]
"""``factory(timeout=, stall_timeout=, max_uploads=)`` -> a :class:`Backend`."""


def memory_backend(*, timeout: float, stall_timeout: float, max_uploads: int) -> Backend:
    clock = FakeClock()
    store = MemoryUploadProgressStore(timeout=timeout, stall_timeout=stall_timeout,
                                      max_uploads=max_uploads, clock=clock)
    return Backend(store, clock.advance, clock)


def redis_backend(*, timeout: float, stall_timeout: float, max_uploads: int) -> Backend:
    """The Redis store on the session's redis-server, under a fresh key
    prefix (it has no cap: ``max_uploads`` is the memory store's)."""
    from tests.redis_server import session_server

    server = session_server()
    store = server.store(timeout=timeout, stall_timeout=stall_timeout)
    return Backend(store, time.sleep, server.now)


def redis_cluster_backend(*, timeout: float, stall_timeout: float,
                          max_uploads: int) -> Backend:
    """The Redis store on the session's Redis Cluster (three primaries, three
    replicas), under a fresh key prefix."""
    from tests.redis_cluster import session_cluster

    cluster = session_cluster()
    store = cluster.store(timeout=timeout, stall_timeout=stall_timeout)
    return Backend(store, time.sleep, cluster.now)


_SQLITE_FILES = itertools.count()
_sqlite_directory: tempfile.TemporaryDirectory[str] | None = None


def sqlite_backend(*, timeout: float, stall_timeout: float, max_uploads: int) -> Backend:
    """A fresh SQLite file per store, in one temporary directory removed at
    exit (the contract's fixture has no ``tmp_path`` to give)."""
    global _sqlite_directory
    if _sqlite_directory is None:
        _sqlite_directory = tempfile.TemporaryDirectory(prefix="upload-progress-")
    path = os.path.join(_sqlite_directory.name, f"{next(_SQLITE_FILES)}.sqlite3")
    clock = FakeClock()
    # The contract is about answers; waiting on the lock has its own tests,
    # and on a loaded machine a thread may hold the lock past 0.1 s.
    store = SQLiteUploadProgressStore(path, timeout=timeout, stall_timeout=stall_timeout,
                                      max_uploads=max_uploads, clock=clock, lock_timeout=2.0)
    store.create()
    return Backend(store, clock.advance, clock)


BACKENDS: dict[str, BackendFactory] = {
    "memory": memory_backend, "redis": redis_backend,
    "redis-cluster": redis_cluster_backend, "sqlite": sqlite_backend}
