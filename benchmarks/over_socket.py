"""Rows measured over loopback sockets, against child servers: 3, 5b, 6.

gunicorn and waitress (plain, or the add-on's runner) run through the e2e
tests' harness (``tests.e2e.servers.serve``:
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness import MIB, Row, bounded_wait, median_ratio, percentile, rate, rotate, seconds
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


#: glibc's allocator settings every server of row 3 starts with: a fixed
#: mmap threshold (which turns off glibc's dynamic one, set by each process's
#: own history) well above gunicorn's 1 MiB read-ahead, and a trim threshold
#: above it, so that no server's read-ahead copies are trimmed and faulted
#: in again while another's are not (benchmarks/README.md, "3a/3b").
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=8388608"
ALLOCATOR = {"GLIBC_TUNABLES": MALLOC_TUNABLES}
WARM_UP = 4 * MIB  # one upload before any measured one: imports, first buffers


def bench_env(tracked: bool, settings: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that makes a server serve ``bench_app:app``."""
    return {"BENCH_SERVE": "1", "BENCH_TRACKED": "1" if tracked else "0",
            "BENCH_SETTINGS": json.dumps(settings or {}), "PYTHONPATH": str(BENCH_DIR)}


def gunicorn(tracked: bool, settings: dict[str, str] | None = None,
             env: Mapping[str, str] | None = None) -> contextlib.AbstractContextManager[Server]:
    """The benchmark app on gunicorn gthread, one worker, ``THREADS``
    threads; ``env`` is added to its environment."""
    return serve("gunicorn", "bench_app:app", threads=THREADS,
                 env={**bench_env(tracked, settings), **(env or {})})


def waitress(tracked: bool, env: Mapping[str, str]) -> contextlib.AbstractContextManager[Server]:
    """The benchmark app on waitress, ``THREADS`` threads, one process: plain
    waitress serving the untracked app, the add-on's runner the tracked one
    (which it tracks while waitress buffers the body, before the app runs);
    ``env`` is added to its environment."""
    return serve("waitress-runner" if tracked else "waitress", "bench_app:app",
                 threads=THREADS, env={**bench_env(tracked), **env})


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
        location /plain/ {{ proxy_pass http://{host}:{upstream}/; }}
        location /module/ {{
            proxy_pass http://{host}:{upstream}/;
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
def nginx(upstream: int, tmp: str) -> Iterator[tuple[int, int]]:
    """nginx in front of the server on port ``upstream``: ``/plain/`` passes
    requests on, ``/module/`` too with its upload-progress module tracking;
    bodies are not buffered. Yields its port and pid."""
    port = free_port()
    prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=tmp))
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=prefix, module=NGINX_MODULE, host=HOST, port=port,
                                      upstream=upstream))
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


@dataclass(frozen=True)
class ServerPair:
    """One server as row 3 compares it: the untracked app against the
    tracked one. ``start(tracked, env)`` runs the app (``env`` added to the
    server's environment: the allocator settings); ``worker(server)`` is the
    pid of the process that runs the app, whose CPU, faults and RSS count."""

    row: str
    server: str
    start: Callable[[bool, Mapping[str, str]], contextlib.AbstractContextManager[Server]]
    worker: Callable[[Server], int]


#: Row 3's servers, one row each; row 3b puts nginx in front of the first.
#: A server added here gets its own row, measured as 3a is.
SERVER_PAIRS = (
    ServerPair("3a", "gunicorn gthread",
               lambda tracked, env: gunicorn(tracked, env=env), worker_pid),
    ServerPair("3c", "waitress (tracked: the add-on's runner)", waitress,
               lambda server: server.process.pid),  # one process, no worker child
)


@dataclass(frozen=True)
class Endpoint:
    """Where one case's uploads go, and the processes they are charged to."""

    port: int
    worker: int
    """The process that runs the app: its CPU, minor faults and RSS."""
    proxy: tuple[int, ...] = ()
    """nginx's worker processes in front of it: their CPU counts too."""


