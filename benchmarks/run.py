"""What upload tracking costs, in one table: the same app untracked, tracked
by the add-on, and tracked by its peers (paste.progress in process, nginx's
upload-progress module over a socket), every comparison interleaved in one
run, several rounds, medians quoted, so that the machine's noise falls on
both sides of each ratio alike.

    .venv/bin/python benchmarks/run.py            # the full table, a few minutes
    .venv/bin/python benchmarks/run.py --quick    # the same rows, small, ~15 s
    .venv/bin/python benchmarks/run.py --stores memory,redis,sqlite
    .venv/bin/python benchmarks/run.py --profile 1c   # where the add-on's time goes
    .venv/bin/python benchmarks/run.py --only 8       # Redis capacity, one node and a cluster

Only the add-on's public API is used. See benchmarks/README.md for what
each row measures and the figures of a full run.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import platform
import pstats
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench_app for gunicorn; tests.e2e

import in_process  # noqa: E402
import over_socket  # noqa: E402
import redis_capacity  # noqa: E402
from harness import Row, call, environ  # noqa: E402

STORES = ("memory", "redis", "sqlite")
COLUMNS = (("row", "row"), ("case", "case"), ("untracked", "untracked"),
           ("add-on", "tracked"), ("peer", "peer"), ("add-on ratio", "ratio"),
           ("peer ratio", "peer_ratio"), ("target", "target"), ("result", "result"))


def table(rows: list[Row]) -> str:
    """The rows as a plain-text table, notes below it."""
    cells = [[header for header, _ in COLUMNS]]
    cells += [[str(getattr(row, field)) for _, field in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
             for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    notes = [f"  {row.row}: {row.note}" for row in rows if row.note]
    return "\n".join(lines + (["", "notes:"] + notes if notes else []))


def machine() -> str:
    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, nproc {os.cpu_count()}")


def profile(case: str, sizes: in_process.Sizes) -> None:
    """Profile the tracked app on one in-process body case (1a, 1b, 1c)."""
    variants = in_process.Variants()
    size = sizes.body
    bodies: dict[str, Callable[[], dict]] = {
        "1a": lambda: environ("POST", "/drain", b"x" * size),
        "1b": lambda: environ(
            "POST", "/form", b"--" + in_process.BOUNDARY.encode() + b"\r\nContent-Disposition: "
            b"form-data; name=\"file\"; filename=\"f\"\r\n\r\n" + b"x" * size
            + f"\r\n--{in_process.BOUNDARY}--\r\n".encode(), content_type=in_process.FORM_TYPE),
        "1c": lambda: environ("POST", "/lines",
                                         (b"y" * 1023 + b"\n") * (size // 1024)),
    }
    if case not in bodies:
        raise SystemExit(f"--profile: expected one of {sorted(bodies)}")
    env = bodies[case]()
    profiler = cProfile.Profile()
    profiler.enable()
    call(variants.tracked, env)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small bodies and few rounds: every row in ~15 s (for tests)")
    parser.add_argument("--stores", default="memory",
                        help="comma-separated stores for rows 4 and 7: memory, redis, sqlite")
    parser.add_argument("--only", default="",
                        help="comma-separated row groups to run (1-8); default 1-7 "
                        "(8, Redis capacity, starts a cluster: only when asked)")
    parser.add_argument("--profile", metavar="ROW",
                        help="profile the tracked app on row 1a, 1b or 1c and exit")
    args = parser.parse_args(argv)
    sizes = in_process.QUICK if args.quick else in_process.Sizes()
    socket_sizes = over_socket.QUICK if args.quick else over_socket.SocketSizes()
    if args.profile:
        profile(args.profile, sizes)
        return 0
    stores = [name.strip() for name in args.stores.split(",") if name.strip()]
    unknown = set(stores) - set(STORES)
    if unknown:
        parser.error(f"--stores: unknown {sorted(unknown)}; expected some of {STORES}")
    only = set(args.only.split(",")) - {""} or set("1234567")

    # SIGTERM unwinds like Ctrl-C, so that every child server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="upload-bench-"))
        redis_url = (stack.enter_context(over_socket.redis_server(tmp))
                     if "redis" in stores else None)
        if "1" in only:
            rows += in_process.body_rows(sizes)
        if "2" in only:
            rows += in_process.small_rows(sizes)
        if "4" in only:
            for store in stores:
                rows += in_process.report_rows(sizes, store, tmp, redis_url)
        if "5" in only:
            rows.append(in_process.record_size_row(sizes.others))
        if "7" in only:
            for store in stores:
                rows += in_process.store_write_rows(sizes, store, tmp, redis_url)
        if "8" in only:
            rows += redis_capacity.capacity_rows(tmp, seconds=0.5 if args.quick else 3.0,
                                                 threads=16)
        if only & set("356"):
            rows += [row for row in over_socket.socket_rows(socket_sizes, tmp)
                     if row.row[0] in only]
    rows.sort(key=lambda row: row.row)
    print(f"pyramid_upload_progress benchmarks{' (--quick)' if args.quick else ''}: "
          f"{machine()}; {time.perf_counter() - started:.0f} s")
    print("ratios: median over rounds of (time with tracking / time untracked) in the same "
          "round; lower is better")
    if "3" in only:
        print(f"row 3: each case on a server of its own, started fresh with "
              f"GLIBC_TUNABLES={over_socket.MALLOC_TUNABLES}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
