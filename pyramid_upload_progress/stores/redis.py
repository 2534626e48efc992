"""The Redis store: upload records shared by every worker process and host.

Needs redis-py (``pip install 'pyramid_upload_progress[redis]'``); this is
the only module of the add-on that imports it.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib.resources import files as _package_files
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from zope.interface import implementer

from ..interfaces import IUploadProgressStore
from ..record import UploadRecord

SCRIPT = _package_files(__package__).joinpath("redis.lua").read_text(encoding="utf-8")
"""The Lua script every store call runs (one ``EVALSHA`` per call)."""


@implementer(IUploadProgressStore)
class RedisUploadProgressStore:
    """Upload records in Redis, through a redis-py ``client``.

    Every call is one round-trip: one ``EVALSHA`` of a Lua script
    (``SCRIPT``) that reads and writes atomically on the server, so
    threads, processes and hosts never race. Times come from the Redis
    server's clock (``TIME`` inside the script), so records written by hosts
    whose clocks differ agree. The add-on throttles progress writes
    (``throttled``): :meth:`~pyramid_upload_progress.interfaces.IUploadProgressStore.update` at most once per
    ``upload_progress.update_interval``, plus :meth:`~pyramid_upload_progress.interfaces.IUploadProgressStore.start`,
    :meth:`~pyramid_upload_progress.interfaces.IUploadProgressStore.set_owner` and :meth:`~pyramid_upload_progress.interfaces.IUploadProgressStore.finish`, per upload.

    Keys, under ``prefix``: ``u:<key>`` a hash per record; ``id:<upload id>``
    and ``o:<owner>`` sorted sets of record keys, each scored by its
    record's expiry, so that a lookup by id costs O(the uploads with that
    id) and a listing O(the owner's uploads), whatever else Redis holds.
    Every key expires by itself on the server: a record ``stall_timeout +
    timeout`` after its last progress and ``timeout`` after its end, an
    index with the last of its records. A worker killed mid-upload leaves nothing behind for longer
    than ``stall_timeout + timeout``. There is no cap on the number of
    records (``max_uploads`` is the memory store's): Redis's own memory
    limit is the cap. A single Redis server (or a primary with replicas,
    Sentinel): the script builds key names, so not Redis Cluster.

    A call waits for Redis at most as long as ``client`` lets it: the
    client that :func:`redis_store_factory` makes has
    ``upload_progress.redis.socket_timeout`` as its connect, read and write
    timeout and no retries. A client of your own (say one whose connection
    pool the rest of the app shares) should have a short ``socket_timeout``
    and ``socket_connect_timeout`` too, and ``retry=Retry(NoBackoff(), 0)``:
    redis-py's default retries multiply the wait of an upload when Redis
    hangs. Either ``decode_responses`` will do. A failing call raises
    redis-py's exception; the add-on then serves the upload untracked.
    """

    throttled = True

    def __init__(self, client: redis.Redis, *, prefix: str = "upload_progress:",
                 timeout: float = 300.0, stall_timeout: float = 3600.0) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self._timeout_ms = str(round(timeout * 1000))
        self._live_ms = str(round((stall_timeout + timeout) * 1000))
        self._script = client.register_script(SCRIPT)

    def _call(self, op: str, *args: str) -> Any:
        return self._script(args=(op, self.prefix, *args))

    def start(self, upload_id: str | None, path: str, size: int | None,
              progress: Any) -> str:
        key = os.urandom(9).hex()
        self._call("start", key, upload_id or "", path, _optional(size), self._live_ms)
        return key

    def update(self, key: str, received: int, files: list[dict[str, Any]] | None,
               ended: bool = False) -> bool:
        return bool(self._call("update", key, str(received), _json(files), self._live_ms,
                               _flag(ended)))

    def set_owner(self, key: str, owner: str | None) -> None:
        self._call("set_owner", key, *_owner(owner))

    def stage(self, key: str, name: str, done: int | None, total: int | None) -> None:
        self._call("stage", key, json.dumps({"name": name, "done": done, "total": total}))

    def finish(self, key: str, received: int, files: list[dict[str, Any]] | None,
               status: int | None, failed: bool, cancelled: bool) -> None:
        self._call("finish", key, str(received), _json(files), _optional(status),
                   _flag(failed), _flag(cancelled), self._timeout_ms)

    def discard(self, key: str) -> None:
        self._call("discard", key)

    def get(self, upload_id: str, owner: str | None) -> UploadRecord | None:
        return self._one(self._call("get", upload_id, *_owner(owner)))

    def cancel(self, upload_id: str, owner: str | None) -> UploadRecord | None:
        return self._one(self._call("cancel", upload_id, str(self.stall_timeout),
                                    *_owner(owner)))

    def _one(self, answer: list[Any]) -> UploadRecord | None:
        if len(answer) == 1:
            return None
        now, key, fields = answer
        return self._record(key, fields, float(_text(now)))

    def _record(self, key: Any, flat: list[Any], now: float) -> UploadRecord:
        """The record from its hash's fields, as a client sees it at ``now``."""
        fields = dict(zip(map(_text, flat[::2]), map(_text, flat[1::2])))
        record = UploadRecord(
            key=_text(key),
            id=fields.get("id"),
            path=fields["path"],
            size=_int(fields.get("size")),
            started=float(fields["started"]),
            updated=float(fields["updated"]),
            received=int(fields["received"]),
            finished=_float(fields.get("finished")),
            status=_int(fields.get("status")),
            failed=fields["failed"] == "1",
            owner=fields.get("owner"),
            owner_known=fields["owner_known"] == "1",
            cancelled=fields["cancelled"] == "1",
            files=_loads(fields.get("files")),
            stage=_loads(fields.get("stage")),
            body_end=_float(fields.get("body_end")),
        )
        return record.as_of(now, self.stall_timeout)

    # Last: below it in the class, ``list`` in a type hint would be this method.
    def list(self, owner: str) -> list[UploadRecord]:
        clock, *found = self._call("list", owner)
        now = float(_text(clock))
        records = [self._record(key, fields, now) for key, fields in zip(found[::2], found[1::2])]
        return sorted(records, key=lambda record: record.started, reverse=True)


def _text(value: Any) -> str:
    """A reply as text, whether the client decodes replies or not."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _optional(number: int | None) -> str:
    return "" if number is None else str(number)


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _json(files: list[dict[str, Any]] | None) -> str:
    return "" if files is None else json.dumps(files)


def _owner(owner: str | None) -> tuple[str, ...]:
    """An owner as script arguments: none at all for ``None``."""
    return () if owner is None else (owner,)


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


MAX_CONNECTIONS = 1024
"""Connections one process's client may hold: one per thread calling at
once (gunicorn gthread: ``threads``). Past it a call waits for a free one,
``socket_timeout`` at the most."""


def redis_client(url: str, socket_timeout: float) -> redis.Redis:
    """A redis-py client for ``url`` (anything ``redis.Redis.from_url``
    takes) whose every call fails after ``socket_timeout`` seconds at most:
    that connect, read and write timeout, and no retries. Its connection
    pool waits, that long at the most, for a free connection rather than
    fail when :data:`MAX_CONNECTIONS` are in use (redis-py's own pool fails
    at once past 100: a busy worker's polls answered 503), and reconnects
    by itself once Redis answers again. No connection is made until the
    first call, so an app starts while Redis is down."""
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=socket_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
    ))


def redis_store_factory(settings: Mapping[str, Any]) -> RedisUploadProgressStore:
    """The factory behind ``upload_progress.store = redis``, for a factory
    of your own to wrap. ``settings`` are the app's settings, already parsed
    by the add-on: ``upload_progress.redis.url``, ``.redis.prefix``,
    ``.redis.socket_timeout``, ``.timeout`` and ``.stall_timeout``."""
    return RedisUploadProgressStore(
        redis_client(settings["upload_progress.redis.url"],
                     settings["upload_progress.redis.socket_timeout"]),
        prefix=settings["upload_progress.redis.prefix"],
        timeout=settings["upload_progress.timeout"],
        stall_timeout=settings["upload_progress.stall_timeout"],
    )
