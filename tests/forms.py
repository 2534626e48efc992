"""Multipart form bodies built byte by byte, as a test wants them."""
from __future__ import annotations

import urllib.parse


def form(boundary: str, parts: list[tuple[bytes, bytes]]) -> bytes:
    """A multipart body of (header block, content) parts."""
    out = b""
    for head, content in parts:
        out += b"--" + boundary.encode() + b"\r\n" + head + b"\r\n\r\n" + content + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n"


def content_type_for(boundary: str) -> str:
    if any(c in boundary for c in "'()+,/:=?"):
        return f'multipart/form-data; boundary="{boundary}"'
    return f"multipart/form-data; boundary={boundary}"


def disposition(field: str, filename: str | None, style: str = "quoted") -> bytes:
    head = f'Content-Disposition: form-data; name="{field}"'
    if filename is not None:
        if style == "rfc5987":
            head += f"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"
        else:
            head += f'; filename="{filename}"'
    return head.encode("utf-8")
