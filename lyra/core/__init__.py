"""Domain core: instruments, market data, orders and their state machine, fills, positions,
value types and clocks. Imports nothing from the rest of Lyra."""

from lyra.core.clock import Clock, ReplayClock, WallClock
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
from lyra.core.values import Money, Price, Quantity, to_decimal

__all__ = [
    "TRANSITIONS",
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
    "MarketEvent",
    "Money",
    "NetworkError",
    "Order",
    "OrderBookSnapshot",
    "OrderEvent",
    "OrderEventType",
    "OrderIntent",
    "OrderStatus",
    "OrderType",
    "Position",
    "Price",
    "Quantity",
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
    "to_decimal",
]
