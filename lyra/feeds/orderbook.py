"""A level-2 order book kept up to date from a snapshot plus deltas.

Each side is a ``price -> size`` map; a delta with size 0 deletes the level. Deltas carry
update ids: a delta whose first id is not the next one after the book's last id means
messages were lost, so the book raises :class:`SequenceGap`, marks itself ``needs_resync``
and refuses further deltas until a fresh snapshot arrives (the venue's REST snapshot or a
resubscription). Stale deltas (ids already applied) are ignored, as Binance's sync rules ask.

>>> book = OrderBook("binance:BTC/USDT")
>>> book.apply_snapshot([(100.0, 1.0)], [(101.0, 2.0)], sequence=10, ts=0)
>>> book.apply_delta([(100.0, 0.0), (99.5, 3.0)], [], last_id=11, ts=1)
True
>>> book.snapshot(5).best_bid
BookLevel(price=99.5, size=3.0)

Kraken sends a CRC32 checksum of its top 10 levels with each update;
:func:`kraken_checksum` computes it so a replay can verify the book after every message.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lyra.core.errors import TemporaryError, ValidationError
from lyra.core.market import BookLevel, OrderBookSnapshot

Level = tuple[float, float]


class SequenceGap(TemporaryError):
    """Book updates were lost: the book must be rebuilt from a new snapshot."""

    def __init__(self, instrument_id: str, expected: int, got: int) -> None:
        self.instrument_id = instrument_id
        self.expected = expected
        self.got = got
        super().__init__(f"{instrument_id}: update id gap, expected {expected}, got {got}")


class OrderBook:
    """An L2 book for one instrument. Prices and sizes are float64 measurements."""

    def __init__(self, instrument_id: str, *, depth: int | None = None) -> None:
        self.instrument_id = instrument_id
        self.depth = depth  # venues like Kraken keep only the top ``depth`` levels per side
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.sequence: int | None = None
        self.ts = 0
        self.needs_resync = True  # no snapshot yet
        self.gaps = 0
        self.stale_dropped = 0

    # -- updates --------------------------------------------------------------------------
    def apply_snapshot(
        self, bids: Iterable[Level], asks: Iterable[Level], *, sequence: int | None, ts: int
    ) -> None:
        """Replace the whole book."""
        self.bids = {p: s for p, s in bids if s > 0}
        self.asks = {p: s for p, s in asks if s > 0}
        self.sequence = sequence
        self.ts = ts
        self.needs_resync = False
        self._truncate()

    def apply_delta(
        self,
        bids: Iterable[Level],
        asks: Iterable[Level],
        *,
        last_id: int | None = None,
        first_id: int | None = None,
        ts: int,
    ) -> bool:
        """Apply one update message; return False if it was stale and ignored.

        ``last_id`` is the message's (last) update id, ``first_id`` its first one when the
        venue batches several (Binance ``U``/``u``); both None for venues without ids.
        Raises :class:`SequenceGap` when updates are missing.
        """
        if self.needs_resync:
            raise SequenceGap(self.instrument_id, -1 if self.sequence is None else self.sequence + 1,
                              -1 if last_id is None else last_id)
        if last_id is not None and self.sequence is not None:
            first = last_id if first_id is None else first_id
            if last_id <= self.sequence:
                self.stale_dropped += 1
                return False
            if first > self.sequence + 1:
                self.needs_resync = True
                self.gaps += 1
                raise SequenceGap(self.instrument_id, self.sequence + 1, first)
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, size in levels:
                if size < 0 or price <= 0:
                    raise ValidationError("book level", (price, size), "negative size or non-positive price")
                if size == 0:
                    side.pop(price, None)
                else:
                    side[price] = size
        if last_id is not None:
            self.sequence = last_id
        self.ts = ts
        self._truncate()
        return True

    def _truncate(self) -> None:
        if self.depth is None:
            return
        for side, best_first in ((self.bids, True), (self.asks, False)):
            if len(side) > self.depth:
                keep = self._top(side, self.depth, best_first)
                for price in set(side) - {p for p, _ in keep}:
                    del side[price]

    # -- reading --------------------------------------------------------------------------
    @staticmethod
    def _top(side: Mapping[float, float], n: int, highest: bool) -> list[Level]:
        pick = heapq.nlargest if highest else heapq.nsmallest
        return [(p, side[p]) for p in pick(n, side)]

    def top_bids(self, n: int) -> list[Level]:
        """The best ``n`` bids, highest price first."""
        return self._top(self.bids, n, True)

    def top_asks(self, n: int) -> list[Level]:
        """The best ``n`` asks, lowest price first."""
        return self._top(self.asks, n, False)

    @property
    def best_bid(self) -> float | None:
        return max(self.bids) if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return min(self.asks) if self.asks else None

    @property
    def is_crossed(self) -> bool:
        """True if the best bid is at or above the best ask (a broken book)."""
        bb, ba = self.best_bid, self.best_ask
        return bb is not None and ba is not None and bb >= ba

    def snapshot(self, n: int = 10) -> OrderBookSnapshot:
        """The top ``n`` levels per side as an immutable :class:`OrderBookSnapshot`."""
        return OrderBookSnapshot(
            instrument_id=self.instrument_id,
            ts=self.ts,
            bids=tuple(BookLevel(p, s) for p, s in self.top_bids(n)),
            asks=tuple(BookLevel(p, s) for p, s in self.top_asks(n)),
            sequence=self.sequence or 0,
        )


# -- Kraken ----------------------------------------------------------------------------------
def _kraken_digits(value: float, decimals: int) -> str:
    # Kraken: format with the pair's decimals, drop the '.', strip leading zeros.
    return f"{value:.{decimals}f}".replace(".", "").lstrip("0")


def kraken_checksum(book: OrderBook, price_decimals: int, size_decimals: int) -> int:
    """Kraken WS v1 book checksum: CRC32 of the top 10 asks (ascending) then the top 10 bids
    (descending), each level as price digits + size digits. Compare with the message's ``c``."""
    parts: list[str] = []
    for price, size in [*book.top_asks(10), *book.top_bids(10)]:
        parts.append(_kraken_digits(price, price_decimals))
        parts.append(_kraken_digits(size, size_decimals))
    return zlib.crc32("".join(parts).encode()) & 0xFFFFFFFF


