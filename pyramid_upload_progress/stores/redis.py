"""The Redis store: upload records shared by every worker process and host.

Needs redis-py (``pip install 'pyramid_upload_progress[redis]'``); this is
the only module of the add-on that imports it.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from importlib.resources import files as _package_files
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import LoadBalancingStrategy, RedisCluster
from redis.exceptions import NoScriptError
from redis.retry import Retry
from zope.interface import implementer

from ..interfaces import IUploadProgressStore, LiveProgress
from ..record import FileProgress, UploadRecord

SCRIPT = _package_files(__package__).joinpath("redis.lua").read_text(encoding="utf-8")
"""The Lua script every store call runs (``EVALSHA``, one per slot touched)."""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode("utf-8")).hexdigest()

FIELDS = ("path", "started", "updated", "received", "size", "id", "owner", "owner_known",
          "failed", "cancelled", "files", "stage", "finished", "status", "body_end",
          "expires")
"""The fields of one upload in its hash (``R:<field>``) that make its record."""


@implementer(IUploadProgressStore)
class RedisUploadProgressStore:
    """Upload records in Redis, through a redis-py ``client``: one Redis, a
    primary found through Sentinel, or a Redis Cluster (``RedisCluster``).

    Every call runs the Lua script ``SCRIPT``, atomically on the server and
    on its clock, declaring every key it touches; keys expire by themselves.
    ``client`` bounds how long a call may wait: give one of your own a short
    ``socket_timeout`` and ``socket_connect_timeout`` and
    ``retry=Retry(NoBackoff(), 0)``. Keys, costs, replicas and timeouts:
    the documentation's :ref:`redis-store`.
    """

    throttled = True

    def __init__(self, client: redis.Redis | RedisCluster | ClusterOnFirstUse, *,
                 prefix: str = "upload_progress:",
                 timeout: float = 300.0, stall_timeout: float = 3600.0,
                 read_client: redis.Redis | None = None,
                 replica_reads: bool = False) -> None:
        self.client = client
        self.read_client = client if read_client is None else read_client
        self.prefix = prefix
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.replica_reads = replica_reads
        self._one_server = not isinstance(client, (RedisCluster, ClusterOnFirstUse))
        self._timeout_ms = str(round(timeout * 1000))
        live_ms = round((stall_timeout + timeout) * 1000)
        self._live_ms = str(live_ms)
        self._index_ms = str(live_ms + live_ms // 10)

    # Key names.

    def _hash(self, key: str) -> str:
        """The hash of store key ``key``: ``<id>:<R>``, or ``:<R>`` for an
        upload without an id (R is random)."""
        upload_id, _, r = key.rpartition(":")
        return self._tag_hash(upload_id or r)

    def _tag_hash(self, tag: str) -> str:
        return f"{self.prefix}u:{{{tag}}}"

    def _owner_index(self, owner: str) -> str:
        return f"{self.prefix}o:{owner}"

    # Script calls.

    def _run(self, keys: tuple[str, ...], *args: str, read: bool = False) -> Any:
        """One script call: ``EVALSHA``, ``EVALSHA_RO`` for a read on
        replicas; the script's text once when the server lacks it (say
        after a restart or a failover)."""
        client, command = self.client, "EVALSHA"
        if read:
            client = self.read_client
            if self.replica_reads:
                command = "EVALSHA_RO"
        try:
            return client.execute_command(command, SCRIPT_SHA, len(keys), *keys, *args)
        except NoScriptError:
            return client.execute_command(command.replace("SHA", ""), SCRIPT,
                                          len(keys), *keys, *args)

    def _run_at_once(self, calls: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> list[Any]:
        """Script calls that touch different slots, sent together: one
        pipeline (on a cluster, one per node, all sent before any answer is
        read)."""
        pipe = self.client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.execute_command("EVALSHA", SCRIPT_SHA, len(keys), *keys, *args)
        answers = pipe.execute(raise_on_error=False)
        for n, answer in enumerate(answers):
            if isinstance(answer, NoScriptError):
                keys, args = calls[n]
                answers[n] = self._run(keys, *args)
            elif isinstance(answer, Exception):
                raise answer
        return answers

    def _with_owner(self, key: str, owner_index: str | None, lifetime_ms: str,
                    *args: str) -> Any:
        """Run ``args`` on the hash of upload ``key`` and, given its owner's
        index, score its entry there to last ``lifetime_ms`` more: one
        script on one server, two sent at once on a cluster."""
        hash_key = self._hash(key)
        if owner_index is None:
            return self._run((hash_key,), *args)
        if self._one_server:
            return self._run((hash_key, owner_index), *args)
        return self._run_at_once([((hash_key,), args),
                                  ((owner_index,), ("index_owner", key, lifetime_ms))])[0]

    # The interface.

    def start(self, upload_id: str | None, path: str, size: int | None,
              progress: LiveProgress) -> str:
        key = _Key(f"{upload_id or ''}:{os.urandom(9).hex()}")
        self._run((self._hash(key),), "start", key, upload_id or "", path,
                  _optional(size), self._live_ms)
        return key

    def update(self, key: str, received: int, files: list[FileProgress] | None,
               ended: bool = False) -> bool:
        cancelled, *owner = self._run((self._hash(key),), "update", key, str(received),
                                      _json(files), _flag(ended), self._live_ms)
        if owner:  # once per tenth of its lifetime, the owner's index is told
            self._run((self._owner_index(_text(owner[0])),), "index_owner", key,
                      self._index_ms)
        return bool(cancelled)

    def set_owner(self, key: str, owner: str | None) -> None:
        if owner is None:
            self._run((self._hash(key),), "own", key, self._index_ms)
            return
        owner_index = self._owner_index(owner)
        self._with_owner(key, owner_index, self._index_ms, "own", key, self._index_ms, owner)
        if isinstance(key, _Key):
            key.owner_index = owner_index

    def stage(self, key: str, name: str, done: int | None, total: int | None) -> None:
        self._run((self._hash(key),), "stage", key,
                  json.dumps({"name": name, "done": done, "total": total}))

    def finish(self, key: str, received: int, files: list[FileProgress] | None,
               status: int | None, failed: bool, cancelled: bool) -> None:
        self._with_owner(key, getattr(key, "owner_index", None), self._timeout_ms,
                         "finish", key, str(received), _json(files), _optional(status),
                         _flag(failed), _flag(cancelled), self._timeout_ms)

    def discard(self, key: str) -> None:
        self._with_owner(key, getattr(key, "owner_index", None), "0", "discard", key)

    def get(self, upload_id: str, owner: str | None) -> UploadRecord | None:
        return self._one(upload_id, self._run((self._tag_hash(upload_id),), "get", "-",
                                              upload_id, *_owner(owner), read=True))

    def cancel(self, upload_id: str, owner: str | None) -> UploadRecord | None:
        return self._one(upload_id, self._run((self._tag_hash(upload_id),), "cancel", "-",
                                              upload_id, str(self.stall_timeout),
                                              *_owner(owner)))

    def _one(self, upload_id: str, answer: list[Any]) -> UploadRecord | None:
        if len(answer) == 1:
            return None
        now, r, flat = answer
        fields = dict(zip(map(_text, flat[::2]), map(_text, flat[1::2])))
        return self._record(f"{upload_id}:{_text(r)}", fields, float(_text(now)))

    def _record(self, key: str, fields: dict[str, str], now: float) -> UploadRecord:
        """The record from its fields, as a client sees it at ``now``."""
        record = UploadRecord(
            key=key,
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
        clock, *keys = self._run((self._owner_index(owner),), "owner_list", "-", read=True)
        now = float(_text(clock))
        if not keys:
            return []
        keys = [_text(key) for key in keys]
        pipe = self.read_client.pipeline(transaction=False)
        for key in keys:
            r = key.rpartition(":")[2]
            pipe.hmget(self._hash(key), [f"{r}:{field}" for field in FIELDS])
        records = []
        for key, values in zip(keys, pipe.execute()):
            fields = {name: _text(value) for name, value in zip(FIELDS, values)
                      if value is not None}
            if (fields.get("owner") == owner and "started" in fields
                    and float(fields.get("expires", 0)) > now * 1000):
                records.append(self._record(key, fields, now))
        return sorted(records, key=lambda record: record.started, reverse=True)


class _Key(str):
    """A store key that, in the process serving the upload, remembers its
    owner's index once ``RedisUploadProgressStore.set_owner`` named it,
    so that the upload's end updates that index in the same round-trip."""

    owner_index: str | None = None


