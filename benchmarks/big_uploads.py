"""Big uploads on gunicorn: what glibc's allocator settings change (the
figures of docs/deployment.rst, "Big uploads on gunicorn").

gunicorn's body reader reads ahead up to 1 MiB per ``recv`` and, on every
read the app makes, copies all it still holds into a new buffer
(``gunicorn/http/unreader.py``). Whether those copies also fault pages in
depends on glibc's mmap threshold, which by default follows the process's
own allocation history. This script runs the tracked benchmark app on
gunicorn gthread with glibc's defaults, with the defaults again (A/A), and
with ``GLIBC_TUNABLES`` set as row 3 of the table sets it; each on a fresh
server of its own, warmed up by one 4 MiB upload, then ``rounds`` rounds
each, the cases taking turns: first one 1 GiB upload per round (and each
of the two settings alone, as a case too), then (on fresh servers again)
8 uploads of 256 MiB at once per round, as each upload thread gets a
malloc arena of its own. It prints the worker's CPU
seconds per GiB, minor page faults per round, and its RSS (the peak during
a round, and after it: what the process keeps).

    .venv/bin/python benchmarks/big_uploads.py            # 1 GiB; 8 x 256 MiB; 5 rounds
    .venv/bin/python benchmarks/big_uploads.py --quick    # 64 MiB; 8 x 8 MiB; 2 rounds
"""
from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench_app for gunicorn; tests.e2e

import over_socket  # noqa: E402
from harness import GIB, MIB, median_ratio  # noqa: E402
from over_socket import (  # noqa: E402
    ALLOCATOR, MALLOC_TUNABLES, SERVER_PAIRS, Case, SocketSizes, Upload)

DEFAULTS = {"GLIBC_TUNABLES": ""}  # glibc's own settings, whatever this shell has
AT_ONCE = 8
#: Either setting alone (each turns glibc's sliding mmap threshold off):
#: measured with one upload at a time only, to show that both are needed.
ALONE = {
    "mmap only": {"GLIBC_TUNABLES": MALLOC_TUNABLES.split(":")[0]},
    "trim only": {"GLIBC_TUNABLES": MALLOC_TUNABLES.split(":")[1]},
}


def cases(at_once: int, alone: bool) -> dict[str, Case]:
    """glibc's defaults twice (the A/A control) and the tunables; with
    ``alone``, each of the two settings by itself too."""
    envs = {"defaults": DEFAULTS, "defaults A/A": DEFAULTS, "tunables": ALLOCATOR,
            **(ALONE if alone else {})}
    return {name: Case(True, f"/drain?X-Progress-ID={index}-{{}}", env=env, at_once=at_once)
            for index, (name, env) in enumerate(envs.items())}


def report(uploads: dict[str, list[Upload]], size: int) -> str:
    """Medians per case of rounds of ``size`` bytes in all, CPU also as a
    paired ratio to ``defaults``."""
    per_gib = {name: [upload.cpu * GIB / size for upload in values]
               for name, values in uploads.items()}
    lines = [f"{'case':<14}{'CPU s/GiB':>10}{'vs defaults':>13}{'(range)':>16}"
             f"{'faults/round':>15}{'peak RSS':>11}{'RSS after':>11}"]
    for name, values in uploads.items():
        cpu = per_gib[name]
        lines.append(
            f"{name:<14}{statistics.median(cpu):>10.2f}"
            f"{median_ratio(per_gib, name, 'defaults'):>12.2f}x"
            f"{f'{min(cpu):.2f}-{max(cpu):.2f}':>16}"
            f"{statistics.median(upload.faults for upload in values):>15,.0f}"
            f"{statistics.median(upload.peak for upload in values) / MIB:>7.1f} MiB"
            f"{statistics.median(upload.rss for upload in values) / MIB:>7.1f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB, 2 rounds (for tests)")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else 5
    one = SocketSizes(upload=64 * MIB if args.quick else GIB, rounds=rounds)
    many = SocketSizes(upload=8 * MIB if args.quick else 256 * MIB, rounds=rounds)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: servers stopped
    print(f"gunicorn gthread (1 worker, {over_socket.THREADS} threads), the tracked app reading "
          f"64 KiB at a time; {rounds} rounds, medians; "
          f"tunables: GLIBC_TUNABLES={MALLOC_TUNABLES}")
    with tempfile.TemporaryDirectory(prefix="upload-bench-") as tmp:
        for sizes, at_once in ((one, 1), (many, AT_ONCE)):
            uploads = over_socket.run_cases(SERVER_PAIRS[0], cases(at_once, at_once == 1),
                                            sizes, tmp, sample_rss=True)
            print(f"\n{at_once} upload(s) of {sizes.upload // MIB} MiB at once, per round:")
            print(report(uploads, at_once * sizes.upload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
