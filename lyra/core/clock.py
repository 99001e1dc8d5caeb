"""Clocks. Sessions read time from a clock, never from ``time.time()``: the wall clock when
live, the data's clock in replay, so replays are deterministic."""

from __future__ import annotations

import time
from typing import Protocol

from lyra.core.errors import ValidationError


class Clock(Protocol):
    """Anything that tells the current time in ms UTC."""

    def now_ms(self) -> int: ...


class WallClock:
    """The real time."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ReplayClock:
    """Time as the replayed data says. Only moves forward."""

    __slots__ = ("_now",)

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance_to(self, ts_ms: int) -> None:
        """Move to ``ts_ms``; going back in time is an error (out-of-order data)."""
        if ts_ms < self._now:
            raise ValidationError(
                "ts", ts_ms, f"replay clock cannot go back from {self._now}", "sort the data by time"
            )
        self._now = ts_ms
