"""Rows measured by calling the WSGI app in this process: 1, 2, 4, 5a, 7."""
from __future__ import annotations

import gc
import io
import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from paste.progress import UploadProgressMonitor
from pyramid.exceptions import ConfigurationError

from bench_app import CountingStore, make_app, store_from_settings
from harness import (
    KIB, MIB, PasteShimInput, Row, ServerInput, call, environ, first_line,
    interleave, median_ratio, rate, seconds,
)

BOUNDARY = "bench-boundary-5e1c"
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
UPDATE_INTERVAL = 0.25  # upload_progress.update_interval's default


@dataclass
class Sizes:
    """How big and how often: the full run's, or ``--quick``'s."""

    body: int = 256 * MIB
    rounds: int = 5
    hello_repeat: int = 3000
    small_repeat: int = 1000
    report_repeat: int = 1000
    others: int = 10_000
    paced: float = 2.0


QUICK = Sizes(body=16 * MIB, rounds=3, hello_repeat=300, small_repeat=200,
              report_repeat=200, others=2_000, paced=0.5)


class Variants:
    """The same app untracked, tracked by the add-on, and under
    paste.progress's monitor (through :class:`PasteShimInput`)."""

    def __init__(self) -> None:
        self.untracked = make_app(False)
        self.tracked = make_app(True)
        self.paste = UploadProgressMonitor(self.untracked)

    def cases(self, method: str, path: str, body: bytes | None,
              **env: Any) -> dict[str, Callable[[], tuple[str, bytes]]]:
        return {
            "untracked": lambda: call(self.untracked, environ(method, path, body, **env)),
            "tracked": lambda: call(self.tracked, environ(method, path, body, **env)),
            "paste": lambda: call(self.paste, environ(method, path, body,
                                                      input_type=PasteShimInput, **env)),
        }


def side_by_side(row: str, case: str, cases: Mapping[str, Callable[[], Any]],
                 rounds: int, repeat: int = 1, expect: bytes | None = None,
                 target: str = "", judge: Callable[[float, float | None], bool] | None = None,
                 note: str = "") -> tuple[Row, dict[str, list[float]]]:
    """Run untracked / tracked / paste interleaved; a variant that raises on
    its first call is reported as crashed and left out."""
    cases = dict(cases, **{"A/A": cases["untracked"]})
    crashed = {}
    runnable = {}
    for name, function in cases.items():
        try:
            status, body = function()
            if not status.startswith("200") or (expect is not None and body != expect):
                raise AssertionError(f"{status}, {body[:80]!r}")
        except Exception as exc:
            crashed[name] = first_line(exc)
        else:
            runnable[name] = function
    times = interleave(runnable, rounds, repeat)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = median_ratio(times, "tracked", "untracked")
    paste_ratio = median_ratio(times, "paste", "untracked") if "paste" in times else None
    peer = seconds(medians["paste"]) if "paste" in medians else (
        "paste crashed" if "paste" in crashed else "")
    control = median_ratio(times, "A/A", "untracked")
    note = "; ".join([note] * bool(note) + [f"A/A (untracked twice) {control:.3f}"])
    if crashed:
        note = "; ".join([note] * bool(note) + [f"{name} crashed: {error}"
                                                for name, error in crashed.items()])
    result = Row(row, case, seconds(medians["untracked"]), seconds(medians["tracked"]),
                 peer, f"{ratio:.3f}",
                 "" if paste_ratio is None else f"{paste_ratio:.3f}", target,
                 None if judge is None else judge(ratio, paste_ratio), note,
                 abs(control - 1))
    return result, times


