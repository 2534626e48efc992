"""Client-chosen upload ids (the nginx upload progress protocol)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_VALID_ID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")

ID_RULE = "1 to 128 characters of A-Z a-z 0-9 - _ ."


class BadUploadId(ValueError):
    """A request carries an upload id that breaks :data:`ID_RULE`."""


def header_key(param: str) -> str:
    """The WSGI environ key of the request header named ``param``."""
    return "HTTP_" + param.upper().replace("-", "_")


def upload_id(environ: Mapping[str, Any], param: str, header: str) -> str | None:
    """The upload id a request carries, or ``None`` if it carries none.

    The query parameter ``param`` wins over the request header whose environ
    key is ``header``. The parameter is taken as sent, its name and its value
    never percent-decoded, as the nginx module takes it (an id needs no
    encoding: its characters are all unreserved in a URL). Raises
    :class:`BadUploadId` for a value that breaks :data:`ID_RULE`, an empty
    one included.
    """
    value = None
    query = environ.get("QUERY_STRING")
    if query and param in query:
        for pair in query.split("&"):
            name, _, found = pair.partition("=")
            if name == param:
                value = found
                break
    if value is None:
        value = environ.get(header)
        if value is None:
            return None
    if not isinstance(value, str) or not _VALID_ID.fullmatch(value):
        raise BadUploadId(f"{param} must be {ID_RULE}")
    return value
