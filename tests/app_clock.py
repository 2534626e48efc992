"""A clock a test gives an app's tracking, to let time pass without
waiting for it: the app's policy takes it (``UploadProgressPolicy.clock``)."""
from __future__ import annotations

import time
from typing import Any

from pyramid.interfaces import IExecutionPolicy

from pyramid_upload_progress.timing import Clock


class AheadClock:
    """The real time plus what the test has advanced it by: the app's
    tracking runs ahead of the stores, which keep their own clocks (a
    Redis store reads the server's)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def time(self) -> float:
        return time.time() + self.ahead

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead

    def advance(self, seconds: float) -> None:
        self.ahead += seconds


def give_clock(app: Any) -> AheadClock:
    """Make ``app``'s tracking read the time from a new :class:`AheadClock`."""
    clock = AheadClock()
    app.registry.getUtility(IExecutionPolicy).clock = Clock(clock.time, clock.monotonic)
    return clock
