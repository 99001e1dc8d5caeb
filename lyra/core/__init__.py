"""Domain core: instruments, market data, orders and their state machine, fills, positions,
exact-number helpers and clocks. Imports nothing from the rest of Lyra."""

from lyra.core.clock import WALL_CLOCK, Clock, ManualClock, ReplayClock, WallClock
from lyra.core.enums import (
    Liquidity,
    OrderEventType,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from lyra.core.errors import (
    ConfigError,
    IllegalTransition,
    InsufficientFunds,
    IntegrityError,
    InvalidOrder,
    LyraError,
    NetworkError,
    RateLimited,
    RiskRejected,
    TemporaryError,
    ValidationError,
)
from lyra.core.instrument import Instrument
from lyra.core.market import AggressorSide, Bar, BookLevel, MarketEvent, OrderBookSnapshot, Quote, Trade
from lyra.core.orders import TRANSITIONS, Fill, Order, OrderEvent, OrderIntent, client_order_id
from lyra.core.positions import Position
from lyra.core.values import plain_str, to_decimal

__all__ = [
    "TRANSITIONS",
    "WALL_CLOCK",
    "AggressorSide",
    "Bar",
    "BookLevel",
    "Clock",
    "ConfigError",
    "Fill",
    "IllegalTransition",
    "Instrument",
    "InsufficientFunds",
    "IntegrityError",
    "InvalidOrder",
    "Liquidity",
    "LyraError",
    "ManualClock",
    "MarketEvent",
    "NetworkError",
    "Order",
    "OrderBookSnapshot",
    "OrderEvent",
    "OrderEventType",
    "OrderIntent",
    "OrderStatus",
    "OrderType",
    "Position",
    "Quote",
    "RateLimited",
    "ReplayClock",
    "RiskRejected",
    "Side",
    "TemporaryError",
    "TimeInForce",
    "Trade",
    "ValidationError",
    "WallClock",
    "client_order_id",
    "plain_str",
    "to_decimal",
]
