"""Aggregation of unauthenticated failures in the audit log (so nobody can flood it).

A bad API key, a malformed username, a forged MFA ticket or a throttled login costs an
attacker nothing; written one row each, they would fill the event log (the issue measured
~200 rows/s). :class:`FailureAggregator` lets the *first* failure of each kind
``(event kind, reason, client, subject)`` per window (1 minute) through at once, with its
detail, so every distinct failure is on record when it happens; the rest of that window are
counted in memory and written as **one** row with ``count`` when the window is over (the next
failure after it, or :meth:`drain` at shutdown). Rows per source and kind: at most two a
window, however fast the flood.

>>> from datetime import UTC, datetime, timedelta
>>> agg = FailureAggregator()
>>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
>>> key = ("apikey_rejected", "unknown key", "10.0.0.9", "system")
>>> [agg.admit(key, t0 + timedelta(seconds=i))[0] for i in range(3)]
[True, False, False]
>>> agg.admit(key, t0 + timedelta(minutes=2))  # a new window: the old count comes out first
(True, [(('apikey_rejected', 'unknown key', '10.0.0.9', 'system'), 2)])
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

FailureKey = tuple[str, str, str, str]  # (event kind, reason, client, subject)


class FailureAggregator:
    """Counts failures per key and window; thread-safe (the proxy calls from a pool)."""

    def __init__(self, window: timedelta = timedelta(minutes=1), max_keys: int = 10_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._open: dict[FailureKey, tuple[datetime, int]] = {}  # key -> (window start, suppressed)
        self._next_sweep: datetime | None = None

    def admit(self, key: FailureKey, at: datetime) -> tuple[bool, list[tuple[FailureKey, int]]]:
        """(write this failure now?, windows over by ``at`` with a count to write first).

        True opens a window for ``key``; False means counted, to be written with the count."""
        with self._lock:
            due = self._sweep(at)
            cur = self._open.get(key)
            if cur is not None:
                self._open[key] = (cur[0], cur[1] + 1)
                return False, due
            if len(self._open) >= self.max_keys:
                return False, due  # full: nothing more until windows end (memory stays bounded)
            self._open[key] = (at, 0)
            if self._next_sweep is None or at + self.window < self._next_sweep:
                self._next_sweep = at + self.window
            return True, due

    def _sweep(self, at: datetime) -> list[tuple[FailureKey, int]]:
        if self._next_sweep is None or at < self._next_sweep:
            return []
        out: list[tuple[FailureKey, int]] = []
        nxt: datetime | None = None
        for key, (start, n) in list(self._open.items()):
            end = start + self.window
            if at >= end:
                del self._open[key]
                if n:
                    out.append((key, n))
            elif nxt is None or end < nxt:
                nxt = end
        self._next_sweep = nxt
        return out

    def drain(self) -> list[tuple[FailureKey, int]]:
        """Every pending count (shutdown): (key, count) to write now."""
        with self._lock:
            out = [(k, n) for k, (_s, n) in self._open.items() if n]
            self._open.clear()
            self._next_sweep = None
            return out


__all__ = ["FailureAggregator", "FailureKey"]
