"""Clocks. Lyra reads time from a :class:`Clock`, never from ``time.time()``: the wall clock
when live, the data's clock in replay, a hand-moved clock in tests — so replays are
deterministic and no test depends on the speed of the machine.

A clock answers two questions:

* :meth:`Clock.now_ms` — *what time is it?* Epoch milliseconds, UTC. Use it for anything
  recorded or compared across processes: event timestamps, heartbeats, time-to-live checks.
* :meth:`Clock.monotonic_s` — *how long has it been?* Seconds from an arbitrary origin that
  never goes back. Use it for intervals measured inside one process (a feed gone quiet, a
  grace window, a cache's age): the wall clock can be stepped by NTP, this one cannot.

Three clocks satisfy it:

>>> WALL_CLOCK.now_ms() > 1_700_000_000_000   # the real time (the default everywhere)
True
>>> clock = ReplayClock(1_700_000_000_000)   # time as replayed data says; sessions advance it
>>> clock.advance_to(1_700_000_060_000)      # ... to each bar's close
>>> clock.now_ms(), clock.monotonic_s()
(1700000060000, 1700000060.0)
>>> clock = ManualClock(1_700_000_000_000)   # tests: ``clock.advance(30.0)`` instead of sleeping
>>> clock.advance(30.0)
1700000030000

Components take a ``clock`` argument that defaults to :data:`WALL_CLOCK`. Real *waiting*
(``asyncio.sleep``, socket timeouts) stays on the event loop's real time; the clock decides
what the waiting *means* (stale or not, expired or not), so a test moves the clock and then
waits on the outcome instead of sleeping past a threshold.
"""

from __future__ import annotations

import time
from typing import Protocol

from lyra.core.errors import ValidationError


class Clock(Protocol):
    """Anything that tells the current time (ms UTC) and measures intervals (seconds)."""

    def now_ms(self) -> int:
        """The current time, epoch milliseconds UTC."""
        ...

    def monotonic_s(self) -> float:
        """Seconds since an arbitrary origin; never goes back (for intervals, not dates)."""
        ...


class WallClock:
    """The real time: :func:`time.time_ns` and :func:`time.monotonic`."""

    __slots__ = ()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_s(self) -> float:
        return time.monotonic()

    def __repr__(self) -> str:
        return "WallClock()"


#: The one wall clock: the default ``clock`` of every component.
WALL_CLOCK = WallClock()


class ReplayClock:
    """Time as the replayed data says. Only moves forward."""

    __slots__ = ("_now",)

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def monotonic_s(self) -> float:
        """Data time in seconds: it only moves forward, so it is monotonic too."""
        return self._now / 1000.0

    def advance_to(self, ts_ms: int) -> None:
        """Move to ``ts_ms``; going back in time is an error (out-of-order data)."""
        if ts_ms < self._now:
            raise ValidationError(
                "ts", ts_ms, f"replay clock cannot go back from {self._now}", "sort the data by time"
            )
        self._now = ts_ms

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._now})"


class ManualClock(ReplayClock):
    """A clock that moves only when told: for tests and notebooks.

    >>> clock = ManualClock(1_700_000_000_000)  # e.g. LiveFeed(sources, stale_after=30.0, clock=clock)
    >>> clock.advance(31.0)   # the feed's stale monitor now sees 31 quiet seconds
    1700000031000
    >>> clock.advance(-1.0)
    Traceback (most recent call last):
    ...
    lyra.core.errors.ValidationError: seconds=-1.0: a clock only moves forward (pass seconds >= 0)

    Both readings move together (``monotonic_s() == now_ms() / 1000``); like a
    :class:`ReplayClock` it never goes back.
    """

    __slots__ = ()

    def advance(self, seconds: float) -> int:
        """Move forward by ``seconds`` (rounded to the ms); returns the new ``now_ms()``."""
        if not seconds >= 0:
            raise ValidationError("seconds", seconds, "a clock only moves forward", "pass seconds >= 0")
        self._now += round(seconds * 1000)
        return self._now


__all__ = ["WALL_CLOCK", "Clock", "ManualClock", "ReplayClock", "WallClock"]
