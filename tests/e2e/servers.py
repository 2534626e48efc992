"""Run a real WSGI server in a subprocess on a loopback port, for e2e tests.

``serve()`` is a context manager: it starts gunicorn (gthread), cheroot,
waitress or the add-on's waitress runner on 127.0.0.1, waits until the server answers, yields a
``Server`` handle and always stops the process group on exit, even when
the test fails.  The app is given as a 'module:attribute' spec importable
from the repository root; settings reach it through environment variables
(``env=``), since the app runs in another process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVERS = ("gunicorn", "cheroot", "waitress", "waitress-runner")

#: How long a server may take to answer its first request.
START_TIMEOUT = 15.0
#: How long SIGTERM has to stop it before the process group is killed.
STOP_TIMEOUT = 5.0
#: Request used to tell that the app is loaded: any HTTP status will do.
_PROBE = b"GET /__e2e_ready__ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Return ``count`` different TCP ports on 127.0.0.1 that were free a
    moment ago (each held until all are chosen, so none comes twice)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(sock.getsockname()[1])
        return ports


@dataclass
class Server:
    """A running server: where it listens and what it has printed."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def url(self) -> str:
        """Base URL, e.g. 'http://127.0.0.1:8000'."""
        return f"http://{HOST}:{self.port}"

    def output(self) -> str:
        """The server's stdout and stderr so far (only inside ``serve()``)."""
        fd = self.log.fileno()
        # pread leaves the file offset, which the child shares, alone.
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")


def _command(server: str, app: str, port: int, *, workers: int, threads: int) -> list[str]:
    """The argv that runs `app` under `server` with this interpreter."""
    if server == "gunicorn":
        return [
            sys.executable, "-m", "gunicorn",
            "--worker-class", "gthread",
            "--workers", str(workers),
            "--threads", str(threads),
            "--bind", f"{HOST}:{port}",
            "--no-control-socket",
            "--timeout", "60",
            "--graceful-timeout", "2",
            app,
        ]  # fmt: skip
    if server in ("cheroot", "waitress", "waitress-runner"):
        if workers != 1:
            raise ValueError(f"{server} runs one process; workers must be 1")
        return [
            sys.executable, "-m", "tests.e2e.serve_app",
            "--server", server,
            "--port", str(port),
            "--app", app,
            "--threads", str(threads),
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}; expected one of {SERVERS}")


@contextlib.contextmanager
def serve(
    server: str,
    app: str,
    *,
    env: dict[str, str] | None = None,
    workers: int = 1,
    threads: int = 16,
) -> Iterator[Server]:
    """Run `app` ('module:attribute') under `server` on a free loopback port.

    `env` is added to the child's environment. On a failure inside the
    block, the server's output is attached to the exception as a note.
    """
    port = free_port()
    child_env = os.environ.copy()
    child_env.update(env or {})
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), child_env.get("PYTHONPATH")])
    )
    child_env["PYTHONUNBUFFERED"] = "1"
    argv = _command(server, app, port, workers=workers, threads=threads)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )
        handle = Server(server, port, process, log)
        try:
            _wait_until_ready(handle)
            yield handle
        except Exception as exc:
            if hasattr(exc, "add_note"):  # Python >= 3.11
                exc.add_note(f"--- {server} output ---\n{handle.output()}")
            raise
        finally:
            _stop(process)


def _wait_until_ready(server: Server) -> None:
    """Return once the server answers a request; raise if it dies or stalls.

    A TCP accept is not enough: gunicorn's master listens before its
    worker has imported the app, and exits if that import fails.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode} before "
                f"answering on port {server.port}:\n{server.output()}"
            )
        if _answers(server.port):
            return
        time.sleep(0.05)
    raise TimeoutError(
        f"{server.name} did not answer on port {server.port} within "
        f"{START_TIMEOUT} s:\n{server.output()}"
    )


def _answers(port: int) -> bool:
    """Whether an HTTP request to `port` gets a status line back."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(_PROBE)
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server, then SIGKILL its whole process group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    # Workers can outlive a master that died abnormally; kill the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(STOP_TIMEOUT)
