"""Time, as the tracking of uploads reads it: the clock, and the throttle
of one upload's progress writes."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple


class Clock(NamedTuple):
    """Where the tracking of uploads reads the time.

    ``time`` gives epoch seconds, for the times of a record (start, end of
    the body, end); ``monotonic`` gives seconds that never go back, for the
    interval between two writes. The execution policy takes one and hands it
    to every upload it tracks; tests hand it one they advance themselves,
    both functions reading the same counter.
    """

    time: Callable[[], float]
    monotonic: Callable[[], float]


SYSTEM_CLOCK = Clock(time.time, time.monotonic)


class Throttle:
    """When one upload's writes go to its store: at most one per
    ``interval`` seconds, the first an interval after the start (which
    recorded nothing received). Made per upload by the execution policy
    (:func:`throttle_factory`).

    ``progress`` says whether the store takes progress writes at all: a
    throttled store (SQLite, Redis) does; one that reads each upload's live
    progress (memory) does not, and its interval is 0: every stage is
    written at once.
    """

    __slots__ = ("progress", "monotonic", "due_at", "_interval")

    def __init__(self, progress: bool, interval: float,
                 monotonic: Callable[[], float]) -> None:
        self.progress = progress
        self.monotonic = monotonic
        self.due_at = monotonic() + interval
        """When the next write may go, on ``monotonic``'s clock."""
        self._interval = interval

    def due(self) -> bool:
        """Whether a write may go now: a progress write, or a stage of the
        same name as the last one."""
        return self.monotonic() >= self.due_at

    def wrote(self) -> None:
        """A write has just gone: the next is due an interval from now."""
        self.due_at = self.monotonic() + self._interval


def throttle_factory(throttled: bool, interval: float) -> Callable[[Clock], Throttle]:
    """What makes each upload's :class:`Throttle` on a clock, for a store
    that is ``throttled`` (every ``interval`` seconds) or not."""
    if not throttled:
        interval = 0.0
    return lambda clock: Throttle(throttled, interval, clock.monotonic)
