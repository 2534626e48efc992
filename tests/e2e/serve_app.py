"""Serve a WSGI app with cheroot, waitress or the add-on's waitress runner
on 127.0.0.1, for e2e tests.

gunicorn has its own command line; the others do not, so
``tests.e2e.servers.serve`` starts them through this script with the
tests' interpreter::

    python -m tests.e2e.serve_app --server cheroot --port 8000 \\
        --app tests.e2e.echo_app:app --threads 16

The app is imported before the server binds, so a broken app makes the
process exit before it listens, with the traceback on stderr.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

HOST = "127.0.0.1"
#: waitress refuses a body of its default cap (1 GiB) or more with a 413;
#: the benchmarks send 1 GiB.
MAX_BODY = 1 << 40


def load_app(spec: str) -> Callable[..., Any]:
    """Import a 'module:attribute' spec and return the attribute."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected 'module:attribute', got {spec!r}")
    return getattr(importlib.import_module(module_name), attribute)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("cheroot", "waitress", "waitress-runner"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app", required=True, help="module:attribute")
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)

    app = load_app(args.app)
    if args.server == "cheroot":
        from cheroot import wsgi

        server = wsgi.Server((HOST, args.port), app, numthreads=args.threads)
        print(f"cheroot serving on http://{HOST}:{args.port}", flush=True)
        server.safe_start()
    else:
        if args.server == "waitress":
            from waitress import serve
        else:
            from pyramid_upload_progress.waitress_runner import serve
        serve(app, host=HOST, port=args.port, threads=args.threads, max_request_body_size=MAX_BODY)


if __name__ == "__main__":
    main()
