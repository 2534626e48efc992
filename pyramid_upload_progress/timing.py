"""Time, as the tracking of uploads reads it: the clock, and the throttle
of one upload's progress writes."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple, Protocol


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


class Throttle(Protocol):
    """When one upload's writes go to its store; made per upload by the
    execution policy, for the store it has (see
    :func:`throttle_factory`)."""

    progress: bool
    """Whether the store takes progress writes at all (a throttled store); a
    store that reads the live progress (memory) does not."""

    def due(self) -> bool:
        """Whether a write may go now: a progress write, or a stage of the
        same name as the last one."""

    def wrote(self) -> None:
        """A write has just gone: the next is due an interval from now."""


class Unthrottled:
    """A store that reads each upload's live progress: no progress writes,
    and every stage written at once."""

    __slots__ = ()
    progress = False

    def due(self) -> bool:
        return True

    def wrote(self) -> None:
        pass


class Interval:
    """A throttled store: at most one write per ``interval`` seconds, the
    first an interval after the start (which recorded nothing received)."""

    __slots__ = ("_interval", "_monotonic", "_next")
    progress = True

    def __init__(self, interval: float, monotonic: Callable[[], float]) -> None:
        self._interval = interval
        self._monotonic = monotonic
        self._next = monotonic() + interval

    def due(self) -> bool:
        return self._monotonic() >= self._next

    def wrote(self) -> None:
        self._next = self._monotonic() + self._interval


_UNTHROTTLED = Unthrottled()


def throttle_factory(throttled: bool, interval: float) -> Callable[[Clock], Throttle]:
    """What makes each upload's :class:`Throttle` on a clock: an
    :class:`Interval` of ``interval`` seconds for a ``throttled`` store,
    else the one :class:`Unthrottled` (it holds nothing per upload)."""
    if not throttled:
        return lambda clock: _UNTHROTTLED
    return lambda clock: Interval(interval, clock.monotonic)
