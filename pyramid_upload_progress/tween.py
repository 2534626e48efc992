"""The tween that says whose upload a request is, inside the app's handling."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .upload import ENVIRON_KEY


def owner_tween_factory(handler: Callable[[Any], Any], registry: Any) -> Callable[[Any], Any]:
    """Make the tween that looks up a tracked upload's owner.

    It sits just over ``MAIN``, under pyramid_tm and the exception view
    tween: the security policy is asked only once the request's transaction
    has begun, as an app whose policy loads the user from the database
    requires. On a request that is not tracked it does one environ look-up.
    """

    def upload_owner_tween(request: Any) -> Any:
        upload = request.environ.get(ENVIRON_KEY)
        if upload is not None:
            upload.resolve_owner(request)
        return handler(request)

    return upload_owner_tween
