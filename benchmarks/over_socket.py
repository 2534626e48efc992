"""Rows measured over loopback sockets, against child servers: 3, 5b, 6.

gunicorn runs through the e2e tests' harness (``tests.e2e.servers.serve``:
its own process group, always killed on exit); nginx and redis-server are
run here the same way, as non-daemon children with their own files in a
temporary directory, on free 127.0.0.1 ports.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import MIB, Row, bounded_wait, interleave, median_ratio, percentile, rate, seconds
from tests.e2e.client import get_json, read_response, slow_upload
from tests.e2e.servers import HOST, Server, free_port, serve

BENCH_DIR = Path(__file__).resolve().parent
NGINX_MODULE = Path("/usr/lib/nginx/modules/ngx_http_uploadprogress_module.so")
THREADS = 80  # above 50 uploads + 20 polls in flight
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


@dataclass
class SocketSizes:
    upload: int = 1024 * MIB
    rounds: int = 5
    rss_rounds: int = 2
    uploads: int = 50
    pollers: int = 20
    slow_size: int = 4 * MIB
    slow_chunk: int = 64 * 1024
    slow_delay: float = 0.05


QUICK = SocketSizes(upload=64 * MIB, rounds=2, rss_rounds=1, slow_size=1 * MIB)


def gunicorn(tracked: bool, settings: dict[str, str] | None = None
             ) -> contextlib.AbstractContextManager[Server]:
    """The benchmark app on gunicorn gthread, one worker, ``THREADS`` threads."""
    return serve("gunicorn", "bench_app:app", threads=THREADS, env={
        "BENCH_SERVE": "1", "BENCH_TRACKED": "1" if tracked else "0",
        "BENCH_SETTINGS": json.dumps(settings or {}), "PYTHONPATH": str(BENCH_DIR)})


@contextlib.contextmanager
def child(argv: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` in its own process group until it listens on ``port``;
    kill the group on exit, whatever happens."""
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if not bounded_wait(lambda: process.poll() is not None or _listens(port),
                            START_TIMEOUT) or process.poll() is not None:
            raise RuntimeError(f"{argv[0]} did not start:\n{log.read_text(errors='replace')}")
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)


