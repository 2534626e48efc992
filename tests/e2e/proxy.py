"""A TCP proxy on 127.0.0.1 that slows uploads down, for browser tests.

The proxy reads what each connection's client sends at most ``rate`` bytes
per second, as a slow network would, and passes it to the server:

- ``"slow link"``: each piece at once; the server reads the body while it
  arrives;
- ``"buffering"``: each whole request at once, once it has all of it (its
  head and Content-Length bytes of body), as nginx does unless told
  ``proxy_request_buffering off;``: the server sees nothing of a body until
  the browser has sent it all.

Answers from the server pass at full speed. Small receive buffers keep the
kernel from hiding the rate. Every socket call has a timeout; ``close()``
stops every thread within a second.
"""
from __future__ import annotations

import queue
import socket
import threading
import time

HOST = "127.0.0.1"
MODES = ("slow link", "buffering")
PIECE = 16 * 1024
_TICK = 0.25


class ThrottlingProxy:
    """Listens on a free loopback port (``url``) and proxies to ``upstream_port``."""

    def __init__(self, upstream_port: int, *, rate: float, mode: str = "slow link") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.upstream_port = upstream_port
        self.rate = rate
        self.mode = mode
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PIECE)
        self._listener.bind((HOST, 0))
        self._listener.listen(32)
        self._listener.settimeout(_TICK)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> ThrottlingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, drop every connection, join the threads."""
        self._stopped.set()
        self._listener.close()
        for thread in list(self._threads):
            thread.join(timeout=2 * _TICK + 1)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            upstream = socket.create_connection((HOST, self.upstream_port), timeout=5)
            for sock in (client, upstream):
                sock.settimeout(_TICK)
            pieces: queue.Queue[bytes | None] = queue.Queue()
            self._spawn(self._read_client, client, pieces)
            self._spawn(self._write_upstream, pieces, upstream, client)
            self._spawn(self._answer_client, upstream, client)

    def _read_client(self, client: socket.socket, pieces: queue.Queue) -> None:
        while not self._stopped.is_set():
            try:
                data = client.recv(PIECE)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            if data:
                time.sleep(len(data) / self.rate)
            pieces.put(data or None)
            if not data:
                return

    def _write_upstream(self, pieces: queue.Queue, upstream: socket.socket,
                        client: socket.socket) -> None:
        held = bytearray()
        request_length = None  # of the first held request, once its head is in
        while not self._stopped.is_set():
            try:
                data = pieces.get(timeout=_TICK)
            except queue.Empty:
                continue
            if data is None:
                # The client is gone or done sending: the server reads an end.
                _quietly(upstream.shutdown, socket.SHUT_WR)
                return
            held += data
            while held:
                if self.mode == "slow link":
                    ready = len(held)
                else:
                    request_length = request_length or _request_length(held)
                    if request_length is None or len(held) < request_length:
                        break
                    ready, request_length = request_length, None
                if not _send(upstream, bytes(held[:ready]), self._stopped):
                    _quietly(client.close)
                    return
                del held[:ready]

    def _answer_client(self, upstream: socket.socket, client: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                data = upstream.recv(PIECE)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            if not data or not _send(client, data, self._stopped):
                break
        for sock in (client, upstream):
            _quietly(sock.close)


def _request_length(data: bytearray) -> int | None:
    """The length of the HTTP request at the start of ``data`` (head and
    Content-Length bytes of body; no chunked bodies here), or None until
    its head is whole."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end].decode("latin-1").lower().split("\r\n")
    lengths = [line.split(":", 1)[1] for line in head if line.startswith("content-length:")]
    return end + 4 + (int(lengths[0]) if lengths else 0)


def _send(sock: socket.socket, data: bytes, stopped: threading.Event) -> bool:
    """sendall with timeouts that give up when the proxy stops; False if the
    peer is gone."""
    view = memoryview(data)
    while view and not stopped.is_set():
        try:
            view = view[sock.send(view):]
        except socket.timeout:
            continue
        except OSError:
            return False
    return not view


def _quietly(call, *args) -> None:
    try:
        call(*args)
    except OSError:
        pass
