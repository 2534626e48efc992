"""The multipart scan's cost per MB, in process: a plain form (a few big
files) next to header-heavy ones (many parts, each with a Content-Disposition
near the 16 KiB header cap), fed to ``MultipartScanner`` in 64 KiB reads as
the counting stream feeds it; and one 16,000-character quoted file name of
``;`` against one of letters (issue 20, item 2).

    .venv/bin/python benchmarks/multipart_scan.py
    .venv/bin/python benchmarks/multipart_scan.py --module old/multipart.py

``--module`` measures another copy of ``multipart.py`` (say the one before a
change, from ``git show REV:pyramid_upload_progress/multipart.py``).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

BOUNDARY = b"bench-boundary-5e1c"
MB = 1_000_000
READ = 65536


def form(parts: list[tuple[bytes, bytes]]) -> bytes:
    out = b""
    for disposition, content in parts:
        out += (b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition
                + b"\r\n\r\n" + content + b"\r\n")
    return out + b"--" + BOUNDARY + b"--\r\n"


def heavy(filler: bytes, parts: int) -> bytes:
    """``parts`` file parts whose quoted file name is 16,000 ``filler``."""
    return form([(b'form-data; name="f%d"; filename="' % i + filler * 16000 + b'"', b"x" * 100)
                 for i in range(parts)])


def scan_seconds(module: ModuleType, body: bytes, rounds: int) -> float:
    """The best of ``rounds`` scans of ``body``, in 64 KiB reads."""
    best = float("inf")
    for _ in range(rounds):
        scanner = module.MultipartScanner(BOUNDARY)
        started = time.perf_counter()
        for at in range(0, len(body), READ):
            scanner.feed(body[at:at + READ])
        best = min(best, time.perf_counter() - started)
    return best


def load(path: str | None) -> ModuleType:
    if path is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from pyramid_upload_progress import multipart
        return multipart
    spec = importlib.util.spec_from_file_location("multipart_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", help="the multipart.py to measure (default: this checkout's)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--heavy-parts", type=int, default=20)
    args = parser.parse_args(argv)
    module = load(args.module)
    rows = [
        ("plain: 4 files of 4 MiB", form([(b'form-data; name="f"; filename="%d.bin"' % i,
                                           b"\0\r\n-" * (1 << 20)) for i in range(4)])),
        (f"header-heavy: {args.heavy_parts} parts, 16,000 ';' in quotes",
         heavy(b";", args.heavy_parts)),
        (f"header-heavy: {args.heavy_parts} parts, 16,000 letters in quotes",
         heavy(b"a", args.heavy_parts)),
        (f"header-heavy: {args.heavy_parts} parts, 16,000 bare ';' (empty parameters)",
         form([(b"form-data" + b";" * 16000 + b'; name="f"; filename="x"', b"x" * 100)
               for _ in range(args.heavy_parts)])),
    ]
    print(f"{'form':58} {'size MB':>8} {'ms per MB':>10}")
    for label, body in rows:
        seconds = scan_seconds(module, body, args.rounds)
        print(f"{label:58} {len(body) / MB:8.2f} {seconds * 1000 / (len(body) / MB):10.2f}")
    one = {filler: scan_seconds(module, heavy(filler, 1), args.rounds) for filler in (b";", b"a")}
    print(f"one part: 16,000 ';' {one[b';'] * 1e3:.3f} ms, 16,000 letters "
          f"{one[b'a'] * 1e3:.3f} ms, ratio {one[b';'] / one[b'a']:.2f}")


if __name__ == "__main__":
    main()
