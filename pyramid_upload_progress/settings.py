"""The ``upload_progress.*`` settings: one table, parsed and validated once.

Each row of :data:`SETTINGS` names a setting, its default and its parser;
the table drives parsing, the error messages, the write-back into the app's
settings and the documentation's table. A new setting is one row (and one
field of :class:`UploadProgressSettings`).
"""
from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.settings import asbool

from .owner import Owner, as_text

log = logging.getLogger(__name__)

PREFIX = "upload_progress."

Resolve = Callable[[Any], Any]
StoreFactory = Callable[[MutableMapping[str, Any]], Any]
"""``factory(settings)``: returns an object providing IUploadProgressStore.
A factory that reads settings of its own under ``upload_progress.`` names
them in an attribute ``settings_keys`` (say ``("mystore.url",)``), so that
they are not warned of as unknown."""

_STORES = {
    "memory": "pyramid_upload_progress.stores.memory.memory_store_factory",
    "sqlite": "pyramid_upload_progress.stores.sqlite.sqlite_store_factory",
    "redis": "pyramid_upload_progress.stores.redis.redis_store_factory",
}
_ID_PARAM = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _bad(name: str, value: Any, expected: str) -> ConfigurationError:
    return ConfigurationError(
        f"{PREFIX}{name} = {value!r} is not valid: expected {expected}")


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _number(convert: Callable[[Any], Any], expected: str,
            accept: Callable[[Any], bool]) -> Callable[..., Any]:
    """A parser of finite numbers (``convert`` of the value) that
    ``accept``; ``expected`` says what they are, for the error."""

    def parse(name: str, value: Any, resolve: Resolve) -> Any:
        if isinstance(value, bool):
            raise _bad(name, value, expected)
        try:
            number = convert(_stripped(value))
        except (TypeError, ValueError):
            raise _bad(name, value, expected) from None
        if (not math.isfinite(number) or not accept(number)
                or (isinstance(value, float) and value != number)):
            raise _bad(name, value, expected)
        return number

    return parse


def _whole(least: int) -> Callable[..., int]:
    return _number(int, f"a whole number >= {least}", lambda number: number >= least)


def _seconds(*, zero_ok: bool) -> Callable[..., float]:
    if zero_ok:
        return _number(float, "a number of seconds >= 0", lambda number: number >= 0)
    return _number(float, "a number of seconds > 0", lambda number: number > 0)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(name, value, "a string")
    return value.strip()


def _non_empty(name: str, value: Any, resolve: Resolve) -> str:
    text = _text(name, value)
    if not text:
        raise _bad(name, value, "a non-empty string")
    return text


def _path(name: str, value: Any, resolve: Resolve) -> str:
    path = _text(name, value)
    if not path.startswith("/") or any(c in path for c in "?# \t"):
        raise _bad(name, value, "a URL path starting with / (no query)")
    return path


def _id_param(name: str, value: Any, resolve: Resolve) -> str:
    param = _text(name, value)
    if not _ID_PARAM.fullmatch(param):
        raise _bad(name, value, "a header name of A-Z a-z 0-9 - _")
    return param


def _redis_url(name: str, value: Any, resolve: Resolve) -> str:
    url = _text(name, value)
    if not url.startswith(_REDIS_SCHEMES):
        raise _bad(name, value, "a redis://, rediss:// or unix:// URL")
    return url


def _addresses(name: str, value: Any, resolve: Resolve) -> list[tuple[str, int]] | None:
    """``host:port host:port ...`` (an IPv6 host in brackets), or ``None``
    when empty; a list of pairs is taken as parsed before."""
    if isinstance(value, list):
        return value
    addresses = []
    for word in _text(name, value).split():
        host, _, port = word.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _bad(name, value, "host:port pairs separated by spaces")
        addresses.append((host, int(port)))
    return addresses or None


def _boolean(name: str, value: Any, resolve: Resolve) -> bool:
    text = _stripped(value)
    if isinstance(text, str) and text.lower() not in (
            "true", "yes", "on", "y", "t", "1", "false", "no", "off", "n", "f", "0"):
        raise _bad(name, value, "true or false")
    return asbool(text)


def _permission(name: str, value: Any, resolve: Resolve) -> str | None:
    return _text(name, value) or None


def _dotted(name: str, value: Any, resolve: Resolve) -> Callable[..., Any]:
    try:
        found = resolve(_stripped(value))
    except (ImportError, AttributeError, ValueError) as exc:
        raise _bad(name, value, f"an importable dotted name ({exc})") from None
    if not callable(found):
        raise _bad(name, value, "the dotted name of a callable")
    return found


def _store(name: str, value: Any, resolve: Resolve) -> StoreFactory:
    store = _non_empty(name, value, resolve)
    if store not in _STORES:
        return _dotted(name, store, resolve)
    try:
        return resolve(_STORES[store])
    except ImportError as exc:
        hint = "; pip install 'pyramid_upload_progress[redis]'" if store == "redis" else ""
        raise _bad(name, value, f"a store whose library is installed ({exc}{hint})") from None


def _owner(name: str, value: Any, resolve: Resolve) -> Owner:
    return as_text(_dotted(name, value, resolve))