def _text(value: Any) -> str:
    """A reply as text, whether the client decodes replies or not."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _optional(number: int | None) -> str:
    return "" if number is None else str(number)


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _json(files: list[FileProgress] | None) -> str:
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
    fail when ``MAX_CONNECTIONS`` (1024) are in use (redis-py's own pool fails
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


def _bounded(socket_timeout: float) -> dict[str, Any]:
    """Connection options under which a call fails after ``socket_timeout``."""
    return {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout,
            "retry": Retry(NoBackoff(), 0)}


class ClusterOnFirstUse:
    """A ``RedisCluster`` made at its first use, then stood in for: made
    at once, a cluster client asks a node for the cluster's slots, which
    would stop an app from starting while the cluster is down. A first use
    that fails (no node answers) raises, and the next use tries again."""

    def __init__(self, make: Callable[[], RedisCluster]) -> None:
        self._make = make
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
                client = self._client
        return getattr(client, name)


def cluster_client(url: str, socket_timeout: float,
                   read_from_replicas: bool) -> ClusterOnFirstUse:
    """A redis-py ``RedisCluster`` for the cluster ``url`` names a node of,
    made at its first use, each call bounded as :func:`redis_client`'s;
    with ``read_from_replicas``, read-only commands (``EVALSHA_RO``,
    ``HMGET``) go to the primaries and their replicas in turn. After a
    connection error or a redirection it asks for the cluster's slots
    again: a failover is followed by itself."""
    strategy = LoadBalancingStrategy.ROUND_ROBIN if read_from_replicas else None
    return ClusterOnFirstUse(lambda: RedisCluster.from_url(
        url, load_balancing_strategy=strategy, **_bounded(socket_timeout)))


def sentinel_clients(url: str, sentinels: list[tuple[str, int]], master: str,
                     socket_timeout: float) -> tuple[redis.Redis, redis.Redis]:
    """A client of the primary the ``sentinels`` name ``master``, and one of
    its replicas (the primary when it has none), each call bounded as
    :func:`redis_client`'s; ``url`` gives the database, the credentials and
    TLS, not the host. The primary is asked of the sentinels for every new
    connection, and a connection to a primary that was demoted is dropped:
    after a failover the next call reaches the new primary."""
    options = redis.connection.parse_url(url)
    options.pop("host", None)
    options.pop("port", None)
    connection_class = options.pop("connection_class", redis.Connection)
    options["ssl"] = issubclass(connection_class, redis.SSLConnection)
    bounded = _bounded(socket_timeout)
    sentinel = redis.Sentinel(sentinels, sentinel_kwargs=dict(bounded))
    return (sentinel.master_for(master, **bounded, **options),
            sentinel.slave_for(master, **bounded, **options))


def redis_store_factory(settings: Mapping[str, Any]) -> RedisUploadProgressStore:
    """The factory behind ``upload_progress.store = redis``, for a factory
    of your own to wrap. ``settings`` are the app's settings, already parsed
    by the add-on: ``upload_progress.redis.url``, ``.redis.prefix``,
    ``.redis.socket_timeout``, ``.redis.cluster``, ``.redis.sentinels``,
    ``.redis.sentinel_master``, ``.redis.read_from_replicas``, ``.timeout``
    and ``.stall_timeout``."""
    url = settings["upload_progress.redis.url"]
    socket_timeout = settings["upload_progress.redis.socket_timeout"]
    replicas = settings["upload_progress.redis.read_from_replicas"]
    read_client = None
    if settings["upload_progress.redis.cluster"]:
        client: Any = cluster_client(url, socket_timeout, replicas)
    elif settings["upload_progress.redis.sentinels"]:
        client, replica = sentinel_clients(
            url, settings["upload_progress.redis.sentinels"],
            settings["upload_progress.redis.sentinel_master"], socket_timeout)
        read_client = replica if replicas else None
    else:
        client = redis_client(url, socket_timeout)
    return RedisUploadProgressStore(
        client,
        prefix=settings["upload_progress.redis.prefix"],
        timeout=settings["upload_progress.timeout"],
        stall_timeout=settings["upload_progress.stall_timeout"],
        read_client=read_client,
        replica_reads=replicas,
    )
