"""Whose upload a request is: the default owner, and the tween that asks."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .environ import ENVIRON_KEY

Owner = Callable[[Any], "str | None"]
"""``owner(request) -> str | None``: whose upload (and whose listing)."""


def authenticated_userid(request: Any) -> object:
    """The default owner of an upload: the security policy's principal."""
    return request.authenticated_userid


@functools.cache
def as_text(owner: Callable[[Any], object]) -> Owner:
    """``owner`` with its answer as a string: stores key uploads by it, and a
    security policy may well return an int (a database id)."""

    def owner_text(request: Any) -> str | None:
        value = owner(request)
        return None if value is None else str(value)

    return owner_text


def owner_tween_factory(handler: Callable[[Any], Any], registry: Any) -> Callable[[Any], Any]:
    """Make the tween that looks up a tracked upload's owner.

    It sits just over ``MAIN``, under pyramid_tm and the exception view
    tween: the security policy is asked only once the request's transaction
    has begun, as an app whose policy loads the user from the database
    requires. There the upload's ``UploadStarted`` event is sent, so a
    subscriber that raises an HTTP exception answers through the app's
    exception views. On a request that is not tracked it does one environ
    look-up.
    """

    def upload_owner_tween(request: Any) -> Any:
        upload = request.environ.get(ENVIRON_KEY)
        if upload is not None:
            upload.resolve_owner(request)
        return handler(request)

    return upload_owner_tween