@dataclass(frozen=True)
class Upload:
    """One measurement: one upload, or several sent at once."""

    wall: float
    cpu: float
    """CPU seconds of the worker (and of the proxy, if any) during it."""
    faults: int
    """The worker's minor page faults during it."""
    rss: int
    """The worker's RSS once it was answered."""
    peak: int
    """The worker's highest RSS seen while it ran (sampled every 5 ms), or 0."""


def stat(pid: int) -> tuple[float, int]:
    """User + system CPU seconds and minor page faults of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # after the command: state, ppid, ..., minflt (7), ..., utime (11), stime (12)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[7])


def measure(end: Endpoint, requests: Sequence[tuple[str, dict[str, str] | None]], size: int,
            sample_rss: bool = False) -> Upload:
    """Send an upload of ``size`` bytes to ``end`` for each (path, headers)
    of ``requests``, all at once, and measure them together."""
    pids = (end.worker, *end.proxy)
    cpu_before = sum(stat(pid)[0] for pid in pids)
    faults_before = stat(end.worker)[1]
    base = rss(end.worker)
    start = time.perf_counter()

    def action() -> None:
        with ThreadPoolExecutor(len(requests)) as pool:
            list(pool.map(lambda request: send(end.port, request[0], size, request[1]),
                          requests))

    if sample_rss:
        peak = base + peak_rss_growth(end.worker, action)
    else:
        action()
        peak = 0
    return Upload(time.perf_counter() - start, sum(stat(pid)[0] for pid in pids) - cpu_before,
                  stat(end.worker)[1] - faults_before, rss(end.worker), peak)


@contextlib.contextmanager
def endpoint(pair: ServerPair, tracked: bool, env: Mapping[str, str], tmp: str | None = None,
             via_nginx: bool = False) -> Iterator[Endpoint]:
    """A fresh server of ``pair`` (behind a fresh nginx if ``via_nginx``),
    warmed up by one small upload so that every case starts from the same
    history."""
    with pair.start(tracked, env) as server:
        worker = pair.worker(server)
        send(server.port, "/drain?X-Progress-ID=warm-up", WARM_UP)
        if not via_nginx:
            yield Endpoint(server.port, worker)
            return
        assert tmp is not None
        with nginx(server.port, tmp) as (port, pid):
            yield Endpoint(port, worker, tuple(children(pid)))


@dataclass(frozen=True)
class Case:
    """One column of row 3: which server, tracked or not, reached how."""

    tracked: bool
    path: str
    """The request path; ``{}`` is replaced by the upload's number."""
    via_nginx: bool = False
    header: str = ""
    """An ``X-Progress-ID`` header of this value (``{}`` as in ``path``)."""
    env: Mapping[str, str] = field(default_factory=lambda: ALLOCATOR)
    """Added to the server's environment: the allocator settings."""
    at_once: int = 1
    """How many uploads one measurement sends at once."""


def run_cases(pair: ServerPair, cases: dict[str, Case], sizes: SocketSizes, tmp: str,
              sample_rss: bool = False) -> dict[str, list[Upload]]:
    """Each case on a server of its own, started fresh, ``sizes.rounds``
    measurements each, the cases taking turns."""
    counter = iter(range(10**9))
    with contextlib.ExitStack() as stack:
        ends = {name: stack.enter_context(
            endpoint(pair, case.tracked, case.env, tmp, case.via_nginx))
                for name, case in cases.items()}

        def upload(name: str) -> Callable[[], Upload]:
            case = cases[name]

            def run() -> Upload:
                numbers = [f"{next(counter)}" for _ in range(case.at_once)]
                return measure(ends[name], [
                    (case.path.format(number),
                     {"X-Progress-ID": case.header.format(number)} if case.header else None)
                    for number in numbers], sizes.upload, sample_rss)
            return run

        return rotate({name: upload(name) for name in cases}, sizes.rounds)


def socket_rows(sizes: SocketSizes, tmp: str) -> list[Row]:
    """Rows 3, 5b and 6."""
    rows = [pair_row(pair, sizes, tmp) for pair in SERVER_PAIRS]
    missing = nginx_missing()
    rows.append(nginx_row(sizes, tmp, rows[0].noise) if missing is None else
                Row("3b", f"{size_label(sizes.upload)} upload behind nginx",
                    note=f"not measured: {missing}"))
    with gunicorn(True) as tracked:
        rows.append(concurrency_row(sizes, tracked))
    rows.append(rss_row(sizes))
    return rows


