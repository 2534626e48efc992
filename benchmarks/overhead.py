"""What tracking costs: the same requests through an app with and without
the add-on, measured side by side in one run, as ratios.

    .venv/bin/python benchmarks/overhead.py [--rounds 7]

Each case calls the WSGI app directly with a non-seekable input, as a
streaming server hands it over; the figures are medians of interleaved
rounds, so that the machine's noise falls on both sides alike. The last
column is the peak memory traced while one request runs (the body is never
buffered: it should stay far below the body's size).
"""
from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

from pyramid.config import Configurator
from pyramid.response import Response

MIB = 1024 * 1024


class ServerInput:
    """A non-seekable input that makes its bytes as they are read."""

    def __init__(self, size: int) -> None:
        self._left = size

    def read(self, size: int = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        self._left -= size
        return b"x" * size


def hello(request):
    return Response(b"hello")


def consume(request):
    body = request.body_file
    while body.read(65536):
        pass
    return Response(b"ok")


def make_app(tracked: bool):
    with Configurator() as config:
        if tracked:
            config.include("pyramid_upload_progress")
        config.add_route("hello", "/hello")
        config.add_view(hello, route_name="hello")
        config.add_route("upload", "/upload")
        config.add_view(consume, route_name="upload")
        return config.make_wsgi_app()


def environ(path: str, size: int) -> dict:
    env = {
        "REQUEST_METHOD": "POST" if size else "GET", "PATH_INFO": path,
        "QUERY_STRING": "", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": ServerInput(size),
    }
    if size:
        env["CONTENT_LENGTH"] = str(size)
    return env


def call(app, path: str, size: int) -> None:
    app_iter = app(environ(path, size), lambda status, headers, exc_info=None: None)
    for _ in app_iter:
        pass
    getattr(app_iter, "close", lambda: None)()


def timed(app, path: str, size: int, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        call(app, path, size)
    return (time.perf_counter() - start) / repeat


def peak_memory(app, path: str, size: int) -> int:
    tracemalloc.start()
    call(app, path, size)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


CASES = [
    ("GET without a body", "/hello", 0, 3000),
    ("POST 10 KiB (below threshold)", "/upload", 10 * 1024, 1000),
    ("POST 4 MiB (tracked)", "/upload", 4 * MIB, 10),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    plain, tracked = make_app(False), make_app(True)
    print(f"{'case':32} {'plain':>12} {'add-on':>12} {'ratio':>6} {'peak memory':>12}")
    for name, path, size, repeat in CASES:
        call(plain, path, size)
        call(tracked, path, size)
        plain_times, tracked_times = [], []
        for _ in range(rounds):
            plain_times.append(timed(plain, path, size, repeat))
            tracked_times.append(timed(tracked, path, size, repeat))
        a, b = statistics.median(plain_times), statistics.median(tracked_times)
        peak = peak_memory(tracked, path, size)
        print(f"{name:32} {a * 1e6:10.1f}us {b * 1e6:10.1f}us {b / a:6.2f} "
              f"{peak / 1024:9.0f} KiB")


if __name__ == "__main__":
    main()