def body_rows(sizes: Sizes) -> list[Row]:
    """Row 1: a large body in memory, read three ways."""
    variants = Variants()
    size = sizes.body
    label = f"{size // MIB} MiB"
    rows = []

    data = b"x" * size
    row, _ = side_by_side(
        "1a", f"{label}, 64 KiB reads of request.body_file",
        variants.cases("POST", "/drain", data), sizes.rounds, expect=str(size).encode(),
        target="within 0.02 of paste",
        judge=lambda r, p: p is not None and abs(r - p) <= 0.02)
    rows.append(row)
    del data

    form = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"upload.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + b"x" * size + f"\r\n--{BOUNDARY}--\r\n".encode()
    cases = variants.cases("POST", "/form", form, content_type=FORM_TYPE)

    def with_input(make_input: Callable[[bytes], Any]) -> Callable[[], tuple[str, bytes]]:
        def request() -> tuple[str, bytes]:
            env = environ("POST", "/form", form, content_type=FORM_TYPE)
            env["wsgi.input"] = make_input(form)
            return call(variants.untracked, env)
        return request

    cases["bytesio"] = with_input(io.BytesIO)
    cases["wrapped"] = with_input(lambda data: _Passthrough(io.BytesIO(data)))
    row, times = side_by_side(
        "1b", f"{label} multipart form via request.POST", cases, sizes.rounds,
        target="<= 1.02", judge=lambda r, p: r <= 1.02)
    row.note += (
        "; the same untracked app with a bare io.BytesIO input: "
        f"{median_ratio(times, 'bytesio', 'untracked'):.2f}x the non-seekable input's "
        f"time; the BytesIO behind a do-nothing wrapper: "
        f"{median_ratio(times, 'wrapped', 'untracked'):.2f}x")
    rows.append(row)
    del form, cases

    lines = (b"y" * (KIB - 1) + b"\n") * (size // KIB)
    cases = variants.cases("POST", "/lines", lines)

    def passed_through() -> tuple[str, bytes]:
        env = environ("POST", "/lines", lines)
        env["wsgi.input"] = _Passthrough(env["wsgi.input"])
        return call(variants.untracked, env)

    cases["wrapped"] = passed_through
    row, times = side_by_side(
        "1c", f"{label}, readline(1024) over 1 KiB lines", cases, sizes.rounds,
        expect=str(size).encode(), target="<= 1.30", judge=lambda r, p: r <= 1.30)
    row.note += ("; the floor of any Python wrapper, the untracked app's input behind "
                 f"a do-nothing one: {median_ratio(times, 'wrapped', 'untracked'):.2f}x")
    rows.append(row)
    return rows


class _Passthrough:
    """A wrapper that does nothing but pass reads on."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self._raw.readline(size)


def small_rows(sizes: Sizes) -> list[Row]:
    """Row 2: what every request that carries no upload pays."""
    variants = Variants()
    hello, _ = side_by_side(
        "2a", "hello-world GET", variants.cases("GET", "/hello", None),
        sizes.rounds, sizes.hello_repeat, expect=b"hello",
        target="<= 1.02", judge=lambda r, p: r <= 1.02)
    body = b"s" * (10 * KIB)
    small, _ = side_by_side(
        "2b", "10 KiB POST, below threshold", variants.cases("POST", "/drain", body),
        sizes.rounds, sizes.small_repeat, expect=str(len(body)).encode(),
        target="<= 1.02", judge=lambda r, p: r <= 1.02)
    return [hello, small]


def store_settings(kind: str, place: str, redis_url: str | None) -> dict[str, str]:
    """The settings that select store ``kind``; ``place`` keeps two stores
    of one kind apart (a file name, a key prefix)."""
    if kind == "memory":
        return {}
    if kind == "sqlite":
        return {"upload_progress.store": "sqlite", "upload_progress.sqlite.path": place}
    if kind == "redis":
        return {"upload_progress.store": "redis",
                "upload_progress.redis.url": redis_url or "redis://127.0.0.1:6379/0",
                "upload_progress.redis.prefix": f"bench:{time.time_ns()}:{abs(hash(place))}:"}
    raise ValueError(f"unknown store {kind!r}: expected memory, sqlite or redis")


def _upload(app: Any, owner: str, upload_id: str) -> None:
    status, _ = call(app, environ("POST", "/drain", b"u", headers={
        "X-Owner": owner, "X-Progress-ID": upload_id}))
    assert status.startswith("200"), status


def report_rows(sizes: Sizes, kind: str, tmp: str, redis_url: str | None) -> list[Row]:
    """Row 4: the report view, with an empty store and with many other
    owners' records."""
    try:
        empty = make_app(True, store_settings(kind, f"{tmp}/empty-{kind}.sqlite3", redis_url))
        full = make_app(True, store_settings(kind, f"{tmp}/full-{kind}.sqlite3", redis_url))
    except ConfigurationError as exc:
        return [Row("4", f"report view, {kind} store", target="<= 1.2x empty",
                    note=_rejected(exc))]
    for app in (empty, full):
        _upload(app, "me", "target")
    for i in range(sizes.others):
        _upload(full, f"other{i}", f"id{i}")
    rows = []
    for row, case, path in (("4a", "lookup by id", "/upload-progress?X-Progress-ID=target"),
                            ("4b", "listing", "/upload-progress")):
        cases = {app_name: (lambda app=app: call(app, environ("GET", path, headers={"X-Owner": "me"})))
                 for app_name, app in (("empty", empty), ("full", full))}
        for function in cases.values():
            status, body = function()
            assert status.startswith("200") and b'"done"' in body, (status, body)
        times = interleave(cases, sizes.rounds, sizes.report_repeat)
        ratio = median_ratio(times, "full", "empty")
        rows.append(Row(row, f"report {case}, {kind} store: empty vs {sizes.others} other owners",
                        seconds(statistics.median(times["empty"])),
                        seconds(statistics.median(times["full"])), "", f"{ratio:.3f}", "",
                        "<= 1.2x empty", ratio <= 1.2,
                        "untracked column: empty store; add-on column: full store"
                        if row == "4a" else ""))
    return rows


def record_size_row(records: int) -> Row:
    """Row 5a: what one finished upload's record costs the memory store."""
    app = make_app(True)
    _upload(app, "warm-up", "warm-up")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(records):
            _upload(app, f"owner{i}", f"id{i}")
        gc.collect()
        per_record = (tracemalloc.get_traced_memory()[0] - before) / records
    finally:
        tracemalloc.stop()
    return Row("5a", f"memory store, bytes per record ({records} records, tracemalloc)",
               tracked=f"{per_record:.0f} B", target="<= 1 KiB", met=per_record <= KIB,
               note="each record: its own owner and id, finished (as a listing keeps it)")


class PacedInput(ServerInput):
    """A :class:`ServerInput` whose body takes ``duration`` seconds to
    arrive, 64 KiB reads spread evenly, as over a real network."""

    def __init__(self, data: bytes, duration: float) -> None:
        super().__init__(data)
        self._delay = duration / max(1, len(data) // (64 * KIB))

    def read(self, size: int | None = -1) -> bytes:
        time.sleep(self._delay)
        return super().read(size)


def store_write_rows(sizes: Sizes, kind: str, tmp: str, redis_url: str | None) -> list[Row]:
    """Row 7: round-trips to the store for one upload, and what they cost."""
    try:
        settings = store_settings(kind, f"{tmp}/writes-{kind}.sqlite3", redis_url)
        plain_store = store_from_settings(settings)
        counted_store = store_from_settings(settings)
    except ConfigurationError as exc:
        return [Row("7", f"store writes, {kind} store", target="<= d/interval + 3",
                    note=_rejected(exc))]
    # The memory store asks for no throttling; as a stand-in for a store
    # with a network hop, the counting proxy asks for it.
    counting = CountingStore(counted_store, throttled=True if kind == "memory"
                             else counted_store.throttled)
    untracked = make_app(False)
    plain = make_app(True, settings, plain_store)
    counted = make_app(True, settings, counting)
    size = sizes.body
    data = b"x" * size
    label = f"{size // MIB} MiB"

    def upload(app: Any, input_type: Any = ServerInput) -> Callable[[], tuple[str, bytes]]:
        return lambda: call(app, environ("POST", "/drain", data, input_type=input_type,
                                         headers={"X-Owner": "me"}))

    cases = {"untracked": upload(untracked), f"{kind}": upload(plain), "counting": upload(counted)}
    for function in cases.values():
        assert function()[1] == str(size).encode()
    counting.calls.clear()
    times = interleave(cases, sizes.rounds)
    calls_per_upload = counting.total / sizes.rounds
    duration = statistics.median(times["counting"])
    allowed = duration / UPDATE_INTERVAL + 3
    rows = [Row("7a", f"store round-trips, {label} at full speed, throttled counting {kind} store",
                rate(size, statistics.median(times["untracked"])),
                rate(size, duration),
                f"{kind}: {rate(size, statistics.median(times[kind]))}",
                f"{median_ratio(times, 'counting', 'untracked'):.3f}",
                f"{median_ratio(times, kind, 'untracked'):.3f}",
                f"<= {allowed:.1f} calls", calls_per_upload <= allowed,
                f"{calls_per_upload:g} calls per upload "
                f"({_calls(counting, sizes.rounds)}) in {seconds(duration)}")]

    paced = lambda body: PacedInput(body, sizes.paced)  # noqa: E731
    counting.calls.clear()
    start = time.perf_counter()
    assert upload(counted, paced)()[1] == str(size).encode()
    duration = time.perf_counter() - start
    allowed = duration / UPDATE_INTERVAL + 3
    rows.append(Row("7b", f"store round-trips, {label} arriving over {sizes.paced:g} s",
                    tracked=f"{counting.total} calls", target=f"<= {allowed:.1f} calls",
                    met=counting.total <= allowed,
                    note=f"{_calls(counting)} in {seconds(duration)}"))
    return rows


def _rejected(exc: ConfigurationError) -> str:
    """Why the add-on refused a store setting at start-up, in one line
    (Pyramid wraps the error with where the action was registered)."""
    error = getattr(exc, "evalue", exc)
    return f"skipped: the add-on rejects the setting: {str(error).splitlines()[0]}"


def _calls(counting: CountingStore, uploads: int = 1) -> str:
    return ", ".join(f"{name} {count / uploads:g}"
                     for name, count in sorted(counting.calls.items()))