def size_label(size: int) -> str:
    return f"{size // MIB} MiB" if size < 1024 * MIB else f"{size // (1024 * MIB)} GiB"


def usage_note(uploads: dict[str, list[Upload]], base: str, *names: str) -> str:
    """CPU seconds and minor faults per upload, medians, each against ``base``."""
    cpu = {name: [upload.cpu for upload in values] for name, values in uploads.items()}

    def figures(name: str) -> str:
        ratio = "" if name == base else f" ({median_ratio(cpu, name, base):.2f}x)"
        faults = statistics.median(upload.faults for upload in uploads[name])
        return f"{name} {statistics.median(cpu[name]):.2f} s{ratio}, {faults:,.0f} faults"

    return "per upload, CPU and minor page faults: " + "; ".join(map(figures, (base, *names)))


def pair_row(pair: ServerPair, sizes: SocketSizes, tmp: str) -> Row:
    """Row 3a (and any other of ``SERVER_PAIRS``): untracked, A/A, tracked.
    Beside wall time (noisy here: two cores shared by client and servers),
    the worker's CPU seconds and minor page faults per upload."""
    uploads = run_cases(pair, {
        "untracked": Case(False, "/drain"),
        "A/A": Case(False, "/drain"),
        "tracked": Case(True, "/drain?X-Progress-ID=d{}"),
    }, sizes, tmp)
    times = {name: [upload.wall for upload in values] for name, values in uploads.items()}
    ratio = median_ratio(times, "tracked", "untracked")
    control = median_ratio(times, "A/A", "untracked")
    return Row(pair.row, f"{size_label(sizes.upload)} upload over loopback to {pair.server}",
               rate(sizes.upload, statistics.median(times["untracked"])),
               rate(sizes.upload, statistics.median(times["tracked"])), "",
               f"{ratio:.3f}", "", "<= 1.02", ratio <= 1.02,
               f"A/A (untracked twice) {control:.3f}; "
               + usage_note(uploads, "untracked", "A/A", "tracked") + " (the worker's); "
               f"{sizes.rounds} rounds; client and servers share {os.cpu_count()} cores",
               abs(control - 1))


def nginx_row(sizes: SocketSizes, tmp: str, noise: float | None) -> Row:
    """Row 3b: the first of ``SERVER_PAIRS`` behind nginx, untracked, tracked
    by the add-on, and tracked by nginx's upload-progress module instead."""
    pair = SERVER_PAIRS[0]
    uploads = run_cases(pair, {
        "nginx": Case(False, "/plain/drain", via_nginx=True),
        "nginx+addon": Case(True, "/plain/drain?X-Progress-ID=a{}", via_nginx=True),
        "nginx+module": Case(False, "/module/drain", via_nginx=True, header="m{}"),
    }, sizes, tmp)
    with endpoint(pair, False, ALLOCATOR, tmp, via_nginx=True) as end:
        module_seen = _module_sees(end.port, sizes.upload)
    times = {name: [upload.wall for upload in values] for name, values in uploads.items()}
    ratio = median_ratio(times, "nginx+addon", "nginx")
    return Row("3b", f"{size_label(sizes.upload)} upload, nginx (proxy_request_buffering off) "
               f"-> {pair.server}", rate(sizes.upload, statistics.median(times["nginx"])),
               rate(sizes.upload, statistics.median(times["nginx+addon"])),
               f"nginx module: {rate(sizes.upload, statistics.median(times['nginx+module']))}",
               f"{ratio:.3f}", f"{median_ratio(times, 'nginx+module', 'nginx'):.3f}",
               "<= 1.02", ratio <= 1.02,
               "peer: nginx's upload-progress module tracking instead of the add-on; "
               + usage_note(uploads, "nginx", "nginx+addon", "nginx+module")
               + f" (CPU: nginx + worker; faults: the worker's); {module_seen}", noise)


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


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
