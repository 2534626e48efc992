"""Run the other servers our users run, for the server-matrix tests.

Each function is a context manager that starts one server (or proxy) on a
free loopback port in its own process group, waits until it answers, yields
a :class:`~tests.e2e.servers.Server` and always stops the group on exit:
gunicorn's sync worker, uWSGI's ``--http-socket``, Apache with mod_wsgi
through ``mod_wsgi-express`` (daemon mode), and nginx with its
upload-progress module in front of another server.

Servers that are not installed are the caller's to judge: ``missing()``
says why one cannot run; under ``CI`` the tests fail on it, elsewhere they
skip (``require()``).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import mod_wsgi_env
from tests.e2e.servers import HOST, REPO_ROOT, Server, _stop, _wait_until_ready, free_port

BIN = Path(sys.executable).parent
NGINX_MODULE = Path("/usr/lib/nginx/modules/ngx_http_uploadprogress_module.so")


def missing(server: str) -> str | None:
    """Why ``server`` cannot run here, or None when it can."""
    if server == "uwsgi" and not (BIN / "uwsgi").exists():
        return f"uWSGI is not installed in {BIN} (pip install uwsgi)"
    if server == "mod_wsgi":
        return mod_wsgi_env.missing()
    if server == "nginx":
        if shutil.which("nginx") is None:
            return "nginx is not installed (Debian: apt-get install nginx)"
        if not NGINX_MODULE.exists():
            return f"{NGINX_MODULE} is missing (apt-get install libnginx-mod-http-uploadprogress)"
    return None


#: Distinct rising values a row needs to say "progress while it arrives".
STEPS = 5


def require(server: str) -> None:
    """Fail under CI, skip elsewhere, when ``server`` cannot run here."""
    reason = missing(server)
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{server} is required under CI: {reason}")
    pytest.skip(reason)


def settings(**values: Any) -> dict[str, str]:
    """The environment that gives ``tests.plain_app`` these settings."""
    return {"UPLOAD_PROGRESS_SETTINGS": json.dumps(
        {f"upload_progress.{name}": value for name, value in values.items()})}


@contextlib.contextmanager
def _run(name: str, argv: list[str], port: int, env: dict[str, str] | None = None,
         python_path: Path = REPO_ROOT) -> Iterator[Server]:
    """Start ``argv``, which listens on ``port`` and imports the app from
    ``python_path``; yield it once it answers."""
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(python_path), child_env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=child_env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        server = Server(name, port, process, log)
        try:
            _wait_until_ready(server)
            yield server
        except Exception as exc:
            exc.add_note(f"--- {name} output ---\n{server.output()}")
            raise
        finally:
            _stop(process)


def gunicorn_sync(app: str, *, workers: int, env: dict[str, str] | None = None
                  ) -> contextlib.AbstractContextManager[Server]:
    """gunicorn with its default (sync) worker: one request at a time per
    worker process."""
    port = free_port()
    return _run("gunicorn sync", [
        sys.executable, "-m", "gunicorn", "--workers", str(workers),
        "--bind", f"{HOST}:{port}", "--no-control-socket", "--timeout", "60",
        "--graceful-timeout", "2", app], port, env)


def uwsgi(app: str, *options: str, env: dict[str, str] | None = None
          ) -> contextlib.AbstractContextManager[Server]:
    """uWSGI serving HTTP itself (``--http-socket``), one process with four
    threads, plus ``options`` (e.g. ``--post-buffering 8192``)."""
    port = free_port()
    module, _, callable_ = app.partition(":")
    return _run("uwsgi", [
        str(BIN / "uwsgi"), "--http-socket", f"{HOST}:{port}",
        "--home", sys.prefix, "--pythonpath", str(REPO_ROOT),
        "--module", module, "--callable", callable_, "--need-app",
        "--master", "--processes", "1", "--threads", "4", "--die-on-term",
        "--disable-logging", *options], port, env)


@contextlib.contextmanager
def mod_wsgi_express(module: str, *options: str, env: dict[str, str] | None = None
                     ) -> Iterator[Server]:
    """Apache with mod_wsgi in daemon mode (``mod_wsgi-express``), serving
    ``module``'s ``app`` (``--application-type module``), plus ``options``
    (e.g. ``--limit-request-body N``), from an environment its daemon can
    read (``tests/e2e/mod_wsgi_env.py``; ``module`` must be one of its
    ``APP_MODULES``)."""
    served = mod_wsgi_env.environment()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mod_wsgi-") as root:
        os.chmod(root, 0o755)  # the daemon reads its files
        daemon = mod_wsgi_env.DAEMON_USER
        user = ["--user", daemon[0], "--group", daemon[1]] if os.geteuid() == 0 else []
        argv = [str(served.express), "start-server",
                "--application-type", "module", module, "--callable-object", "app",
                "--host", HOST, "--port", str(port), "--server-root", f"{root}/server",
                "--python-path", str(served.python_path),
                "--working-directory", str(served.python_path),
                "--threads", "4", "--locale", "C.UTF-8", "--log-to-terminal", *user, *options]
        with _run("mod_wsgi", argv, port, env, served.python_path) as server:
            yield server


NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log stderr warn;
load_module {module};
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 0;
    proxy_http_version 1.1;
    upload_progress uploads 1m;
    server {{
        listen {host}:{port};
        location /buffered/ {{
            proxy_pass http://{host}:{upstream}/;
            track_uploads uploads 30s;
        }}
        location /streamed/ {{
            proxy_pass http://{host}:{upstream}/;
            proxy_request_buffering off;
            track_uploads uploads 30s;
        }}
        location ^~ /progress {{
            upload_progress_json_output;
            report_uploads uploads;
        }}
        location / {{ proxy_pass http://{host}:{upstream}; }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(upstream: int) -> Iterator[Server]:
    """nginx with its upload-progress module in front of ``upstream``:
    ``/buffered/`` passes bodies on as nginx does by default (once whole),
    ``/streamed/`` with ``proxy_request_buffering off``; the module tracks
    both and reports at ``/progress``; everything else (the add-on's
    report view) passes through."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nginx-") as tmp:
        os.chmod(tmp, 0o755)  # its workers run as nobody under root
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, module=NGINX_MODULE, host=HOST,
                                          port=port, upstream=upstream))
        argv = [shutil.which("nginx") or "nginx", "-p", f"{tmp}/", "-c", str(conf),
                "-e", "stderr"]
        with _run("nginx", argv, port) as server:
            yield server
