"""The stores the tests run against, as the add-on's settings.

Tests about what a store does run with each of ``STORES``: the memory
store, ``upload_progress.store = redis`` (the test session's redis-server,
a fresh key prefix per app) and ``= sqlite`` (a fresh file per app), in
process and through a real gunicorn. Both shared stores are throttled:
progress is written every ``INTERVAL`` seconds (short, so that a test waits
little for it).

This module also reads what a store leaves behind, from outside the add-on:
the Redis keys under a prefix with their TTLs, the rows and size of a
SQLite file.
"""
from __future__ import annotations

import itertools
import os
import sqlite3
import tempfile
from typing import Any

import pytest

STORES = ["memory", "redis", "sqlite"]
SHARED = ["redis", "sqlite"]
"""The stores that several worker processes share."""

INTERVAL = 0.05
"""``upload_progress.update_interval`` of the throttled stores here."""

_FILES = itertools.count()
_directory: tempfile.TemporaryDirectory[str] | None = None


def sqlite_path() -> str:
    """A fresh SQLite file name, in one temporary directory removed at exit."""
    global _directory
    if _directory is None:
        _directory = tempfile.TemporaryDirectory(prefix="upload-progress-stores-")
    return os.path.join(_directory.name, f"{next(_FILES)}.sqlite3")


def store_settings(kind: str, **settings: str) -> dict[str, str]:
    """The add-on's settings for a store of ``kind`` (see ``STORES``), fresh:
    nothing another test wrote is in it. ``settings`` are added."""
    if kind == "memory":
        return dict(settings)
    if kind == "redis":
        from tests.redis_server import fresh_prefix, session_server

        return {"upload_progress.store": "redis",
                "upload_progress.redis.url": session_server().url,
                "upload_progress.redis.prefix": fresh_prefix(),
                "upload_progress.update_interval": str(INTERVAL), **settings}
    if kind == "sqlite":
        return {"upload_progress.store": "sqlite",
                "upload_progress.sqlite.path": sqlite_path(),
                "upload_progress.update_interval": str(INTERVAL), **settings}
    raise ValueError(f"unknown store {kind!r}")


def within_update_interval(clock: Any) -> None:
    """Let the time pass in which a throttled store's cancel reaches the
    upload (at its next progress write): its next read after that raises.
    ``clock`` is the app's (``tests.app_clock.give_clock``): it runs ahead;
    nothing waits."""
    clock.advance(2 * INTERVAL)


def each_store(kinds: list[str] = STORES) -> Any:
    """``@each_store()``: the test runs once per store, its argument
    ``kind`` naming it."""
    return pytest.mark.parametrize("kind", kinds)


# -- what a store leaves behind -------------------------------------------------

def redis_keys(settings: dict[str, str]) -> dict[str, int]:
    """Every Redis key under the settings' prefix, with its TTL in ms
    (-1: none, the key lives for ever)."""
    from tests.redis_server import session_server

    client = session_server().client()
    prefix = settings["upload_progress.redis.prefix"]
    keys = list(client.scan_iter(match=_glob_escape(prefix) + "*", count=1000))
    return {key: client.pttl(key) for key in keys}


def redis_dump(settings: dict[str, str]) -> str:
    """All that Redis holds under the settings' prefix, as text."""
    from tests.redis_server import session_server

    client = session_server().client()
    out = []
    for key in redis_keys(settings):
        kind = client.type(key)
        value: Any = (client.hgetall(key) if kind == "hash"
                      else client.zrange(key, 0, -1) if kind == "zset" else kind)
        out.append(f"{key} {value!r}")
    return "\n".join(out)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def sqlite_rows(settings: dict[str, str], columns: str = "*") -> list[tuple[Any, ...]]:
    """The rows of the SQLite store's file, read by a connection of our own."""
    path = settings["upload_progress.sqlite.path"]
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(f"SELECT {columns} FROM uploads").fetchall()
    finally:
        db.close()


def sqlite_bytes(settings: dict[str, str]) -> tuple[int, int]:
    """The size of the SQLite store on disk: (the file, its -wal file)."""
    path = settings["upload_progress.sqlite.path"]
    return os.path.getsize(path), os.path.getsize(path + "-wal")
