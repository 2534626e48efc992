"""The store backends the shared store contract suite runs against.

Each backend makes a store with the suite's timeouts and says how to let
time pass for it: the memory store takes a clock of the test's own; a store
on another server's clock (Redis) sleeps. A backend module registers itself
in :data:`BACKENDS`; ``tests/test_store_contract.py`` runs every test of the
contract once per backend.
"""
from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyramid_upload_progress.stores.memory import MemoryUploadProgressStore
from pyramid_upload_progress.stores.sqlite import SQLiteUploadProgressStore

START = 1_700_000_000.0


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Progress:
    """What the add-on hands a store as an upload's live ``progress``."""

    def __init__(self) -> None:
        self.received = 0
        self.files: list[dict[str, Any]] | None = None
        self.receiving = True
        self.body_end: float | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Backend:
    """A store made for one test, and the test's handle on its time."""

    store: Any
    advance: Callable[[float], None]
    now: Callable[[], float]


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
    from .redis_server import session_server

    server = session_server()
    store = server.store(timeout=timeout, stall_timeout=stall_timeout)
    return Backend(store, time.sleep, server.now)


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
    "memory": memory_backend, "redis": redis_backend, "sqlite": sqlite_backend}
