"""A histogram as plain counts, for observers on a session's loop (no lock, no label lookup)."""

from __future__ import annotations

import bisect


class PlainHistogram:
    """A histogram kept as plain counts per bucket: observed on a hot path without a lock (one
    writer thread), turned into a ``HistogramMetricFamily`` at scrape time with
    :meth:`cumulative` and :attr:`sum`."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, v)] += 1
        self.sum += v

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        total = 0
        for le, n in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            total += n
            out.append((le, float(total)))
        return out


__all__ = ["PlainHistogram"]
