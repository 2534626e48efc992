"""One tracked upload, from its first byte to its end."""
from __future__ import annotations

import logging
import time
from typing import Any

from .settings import Owner
from .stream import CountingInput

log = logging.getLogger(__name__)

ENVIRON_KEY = "pyramid_upload_progress.upload"
"""Where a tracked request's :class:`TrackedUpload` lives in the environ."""


class TrackedUpload:
    """The link between one request's counting input and its store record.

    A store that fails is never allowed to reach the upload: the failure is
    logged once and the upload goes on untracked (the store is dropped for
    the rest of it). A retried request (pyramid_retry) keeps this one object
    in its environ, so its bytes are counted once, its owner looked up once
    and its record ended once.
    """

    def __init__(self, store: Any, key: str, raw_input: Any,
                 size: int | None, owner: Owner, interval: float) -> None:
        self._store = store
        self._key = key
        self._owner = owner
        self._interval = interval
        self._next_write = 0.0
        self._owner_looked_up = False
        self._finished = False
        self.input = CountingInput(raw_input, size, self._progress)

    def _progress(self, received: int) -> None:
        """Called by the input on every read that brought new bytes."""
        store = self._store
        if store is None:
            return
        if self._interval:
            now = time.monotonic()
            if now < self._next_write:
                return
            self._next_write = now + self._interval
        try:
            store.update(self._key, received)
        except Exception:
            self._drop_store("recording progress")

    def resolve_owner(self, request: Any) -> None:
        """Look up whose upload this is, once, inside the app's handling.

        An owner lookup that raises leaves the upload untracked, and served.
        """
        if self._owner_looked_up or self._store is None:
            return
        self._owner_looked_up = True
        try:
            owner = self._owner(request)
        except Exception:
            log.exception("upload progress: looking up the owner of an upload "
                          "failed; the upload is served untracked")
            store, self._store = self._store, None
            try:
                store.discard(self._key)
            except Exception:
                log.exception("upload progress: the store failed discarding an upload")
            return
        try:
            self._store.set_owner(self._key, owner)
        except Exception:
            self._drop_store("recording the owner")

    def finish(self, status: int | None, failed: bool) -> None:
        """End the record once: with the response status, or failed."""
        if self._finished:
            return
        self._finished = True
        if self._store is None:
            return
        try:
            self._store.finish(self._key, self.input.received, status,
                               failed or self.input.disconnected)
        except Exception:
            self._drop_store("recording the end")

    def _drop_store(self, doing: str) -> None:
        self._store = None
        log.exception("upload progress: the store failed %s; the upload goes "
                      "on untracked", doing)
