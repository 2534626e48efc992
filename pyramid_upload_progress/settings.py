"""The ``upload_progress.*`` settings: parsed and validated once, here."""
from __future__ import annotations

import math
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from pyramid.exceptions import ConfigurationError

from .stores.memory import memory_store_factory

PREFIX = "upload_progress."

Owner = Callable[[Any], "str | None"]
StoreFactory = Callable[[MutableMapping[str, Any]], Any]
"""``factory(settings)``: returns an object providing IUploadProgressStore."""

_ID_PARAM = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def authenticated_userid(request: Any) -> object:
    """The default owner of an upload: the security policy's principal."""
    return request.authenticated_userid


def _owner_as_text(owner: Callable[[Any], object]) -> Owner:
    """``owner`` with its answer as a string: stores key uploads by it, and a
    security policy may well return an int (a database id)."""

    def owner_text(request: Any) -> str | None:
        value = owner(request)
        return None if value is None else str(value)

    return owner_text


@dataclass(frozen=True)
class UploadProgressSettings:
    """The add-on's settings, parsed. See the README for each one."""

    threshold: int = 1048576
    timeout: float = 300.0
    stall_timeout: float = 3600.0
    store_factory: StoreFactory = memory_store_factory
    redis_url: str = "redis://localhost:6379/0"
    redis_prefix: str = "upload_progress:"
    update_interval: float = 0.25
    max_uploads: int = 10000
    path: str = "/upload-progress"
    id_param: str = "X-Progress-ID"
    permission: str | None = None
    owner: Owner = _owner_as_text(authenticated_userid)


def _bad(name: str, value: Any, expected: str) -> ConfigurationError:
    return ConfigurationError(
        f"{PREFIX}{name} = {value!r} is not valid: expected {expected}"
    )


def _whole(name: str, value: Any, least: int) -> int:
    expected = f"a whole number >= {least}"
    if isinstance(value, bool):
        raise _bad(name, value, expected)
    try:
        number = int(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise _bad(name, value, expected) from None
    if number < least or (isinstance(value, float) and value != number):
        raise _bad(name, value, expected)
    return number


def _seconds(name: str, value: Any, *, zero_ok: bool) -> float:
    expected = "a number of seconds " + (">= 0" if zero_ok else "> 0")
    if isinstance(value, bool):
        raise _bad(name, value, expected)
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise _bad(name, value, expected) from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        raise _bad(name, value, expected)
    return number


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(name, value, "a string")
    return value.strip()


def _path(value: Any) -> str:
    path = _text("path", value)
    if not path.startswith("/") or any(c in path for c in "?# \t"):
        raise _bad("path", value, "a URL path starting with / (no query)")
    return path


def _id_param(value: Any) -> str:
    param = _text("id_param", value)
    if not _ID_PARAM.fullmatch(param):
        raise _bad("id_param", value, "a header name of A-Z a-z 0-9 - _")
    return param


def _redis_url(value: Any) -> str:
    url = _text("redis.url", value)
    if not url.startswith(_REDIS_SCHEMES):
        raise _bad("redis.url", value, "a redis://, rediss:// or unix:// URL")
    return url


def _non_empty(name: str, value: Any) -> str:
    text = _text(name, value)
    if not text:
        raise _bad(name, value, "a non-empty string")
    return text


def _dotted(name: str, value: Any, resolve: Callable[[Any], Any]) -> Any:
    try:
        found = resolve(value.strip() if isinstance(value, str) else value)
    except (ImportError, AttributeError, ValueError) as exc:
        raise _bad(name, value, f"an importable dotted name ({exc})") from None
    if not callable(found):
        raise _bad(name, value, "the dotted name of a callable")
    return found


def parse_settings(
    settings: MutableMapping[str, Any],
    resolve: Callable[[Any], Any],
) -> UploadProgressSettings:
    """Read every ``upload_progress.*`` setting; raise on a bad one.

    ``resolve`` turns a dotted name into an object (``config.maybe_dotted``).
    A bad value raises :class:`pyramid.exceptions.ConfigurationError` naming
    the setting and the value, so that a typo stops the app at start-up and
    never surfaces at request time. The parsed values are written back into
    ``settings``, so that a store factory reads them typed and defaulted.
    """
    defaults = UploadProgressSettings()

    def read(name: str, parse: Callable[[Any], Any], default: Any) -> Any:
        value = settings.get(PREFIX + name)
        return default if value is None else parse(value)

    store = read("store", lambda v: _non_empty("store", v), "memory")
    if store == "memory":
        store_factory = defaults.store_factory
    elif store == "redis":
        raise _bad("store", store, "memory or a dotted name: the Redis store "
                   "is not part of this release yet")
    else:
        store_factory = _dotted("store", store, resolve)

    parsed = UploadProgressSettings(
        threshold=read("threshold", lambda v: _whole("threshold", v, 0),
                       defaults.threshold),
        timeout=read("timeout", lambda v: _seconds("timeout", v, zero_ok=False),
                     defaults.timeout),
        stall_timeout=read(
            "stall_timeout",
            lambda v: _seconds("stall_timeout", v, zero_ok=False),
            defaults.stall_timeout,
        ),
        store_factory=store_factory,
        redis_url=read("redis.url", _redis_url, defaults.redis_url),
        redis_prefix=read("redis.prefix",
                          lambda v: _non_empty("redis.prefix", v),
                          defaults.redis_prefix),
        update_interval=read(
            "update_interval",
            lambda v: _seconds("update_interval", v, zero_ok=True),
            defaults.update_interval,
        ),
        max_uploads=read("max_uploads", lambda v: _whole("max_uploads", v, 1),
                         defaults.max_uploads),
        path=read("path", _path, defaults.path),
        id_param=read("id_param", _id_param, defaults.id_param),
        permission=read("permission", lambda v: _text("permission", v) or None,
                        defaults.permission),
        owner=read("owner",
                   lambda v: _owner_as_text(_dotted("owner", v, resolve)),
                   defaults.owner),
    )
    for name in ("threshold", "timeout", "stall_timeout", "update_interval", "max_uploads", "path", "id_param"):
        settings[PREFIX + name] = getattr(parsed, name)
    settings[PREFIX + "redis.url"] = parsed.redis_url
    settings[PREFIX + "redis.prefix"] = parsed.redis_prefix
    return parsed
