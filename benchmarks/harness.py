"""What every benchmark shares: the table's row, interleaved timing, and
WSGI calls with a non-seekable input as a streaming server hands it over."""
from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

T = TypeVar("T")


@dataclass
class Row:
    """One line of the table. Empty strings print as blanks."""

    row: str
    case: str
    untracked: str = ""
    tracked: str = ""
    peer: str = ""
    ratio: str = ""
    peer_ratio: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""
    noise: float | None = None
    """How far an A/A comparison (the untracked case against itself) strayed
    from 1 in the same run: a miss by less than that is not resolved."""

    @property
    def result(self) -> str:
        if self.met is False and self.noise is not None and self.ratio:
            if float(self.ratio) - 1 <= self.noise + 0.02:
                return "MISSED (within A/A noise)"
        return {True: "met", False: "MISSED", None: ""}[self.met]


class ServerInput:
    """A non-seekable ``wsgi.input`` serving ``data`` from memory: ``read``
    and ``readline(size)``, no ``seek``/``tell``, as gunicorn's and cheroot's
    inputs (which also have ``readlines`` and iteration: no row uses them)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def read(self, size: int | None = -1) -> bytes:
        start = self._pos
        end = len(self._data) if size is None or size < 0 else min(start + size, len(self._data))
        self._pos = end
        return self._data[start:end]

    def readline(self, size: int | None = -1) -> bytes:
        start = self._pos
        stop = len(self._data) if size is None or size < 0 else min(start + size, len(self._data))
        newline = self._data.find(b"\n", start, stop)
        end = stop if newline < 0 else newline + 1
        self._pos = end
        return self._data[start:end]


class PasteShimInput(ServerInput):
    """The thin shim paste.progress needs: its ``_ProgressFile`` copies the
    input's ``flush``, ``write`` and ``writelines`` when it is made, which
    no server's input has (on gunicorn and cheroot it 500s for that). Reads
    are untouched: ``readline(size)`` still raises as paste's wrapper does."""

    def flush(self) -> None:
        raise OSError("not writable")

    write = writelines = flush


def environ(method: str, path: str, body: bytes | None = None, *,
            input_type: type[ServerInput] = ServerInput,
            content_type: str | None = None,
            headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A WSGI environ for one request, its body (if any) behind ``input_type``."""
    path, _, query = path.partition("?")
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "",
        "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": input_type(body or b""), "wsgi.errors": None,
        "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False, "wsgi.version": (1, 0),
    }
    if body is not None:
        env["CONTENT_LENGTH"] = str(len(body))
    if content_type:
        env["CONTENT_TYPE"] = content_type
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(app: Callable[..., Any], env: dict[str, Any]) -> tuple[str, bytes]:
    """Call a WSGI app as a server does; return (status, body)."""
    status = []

    def start_response(line: str, headers: Any, exc_info: Any = None) -> None:
        status.append(line)

    app_iter = app(env, start_response)
    try:
        body = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    return status[0], body


def rotate(cases: Mapping[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """Call each case once per round, the cases taking turns in a rotated
    order each round; what each call returned, per case, in round order."""
    names = list(cases)
    results: dict[str, list[T]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(cases[name]())
    return results


def interleave(cases: Mapping[str, Callable[[], object]], rounds: int,
               repeat: int = 1) -> dict[str, list[float]]:
    """Time each case ``repeat`` times per round, the cases taking turns
    (in a rotated order each round); seconds per call, per round."""

    def timed(function: Callable[[], object]) -> Callable[[], float]:
        def run() -> float:
            gc.collect()
            start = time.perf_counter()
            for _ in range(repeat):
                function()
            return (time.perf_counter() - start) / repeat
        return run

    return rotate({name: timed(function) for name, function in cases.items()}, rounds)


def median_ratio(times: Mapping[str, list[float]], name: str, base: str) -> float:
    """The median over rounds of ``name``'s time over ``base``'s in that
    round: paired, so that noise common to one round cancels."""
    return statistics.median(a / b for a, b in zip(times[name], times[base]))


def seconds(value: float) -> str:
    """A duration, in the unit that reads best."""
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.1f} us"


def rate(size: int, duration: float) -> str:
    return f"{size / duration / MIB:.0f} MiB/s"


def first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def bounded_wait(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Wait until ``condition()`` or ``timeout`` seconds; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def percentile(values: Iterable[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]
