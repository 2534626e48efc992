"""What a view uses to say what it does with its upload: the request
attribute ``request.upload_progress`` and :func:`stage`."""
from __future__ import annotations

import operator
from typing import Any

from .environ import ENVIRON_KEY
from .tracking import TrackedUpload


def stage(request: Any, name: str, done: int | None = None,
          total: int | None = None) -> None:
    """Say what the application is doing with the request's upload now that
    its body is in: ``request.upload_progress.stage(name, done, total)`` for
    a tracked request, nothing for one that is not, so that a view reports
    its stages in one call either way. The values are checked either way
    (the ``TypeError`` of :meth:`.UploadProgress.stage`), so that a bad one
    shows in tests that send no upload."""
    checked = _checked_stage(name, done, total)
    upload = request.environ.get(ENVIRON_KEY)
    if upload is not None:
        upload.stage(*checked)


class UploadProgress:
    """``request.upload_progress``: the tracked upload of this request."""

    __slots__ = ("_upload",)

    def __init__(self, upload: TrackedUpload) -> None:
        self._upload = upload

    def stage(self, name: str, done: int | None = None,
              total: int | None = None) -> None:
        """Say what the application is doing with the upload now that its
        body is in (``stage("virus scan")``, ``stage("thumbnails", 3, 12)``):
        the UPLOAD's ``stage`` shows the last call. Never raises because of
        the store. Raises ``TypeError`` for a name that is not a string, and
        for ``done`` or ``total`` that is neither ``None`` nor an int
        (anything ``operator.index`` accepts, a numpy integer say, is taken
        as its int; a float, ``NaN`` or a ``Decimal`` is refused): nothing
        JSON cannot carry ever reaches a store."""
        self._upload.stage(*_checked_stage(name, done, total))


def _checked_stage(name: Any, done: Any, total: Any) -> tuple[str, int | None, int | None]:
    """A stage's values as stores take them, or ``TypeError``."""
    if not isinstance(name, str):
        raise TypeError(f"stage name must be a string, not {name!r}")
    return name, _count_or_none("done", done), _count_or_none("total", total)


def _count_or_none(what: str, value: Any) -> int | None:
    """``value`` as an int (``operator.index``), or ``None``."""
    if value is None:
        return None
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"stage {what} must be an int or None, not {value!r} "
                        f"({type(value).__name__})") from None


class _UploadProgressAttribute:
    """Makes ``request.upload_progress``: the request's :class:`UploadProgress`,
    or ``None`` when it is not tracked.

    Given to ``config.add_request_method`` as a request method: Pyramid binds
    those with ``__get__(request, cls)`` when it makes a request, so here
    that call answers the attribute's value, at the cost of one call per
    request. A property (``add_request_method(property=True)``) would make
    Pyramid build a class for every request: 18 µs measured, nearly twice a
    hello-world request, for every request of the app.
    """

    def __get__(self, request: Any, cls: Any = None) -> UploadProgress | None:
        upload = request.environ.get(ENVIRON_KEY)
        return None if upload is None else UploadProgress(upload)


upload_progress = _UploadProgressAttribute()
