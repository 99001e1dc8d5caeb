"""The shape of a venue's facts: :class:`Venue` (one per venue) and its :class:`VenueShape`.

The rows themselves are in :mod:`lyra.venues.registry`. Everything here is frozen data: code
asks these objects ("how many candles per request?", "which parameter carries our client
order id?", "what does this raw status mean?") instead of testing a venue's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from lyra.core.enums import TimeInForce

#: ccxt's unified order statuses. They double as the "families" the raw tables map into:
#: ``open`` working at the venue, ``closed`` done (completely filled), ``canceled``,
#: ``expired`` (time in force ran out), ``rejected`` (the venue refused it).
FAMILIES: frozenset[str] = frozenset({"open", "closed", "canceled", "expired", "rejected"})


def read_only(d: dict[str, str]) -> Mapping[str, str]:
    """A read-only view of ``d`` (the tables below are shared, so nobody may edit them)."""
    return MappingProxyType(d)


@dataclass(frozen=True, slots=True)
class VenueShape:
    """Where one venue's raw payload (ccxt's ``info``) says what ccxt's unified fields lose.

    ccxt's unified ``status`` folds several venue states into one (Bybit's
    ``PartiallyFilledCanceled`` becomes ``closed``), and its ``clientOrderId`` is not always
    ours. The mappers in :mod:`lyra.execution.venue_reports` read these tables; a raw value
    that is not in a table is refused, never guessed at.
    """

    #: raw keys holding the order status (REST and websocket spellings); the first present wins.
    #: In every key list a dot reads a nested object (``descr.ordertype``).
    status_fields: tuple[str, ...]
    #: raw status -> family (one of :data:`FAMILIES`); anything else is an unknown shape
    statuses: Mapping[str, str]
    #: raw keys holding our client order id on orders and trades, most authoritative first
    client_id_fields: tuple[str, ...]
    #: whether ccxt's unified ``clientOrderId`` may be used when no raw field has one
    trust_ccxt_client_id: bool = True
    #: raw keys naming the order kind (``type``, ``stopOrderType``, ``descr.ordertype``)
    kind_fields: tuple[str, ...] = ()
    #: raw kinds Lyra has no order type for (take-profit, trailing stop, OCO, algos);
    #: ccxt flattens several of them into ``market``/``limit``
    unsupported_kinds: frozenset[str] = frozenset()
    #: raw kinds that are stop orders: they must come with a trigger price
    stop_kinds: frozenset[str] = frozenset()
    #: raw keys explaining a cancel, reject or expiry, joined in this order
    reason_fields: tuple[str, ...] = ()
    #: reason values that explain nothing
    reason_placeholders: frozenset[str] = frozenset()
    #: a fixed reason for raw statuses that carry one (self-trade prevention, MMP...)
    status_reasons: Mapping[str, str] = field(default_factory=lambda: read_only({}))
    #: the currency of an order's total fee when ccxt leaves it out: ``"quote"`` where the
    #: venue's API documents order fees in the quote currency, ``None`` to leave it unknown
    order_fee_currency: str | None = None
    #: what a missing time in force means on this venue (its documented default)
    default_time_in_force: TimeInForce = TimeInForce.GTC
    #: where :attr:`statuses` knowingly differs from ccxt's own ``parse_order_status``
    #: (tested against the installed ccxt): raw status -> what ccxt says
    ccxt_status_differences: Mapping[str, str | None] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Venue:
    """Everything Lyra knows about one venue, in one frozen row (keyword arguments only).

    The feeds read the market-data fields, :class:`~lyra.execution.ccxt_broker.CcxtBroker`
    the order-entry fields, the answer mappers :attr:`shape`, and the recorded markets
    :attr:`markets_precision`.
    """

    name: str  #: Lyra's name: the key in ``VENUES`` and the prefix of instrument ids
    ccxt_id: str  #: the ccxt class name (``ccxt.<id>`` / ``ccxt.pro.<id>``)
    shape: VenueShape  #: what the venue's raw order/trade payloads mean
    #: how the ccxt markets Lyra ships for the venue (``lyra/execution/venue_markets``) state
    #: precision: ``"decimals"`` (ccxt's legacy DECIMAL_PLACES) or ``"tick"`` (TICK_SIZE);
    #: ``None`` when no markets ship for it
    markets_precision: Literal["decimals", "tick"] | None = None

    # --- market data (lyra.feeds)
    candle_limit: int  #: most candles one OHLCV request returns
    trade_limit: int  #: most trades one public-trades request returns
    timeframes: tuple[str, ...]  #: candle sizes the venue serves
    ws_channels: frozenset[str]  #: websocket channels: trades, bbo, book, ohlcv
    has_sandbox: bool  #: a testnet/sandbox exists (``exchange.set_sandbox_mode``)
    trade_ids_sequential: bool  #: public trade ids increase by exactly 1 (gap = missing trade)
    book_checksum: str | None = None  #: order-book checksum algorithm, if the venue sends one

    # --- order entry (lyra.execution.ccxt_broker)
    client_order_id_param: str  #: the order parameter carrying our client order id
    #: the parameter that looks an order up (fetch/cancel) by our client order id
    client_order_id_query_param: str = "clientOrderId"
    client_order_id_max_len: int = 36  #: longest client order id the venue accepts
    #: private websocket streams ccxt.pro offers: ``orders``, ``my_trades``, ``balance``
    ws_private: frozenset[str] = frozenset()
    #: open orders and own trades can only be listed per symbol
    private_lists_need_symbol: bool = False
    #: order-entry errors that mean "already have that client order id" (the first send landed)
    duplicate_order_messages: tuple[str, ...] = ()
