"""What the waitress runner costs: CPU of a server process per big upload.

Three servers of the same app (a Pyramid app with the add-on, the memory
store, a view that reads the body in 64 KiB pieces) run side by side, each
in its own process on a loopback port: ``plain`` and ``plain2`` with
``waitress.serve``, ``runner`` with the add-on's runner
(``pyramid_upload_progress.waitress_runner.serve``). Each round sends one
upload of ``--size`` MiB with an upload id, as fast as loopback takes it,
to each server, in a rotated order; the CPU time the server process spent
on it (user + system, from ``/proc``) and the wall time are noted. The
figures are the median over rounds of each server's figure divided by
``plain``'s in the same round: ``runner`` is the runner's cost,
``plain2`` (plain against plain: A/A) the noise of the measure.

    .venv/bin/python benchmarks/waitress_runner_cost.py            # 256 MiB, 7 rounds
    .venv/bin/python benchmarks/waitress_runner_cost.py --size 32 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PIECE = 1024 * 1024
SERVERS = ("plain", "runner", "plain2")


def make_app():
    from pyramid.config import Configurator
    from pyramid.response import Response

    def upload(request):
        read = 0
        for chunk in iter(lambda: request.body_file.read(65536), b""):
            read += len(chunk)
        return Response(f"{read}\n")

    with Configurator(settings={"upload_progress.threshold": "0"}) as config:
        config.include("pyramid_upload_progress")
        config.add_route("upload", "/upload")
        config.add_view(upload, route_name="upload", request_method="POST")
        return config.make_wsgi_app()


def serve(kind: str, port: int) -> None:
    """The child: serve the app on ``port`` with plain waitress or the runner."""
    if kind == "runner":
        from pyramid_upload_progress.waitress_runner import serve as run
    else:
        from waitress import serve as run
    run(make_app(), listen=f"{HOST}:{port}", threads=4, _quiet=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def upload(port: int, size: int, upload_id: str) -> None:
    body = b"x" * PIECE
    with socket.create_connection((HOST, port), timeout=60) as sock:
        sock.sendall(f"POST /upload?X-Progress-ID={upload_id} HTTP/1.1\r\nHost: {HOST}\r\n"
                     f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode())
        for _ in range(size // PIECE):
            sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    if not answer.startswith(b"HTTP/1.1 200") or f"\r\n{size}\n".encode() not in answer:
        raise RuntimeError(f"unexpected answer: {answer[:200]!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_ready(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on {port} exited")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="MiB per upload")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    size = args.size * PIECE
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ports = {kind: free_port() for kind in SERVERS}
    processes = {kind: subprocess.Popen(
        [sys.executable, __file__, "--serve", "runner" if kind == "runner" else "plain",
         str(ports[kind])], env=env, stdin=subprocess.DEVNULL) for kind in SERVERS}
    try:
        for kind in SERVERS:
            wait_ready(ports[kind], processes[kind])
        for kind in SERVERS:  # warm up: imports, first request
            upload(ports[kind], PIECE, "warmup")
        cpu: dict[str, list[float]] = {kind: [] for kind in SERVERS}
        wall: dict[str, list[float]] = {kind: [] for kind in SERVERS}
        for round_ in range(args.rounds):
            order = SERVERS[round_ % 3:] + SERVERS[:round_ % 3]
            for kind in order:
                pid = processes[kind].pid
                before, began = cpu_seconds(pid), time.perf_counter()
                upload(ports[kind], size, f"r{round_}")
                wall[kind].append(time.perf_counter() - began)
                time.sleep(0.2)  # the record's end, after the response
                cpu[kind].append(cpu_seconds(pid) - before)
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(10)
    print(f"{args.size} MiB per upload over loopback, {args.rounds} rounds; "
          "median of per-round ratios to plain waitress")
    print(f"{'server':8} {'CPU s (median)':>15} {'CPU ratio':>10} {'wall s (median)':>16} "
          f"{'wall ratio':>11}")
    for kind in SERVERS:
        cpu_ratio = statistics.median(c / p for c, p in zip(cpu[kind], cpu["plain"]))
        wall_ratio = statistics.median(w / p for w, p in zip(wall[kind], wall["plain"]))
        label = {"plain": "plain", "runner": "runner", "plain2": "plain (A/A)"}[kind]
        print(f"{label:11} {statistics.median(cpu[kind]):12.3f} {cpu_ratio:10.3f} "
              f"{statistics.median(wall[kind]):16.3f} {wall_ratio:11.3f}")


if __name__ == "__main__":
    main()
