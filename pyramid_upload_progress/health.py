"""The store's health, as the add-on logs it: an outage once, its end once."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class StoreHealth:
    """Logs a store's outage once, with a traceback, and its end once; not
    a traceback per request."""

    def __init__(self) -> None:
        self.down = False

    def failed(self, doing: str) -> None:
        """Called from an ``except`` block: the store failed ``doing``."""
        if not self.down:
            self.down = True
            log.warning("upload progress: the store failed %s; uploads are "
                        "served untracked and reports answer 503 until it "
                        "answers again", doing, exc_info=True)

    def answered(self) -> None:
        """A store call succeeded."""
        if self.down:
            self.down = False
            log.warning("upload progress: the store answers again")