def kraken_decimals(levels: Sequence[Sequence[str]]) -> tuple[int, int]:
    """The (price, size) decimals Kraken uses for a pair, read off raw level strings."""
    if not levels:
        raise ValidationError("levels", levels, "empty", "pass the snapshot's levels")
    price, size = levels[0][0], levels[0][1]
    return len(price.split(".")[1]) if "." in price else 0, len(size.split(".")[1]) if "." in size else 0


def apply_kraken_v1(book: OrderBook, message: Sequence[Any]) -> int | None:
    """Apply one Kraken WS v1 book message (``[channelID, {...}, [{...},] name, pair]``).

    Snapshots carry ``as``/``bs``; updates ``a``/``b`` (one or two dicts). Returns the
    checksum the message carries (``c``), or None for a snapshot. Levels come as
    ``[price, volume, timestamp(, "r")]`` strings.
    """
    payloads = [p for p in message[1:] if isinstance(p, dict)]
    if not payloads:
        raise ValidationError("kraken message", message, "no book payload")
    first = payloads[0]
    if "as" in first or "bs" in first:
        book.apply_snapshot(_kraken_levels(first.get("bs", [])), _kraken_levels(first.get("as", [])),
                            sequence=None, ts=_kraken_ts(first.get("bs", []) + first.get("as", [])))
        return None
    checksum: int | None = None
    for p in payloads:
        raw = p.get("b", []) + p.get("a", [])
        book.apply_delta(_kraken_levels(p.get("b", [])), _kraken_levels(p.get("a", [])),
                         ts=_kraken_ts(raw) or book.ts)
        if "c" in p:
            checksum = int(p["c"])
    return checksum


def _kraken_levels(raw: Iterable[Sequence[str]]) -> list[Level]:
    return [(float(lv[0]), float(lv[1])) for lv in raw]


def _kraken_ts(raw: Iterable[Sequence[str]]) -> int:
    return max((round(float(lv[2]) * 1000) for lv in raw), default=0)