@dataclass(frozen=True)
class Setting:
    """One row of the table: ``upload_progress.<name>``."""

    name: str
    default: Any
    parse: Callable[[str, Any, Resolve], Any]
    write_back: bool = True
    """Whether the parsed value is written back into the app's settings
    (not for values that are objects rather than data)."""

    @property
    def field(self) -> str:
        return self.name.replace(".", "_")


SETTINGS = (
    Setting("threshold", 1048576, _whole(0)),
    Setting("timeout", 300.0, _seconds(zero_ok=False)),
    Setting("stall_timeout", 3600.0, _seconds(zero_ok=False)),
    Setting("store", "memory", _store, write_back=False),
    Setting("sqlite.path", None, _non_empty),
    Setting("redis.url", "redis://localhost:6379/0", _redis_url),
    Setting("redis.prefix", "upload_progress:", _non_empty),
    Setting("redis.socket_timeout", 0.5, _seconds(zero_ok=False)),
    Setting("redis.cluster", False, _boolean),
    Setting("redis.sentinels", None, _addresses),
    Setting("redis.sentinel_master", "mymaster", _non_empty),
    Setting("redis.read_from_replicas", False, _boolean),
    Setting("update_interval", 0.25, _seconds(zero_ok=True)),
    Setting("max_uploads", 10000, _whole(1)),
    Setting("path", "/upload-progress", _path),
    Setting("id_param", "X-Progress-ID", _id_param),
    Setting("permission", None, _permission),
    Setting("owner", "pyramid_upload_progress.owner.authenticated_userid",
            _owner, write_back=False),
    Setting("client", True, _boolean),
)
"""Every setting. A ``default`` is parsed as a value from the .ini would be;
``None``: unset."""

INCLUDE_TIME = ("path", "client")
"""Settings that place routes: read when ``config.include`` is called, so the
report route takes its place in the app's route order."""

_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class UploadProgressSettings:
    """The add-on's settings, parsed: one field per row of :data:`SETTINGS`
    (its name with dots as underscores). Made by :func:`parse_settings`."""

    threshold: int
    timeout: float
    stall_timeout: float
    store: StoreFactory
    sqlite_path: str | None
    redis_url: str
    redis_prefix: str
    redis_socket_timeout: float
    redis_cluster: bool
    redis_sentinels: list[tuple[str, int]] | None
    redis_sentinel_master: str
    redis_read_from_replicas: bool
    update_interval: float
    max_uploads: int
    path: str
    id_param: str
    permission: str | None
    owner: Owner
    client: bool


def parse_setting(settings: MutableMapping[str, Any], name: str,
                  resolve: Resolve) -> Any:
    """One setting, parsed (its default when it is not set)."""
    setting = _BY_NAME[name]
    value = settings.get(PREFIX + name, setting.default)
    return None if value is None else setting.parse(name, value, resolve)


def parse_settings(settings: MutableMapping[str, Any], resolve: Resolve,
                   **fixed: Any) -> UploadProgressSettings:
    """Read every ``upload_progress.*`` setting; raise on a bad one.

    ``resolve`` turns a dotted name into an object (``config.maybe_dotted``);
    ``fixed`` gives values already read (:data:`INCLUDE_TIME`). A bad value
    raises :class:`pyramid.exceptions.ConfigurationError` naming the setting
    and the value, so that a typo stops the app at start-up and never
    surfaces at request time; an unknown ``upload_progress.*`` key logs a
    warning naming the closest known one. The parsed values are written back
    into ``settings``, so that a store factory reads them typed and
    defaulted.
    """
    try:
        fixed.setdefault("store", parse_setting(settings, "store", resolve))
    except ConfigurationError:
        pass  # raised again below, after the warnings that may explain it
    _warn_unknown(settings, getattr(fixed.get("store"), "settings_keys", ()))
    values = {setting.field: fixed[setting.name] if setting.name in fixed
              else parse_setting(settings, setting.name, resolve)
              for setting in SETTINGS}
    if values["redis_cluster"] and values["redis_sentinels"]:
        raise ConfigurationError(
            f"{PREFIX}redis.cluster and {PREFIX}redis.sentinels exclude each other: "
            "a Redis Cluster fails over by itself, without Sentinel")
    if values["redis_read_from_replicas"] and not (
            values["redis_cluster"] or values["redis_sentinels"]):
        raise ConfigurationError(
            f"{PREFIX}redis.read_from_replicas needs {PREFIX}redis.cluster or "
            f"{PREFIX}redis.sentinels: they say where the replicas are")
    for setting in SETTINGS:
        if setting.write_back:
            settings[PREFIX + setting.name] = values[setting.field]
    return UploadProgressSettings(**values)


def _warn_unknown(settings: MutableMapping[str, Any], store_keys: Iterable[str]) -> None:
    """Warn of each ``upload_progress.*`` key that is neither ours nor one of
    ``store_keys`` (the store factory's ``settings_keys``)."""
    known = [*_BY_NAME, *store_keys]
    for key in settings:
        if not key.startswith(PREFIX) or key[len(PREFIX):] in known:
            continue
        close = difflib.get_close_matches(key[len(PREFIX):], known, n=1)
        log.warning("upload progress: unknown setting %s%s", key,
                    f" (did you mean {PREFIX}{close[0]}?)" if close else "")

