"""Market data events: bars, trades, quotes and order-book snapshots.

Market data is float64 (it is measurement, not money); timestamps are int ms UTC.
The ledger converts prices to ``Decimal`` at the fill, in one place (``lyra.core.values``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AggressorSide(StrEnum):
    """Which side took liquidity in a trade."""

    BUY = "buy"  #: the buyer crossed the spread
    SELL = "sell"  #: the seller crossed the spread
    UNKNOWN = ""  #: the source does not say


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV candle. ``ts`` is the candle's **open** time in ms UTC."""

    instrument_id: str
    timeframe: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Trade:
    """One public trade print."""

    instrument_id: str
    ts: int
    price: float
    size: float
    side: AggressorSide = AggressorSide.UNKNOWN
    trade_id: str = ""


@dataclass(frozen=True, slots=True)
class Quote:
    """Best bid and offer at a moment."""

    instrument_id: str
    ts: int
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float

    @property
    def mid(self) -> float:
        return (self.bid_price + self.ask_price) / 2.0


@dataclass(frozen=True, slots=True)
class BookLevel:
    """One price level of an order book."""

    price: float
    size: float


@dataclass(frozen=True, slots=True)
class OrderBookSnapshot:
    """The visible book at a moment: bids best (highest) first, asks best (lowest) first."""

    instrument_id: str
    ts: int
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    sequence: int = 0

    @property
    def best_bid(self) -> BookLevel | None:
        return self.bids[0] if self.bids else None

    @property
    def best_ask(self) -> BookLevel | None:
        return self.asks[0] if self.asks else None


MarketEvent = Bar | Trade | Quote | OrderBookSnapshot