def _listens(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
load_module {module};
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_http_version 1.1;
    proxy_read_timeout 120s;
    proxy_send_timeout 120s;
    upload_progress zone 1m;
    server {{
        listen {host}:{port};
        location /plain/ {{ proxy_pass http://{host}:{untracked}/; }}
        location /addon/ {{ proxy_pass http://{host}:{tracked}/; }}
        location /module/ {{
            proxy_pass http://{host}:{untracked}/;
            track_uploads zone 30s;
        }}
        location ^~ /progress {{
            upload_progress_json_output;
            report_uploads zone;
        }}
    }}
}}
"""


def nginx_missing() -> str | None:
    """Why nginx with the upload-progress module cannot run here, or None."""
    if shutil.which("nginx") is None:
        return "nginx is not installed (Debian: apt-get install nginx)"
    if not NGINX_MODULE.exists():
        return (f"{NGINX_MODULE} is missing (Debian: apt-get install "
                "libnginx-mod-http-uploadprogress)")
    return None


@contextlib.contextmanager
def nginx(untracked: int, tracked: int, tmp: str) -> Iterator[tuple[int, int]]:
    """nginx in front of both gunicorns: ``/plain/`` and ``/module/`` (its
    upload-progress module tracking) go to the untracked app, ``/addon/``
    to the tracked one; bodies are not buffered. Yields its port and pid."""
    port = free_port()
    prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=tmp))
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=prefix, module=NGINX_MODULE, host=HOST, port=port,
                                      untracked=untracked, tracked=tracked))
    argv = [shutil.which("nginx") or "nginx", "-p", f"{prefix}/", "-c", str(conf),
            "-e", str(prefix / "error.log")]
    with child(argv, port, prefix / "stdout.log") as process:
        yield port, process.pid


@contextlib.contextmanager
def redis_server(tmp: str) -> Iterator[str | None]:
    """A redis-server of our own; yields its URL, or None if there is none."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--dir", tmp]
    with child(argv, port, Path(tmp) / "redis.log"):
        yield f"redis://{HOST}:{port}/0"


def send(port: int, path: str, size: int, headers: dict[str, str] | None = None) -> float:
    """POST ``size`` bytes as fast as loopback takes them; return the
    seconds until the whole response came back. The app must answer with
    the byte count it read."""
    block = memoryview(b"z" * MIB)
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}:{port}", f"Content-Length: {size}",
             "Connection: close"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    start = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=60) as sock:
        sock.sendall(head)
        for _ in range(size // MIB):
            sock.sendall(block)
        sock.sendall(block[: size % MIB])
        with sock.makefile("rb") as stream:
            response = read_response(stream)
    elapsed = time.perf_counter() - start
    if response.status != 200 or response.body != str(size).encode():
        raise RuntimeError(f"POST {path}: {response.status} {response.body[:200]!r}")
    return elapsed


def worker_pid(server: Server) -> int:
    """The pid of gunicorn's (one) worker process."""
    if not bounded_wait(lambda: bool(children(server.process.pid)), 5):
        raise RuntimeError("gunicorn has no worker")
    return children(server.process.pid)[0]


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def peak_rss_growth(pid: int, action: Callable[[], object]) -> int:
    """How far the RSS of ``pid`` rose above where it was while ``action`` ran."""
    base = rss(pid)
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, rss(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        action()
    finally:
        done.set()
        sampler.join(5)
    return max(peak, rss(pid)) - base


def socket_rows(sizes: SocketSizes, tmp: str) -> list[Row]:
    """Rows 3, 5b and 6, against one untracked and one tracked gunicorn
    (and nginx in front of both, where it is installed)."""
    with contextlib.ExitStack() as stack:
        plain = stack.enter_context(gunicorn(False))
        tracked = stack.enter_context(gunicorn(True))
        missing = nginx_missing()
        proxy = None if missing else stack.enter_context(nginx(plain.port, tracked.port, tmp))
        rows = upload_rows(sizes, plain, tracked, proxy, missing)
        rows.append(concurrency_row(sizes, tracked))
    rows.append(rss_row(sizes))
    return rows


def upload_rows(sizes: SocketSizes, plain: Server, tracked: Server,
                proxy: tuple[int, int] | None, missing: str | None) -> list[Row]:
    """Rows 3a and 3b. Beside wall time (noisy here: two cores shared by
    client, servers and proxy), the CPU seconds the servers spent per upload."""
    size = sizes.upload
    label = f"{size // MIB} MiB" if size < 1024 * MIB else f"{size // (1024 * MIB)} GiB"
    counter = iter(range(10**9))
    cpu: dict[str, list[float]] = {}
    plain_pids, tracked_pids = [worker_pid(plain)], [worker_pid(tracked)]

    def measured(name: str, pids: list[int], port: int, path: str,
                 headers: dict[str, str] | None = None) -> Callable[[], float]:
        def upload() -> float:
            number = next(counter)
            before = cpu_seconds(pids)
            elapsed = send(port, path.format(number), size,
                           {k: v.format(number) for k, v in (headers or {}).items()})
            cpu.setdefault(name, []).append(cpu_seconds(pids) - before)
            return elapsed
        return upload

    cases = {
        "untracked": measured("untracked", plain_pids, plain.port, "/drain"),
        "A/A": measured("A/A", plain_pids, plain.port, "/drain"),
        "tracked": measured("tracked", tracked_pids, tracked.port, "/drain?X-Progress-ID=d{}"),
    }
    if proxy is not None:
        port, nginx_pid = proxy
        nginx_pids = children(nginx_pid)
        cases.update({
            "nginx": measured("nginx", nginx_pids + plain_pids, port, "/plain/drain"),
            "nginx+addon": measured("nginx+addon", nginx_pids + tracked_pids, port,
                                    "/addon/drain?X-Progress-ID=a{}"),
            "nginx+module": measured("nginx+module", nginx_pids + plain_pids, port,
                                     "/module/drain", {"X-Progress-ID": "m{}"}),
        })
    module_seen = _module_sees(proxy[0], size) if proxy is not None else ""
    times = interleave(cases, sizes.rounds)
    med = {name: statistics.median(values) for name, values in times.items()}

    def cpu_note(base: str, *names: str) -> str:
        figures = ", ".join(f"{name} {statistics.median(cpu[name]):.2f} s "
                            f"({median_ratio(cpu, name, base):.2f}x)" for name in names)
        return f"server CPU per upload: {base} {statistics.median(cpu[base]):.2f} s, {figures}"

    ratio = median_ratio(times, "tracked", "untracked")
    control = abs(median_ratio(times, "A/A", "untracked") - 1)
    rows = [Row("3a", f"{label} upload over loopback to gunicorn gthread",
                rate(size, med["untracked"]), rate(size, med["tracked"]), "",
                f"{ratio:.3f}", "", "<= 1.02", ratio <= 1.02,
                f"A/A (untracked twice) {median_ratio(times, 'A/A', 'untracked'):.3f}; "
                + cpu_note("untracked", "A/A", "tracked")
                + f"; {sizes.rounds} rounds; client and servers share {os.cpu_count()} cores",
                control)]
    if proxy is None:
        rows.append(Row("3b", f"{label} upload behind nginx", note=f"not measured: {missing}"))
        return rows
    ratio = median_ratio(times, "nginx+addon", "nginx")
    rows.append(Row("3b", f"{label} upload, nginx (proxy_request_buffering off) -> gunicorn",
                    rate(size, med["nginx"]), rate(size, med["nginx+addon"]),
                    f"nginx module: {rate(size, med['nginx+module'])}",
                    f"{ratio:.3f}", f"{median_ratio(times, 'nginx+module', 'nginx'):.3f}",
                    "<= 1.02", ratio <= 1.02,
                    "peer: nginx's upload-progress module tracking instead of the add-on; "
                    + cpu_note("nginx", "nginx+addon", "nginx+module")
                    + f" (nginx + gunicorn); {module_seen}", control))
    return rows


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes ``pids`` have used so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _module_sees(proxy: int, size: int) -> str:
    """Whether nginx's module reports progress while a body streams through
    unbuffered: poll it during one upload."""
    seen: list[int] = []
    states: set[str] = set()
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.05):
            with contextlib.suppress(OSError, ValueError):
                _, _, answer = get_json(proxy, "/progress", {"X-Progress-ID": "watched"}, timeout=5)
                states.add(str(answer.get("state")))
                seen.append(int(answer.get("received", 0)))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        send(proxy, "/module/drain", size, {"X-Progress-ID": "watched"})
    finally:
        done.set()
        poller.join(10)
    _, _, final = get_json(proxy, "/progress", {"X-Progress-ID": "watched"})
    mid = [r for r in seen if 0 < r < size]
    return (f"module mid-upload: {len(mid)} of {len(seen)} polls saw 0 < received < size "
            f"(largest seen {max(seen, default=0) // 1024} KiB of {size // MIB} MiB), "
            f"states {sorted(states)}, after: {final.get('state')}")


def rss_row(sizes: SocketSizes) -> Row:
    """Row 5b: a server's peak RSS growth while a large tracked body is
    streamed to a temporary file, against an untracked one. Each round
    starts fresh servers with the same history (one small upload), since
    glibc's allocator keeps or returns freed buffers depending on what the
    process did before."""
    size = sizes.upload
    growth: dict[str, list[float]] = {"untracked": [], "tracked": []}
    for round_ in range(sizes.rss_rounds):
        for name in growth:
            query = f"?X-Progress-ID=rss{round_}" if name == "tracked" else ""
            with gunicorn(name == "tracked") as server:
                send(server.port, "/to-disk?X-Progress-ID=warm-up", 4 * MIB)  # imports
                growth[name].append(peak_rss_growth(
                    worker_pid(server), lambda: send(server.port, f"/to-disk{query}", size)) / MIB)
    med = {name: statistics.median(values) for name, values in growth.items()}
    return Row("5b", f"server peak RSS growth, {size // MIB} MiB upload streamed to disk",
               f"{med['untracked']:.2f} MiB", f"{med['tracked']:.2f} MiB",
               target="<= 2 MiB", met=med["tracked"] <= 2,
               note=f"the add-on's share: {med['tracked'] - med['untracked']:+.2f} MiB; "
                    "gunicorn worker VmRSS sampled every 5 ms, fresh servers each round; "
                    f"median of {sizes.rss_rounds}, each round: " + ", ".join(
                        f"{name} {' '.join(f'{v:.2f}' for v in values)}"
                        for name, values in growth.items()))


def concurrency_row(sizes: SocketSizes, server: Server) -> Row:
    """Row 6: many slow uploads while clients poll; nothing may be lost."""
    ids = [f"c{i}-{time.time_ns()}" for i in range(sizes.uploads)]
    latencies: list[float] = []
    errors: list[str] = []
    done = threading.Event()

    def upload(upload_id: str) -> None:
        try:
            response = slow_upload(server.url, f"/drain?X-Progress-ID={upload_id}",
                                   size=sizes.slow_size, chunk=sizes.slow_chunk,
                                   delay=sizes.slow_delay, headers={"X-Owner": "me"})
            if response is None or response.status != 200:
                errors.append(f"{upload_id}: {response}")
        except Exception as exc:
            errors.append(f"{upload_id}: {exc!r}")

    def poll(index: int) -> None:
        turn = index
        while not done.is_set():
            start = time.perf_counter()
            try:
                status, _, _ = get_json(server.url, f"/upload-progress?X-Progress-ID="
                                        f"{ids[turn % len(ids)]}", {"X-Owner": "me"})
                if status != 200:
                    errors.append(f"poll: {status}")
            except Exception as exc:
                errors.append(f"poll: {exc!r}")
            elapsed = time.perf_counter() - start
            latencies.append(elapsed)
            turn += 1
            done.wait(max(0.0, 0.25 - elapsed))

    uploaders = [threading.Thread(target=upload, args=(i,), daemon=True) for i in ids]
    pollers = [threading.Thread(target=poll, args=(i,), daemon=True) for i in range(sizes.pollers)]
    budget = 60 + sizes.slow_size / sizes.slow_chunk * sizes.slow_delay * 3
    start = time.perf_counter()
    for thread in pollers + uploaders:
        thread.start()
    deadline = time.monotonic() + budget
    for thread in uploaders:
        thread.join(max(0.0, deadline - time.monotonic()))
    took = time.perf_counter() - start
    done.set()
    for thread in pollers:
        thread.join(10)
    lost = []
    for upload_id in ids:
        _, _, answer = get_json(server.url, f"/upload-progress?X-Progress-ID={upload_id}",
                                {"X-Owner": "me"})
        if answer.get("state") != "done" or answer.get("received") != sizes.slow_size:
            lost.append(f"{upload_id}: {answer.get('state')} {answer.get('received')}")
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    ok = p99 < 0.1 and not lost and not errors and not any(t.is_alive() for t in uploaders)
    return Row("6", f"{sizes.uploads} slow uploads of {sizes.slow_size // 1024} KiB, "
                    f"{sizes.pollers} clients polling at 4 Hz",
               tracked=f"p50 {seconds(p50)}, p99 {seconds(p99)}",
               target="p99 < 100 ms, none lost", met=ok,
               note=f"{len(latencies)} polls in {took:.1f} s; "
                    f"{sizes.uploads - len(lost)}/{sizes.uploads} ended received == size"
                    + (f"; lost: {lost[:3]}" if lost else "")
                    + (f"; errors: {errors[:3]}" if errors else ""))
