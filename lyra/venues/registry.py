"""The venues Lyra knows, one :class:`~lyra.venues.model.Venue` row each.

Adding a venue is adding a row here (with tests for its raw statuses); nothing else in Lyra
tests a venue's name.

>>> get_venue("binance").candle_limit
1000
>>> get_venue("bybit").shape.statuses["PartiallyFilledCanceled"]
'canceled'
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from lyra.core.errors import ValidationError
from lyra.venues.model import Venue, VenueShape, read_only

_ALL_WS = frozenset({"trades", "bbo", "book", "ohlcv"})
_ALL_PRIVATE = frozenset({"orders", "my_trades", "balance"})
_TF_COMMON = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w")

# REST order: status, type, clientOrderId / origClientOrderId (cancel answers).
# Websocket executionReport: X (status), o (type), c (client id), C (original client id on
# cancels). On a cancel, clientOrderId / c is the id of the cancel request itself.
_BINANCE = Venue(
    name="binance", ccxt_id="binance", markets_precision="decimals",
    candle_limit=1000, trade_limit=1000,
    timeframes=("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                "1d", "3d", "1w"),
    ws_channels=_ALL_WS, has_sandbox=True, trade_ids_sequential=True,
    client_order_id_param="newClientOrderId", client_order_id_query_param="origClientOrderId",
    ws_private=_ALL_PRIVATE, private_lists_need_symbol=True,
    duplicate_order_messages=("Duplicate order sent",),
    shape=VenueShape(
        status_fields=("status", "X"),
        statuses=read_only({
            "NEW": "open",
            "PENDING_NEW": "open",
            "PARTIALLY_FILLED": "open",
            # a cancel in flight is still a working order (fills may come); the session's
            # own REQUEST_CANCEL is what puts Lyra's order in PENDING_CANCEL
            "PENDING_CANCEL": "open",
            "FILLED": "closed",
            "CANCELED": "canceled",
            "REJECTED": "rejected",
            "EXPIRED": "expired",
            # expired by self-trade prevention: the venue cancelled it, no time in force ran out
            "EXPIRED_IN_MATCH": "canceled",
        }),
        client_id_fields=("origClientOrderId", "C", "clientOrderId", "c"),
        kind_fields=("type", "o", "origType"),
        unsupported_kinds=frozenset({
            "TAKE_PROFIT", "TAKE_PROFIT_LIMIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET",
        }),
        stop_kinds=frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "STOP", "STOP_MARKET"}),
        status_reasons=read_only({"EXPIRED_IN_MATCH": "self-trade prevention"}),
        ccxt_status_differences=MappingProxyType({
            "PENDING_NEW": "PENDING_NEW",  # ccxt leaves it unmapped
            "PENDING_CANCEL": "canceling",  # not a unified status
            "EXPIRED_IN_MATCH": "expired",
        }),
    ),
)

# V5 order: orderStatus, orderType + stopOrderType, orderLinkId, rejectReason, cancelType.
_BYBIT = Venue(
    name="bybit", ccxt_id="bybit",
    candle_limit=1000, trade_limit=1000, timeframes=_TF_COMMON,
    ws_channels=_ALL_WS, has_sandbox=True, trade_ids_sequential=False,
    client_order_id_param="orderLinkId", client_order_id_query_param="orderLinkId",
    ws_private=_ALL_PRIVATE,
    duplicate_order_messages=("OrderLinkedID is duplicate", "orderLinkId is duplicate"),
    shape=VenueShape(
        status_fields=("orderStatus",),
        statuses=read_only({
            "Created": "open",
            "New": "open",
            "PartiallyFilled": "open",
            "Untriggered": "open",  # a conditional order waiting for its trigger
            "Triggered": "open",
            "Active": "open",
            "PendingCancel": "open",
            "Filled": "closed",
            "Cancelled": "canceled",
            "PartiallyFilledCanceled": "canceled",  # ccxt says "closed"
            "Deactivated": "canceled",  # a conditional order cancelled before it triggered
            "Rejected": "rejected",
        }),
        client_id_fields=("orderLinkId",),
        kind_fields=("stopOrderType",),
        unsupported_kinds=frozenset({
            "TakeProfit", "PartialTakeProfit", "TrailingStop", "tpslOrder", "OcoOrder",
            "MmRateClose", "BidirectionalTpslOrder",
        }),
        stop_kinds=frozenset({"Stop", "StopLoss", "PartialStopLoss"}),
        reason_fields=("rejectReason", "cancelType"),
        reason_placeholders=frozenset({"", "EC_NoError", "UNKNOWN"}),
        status_reasons=read_only({"Deactivated": "conditional order deactivated"}),
        ccxt_status_differences=MappingProxyType({"PartiallyFilledCanceled": "closed"}),
    ),
)

# V5 order: state, ordType, clOrdId, cancelSource / cancelSourceReason.
_OKX = Venue(
    name="okx", ccxt_id="okx",
    candle_limit=300, trade_limit=100, timeframes=_TF_COMMON,
    ws_channels=_ALL_WS, has_sandbox=True, trade_ids_sequential=False, book_checksum="crc32-okx",
    client_order_id_param="clOrdId", client_order_id_query_param="clOrdId",
    client_order_id_max_len=32, ws_private=_ALL_PRIVATE,
    duplicate_order_messages=("Duplicated clOrdId",),
    shape=VenueShape(
        status_fields=("state",),
        statuses=read_only({
            "live": "open",
            "partially_filled": "open",
            "filled": "closed",
            "canceled": "canceled",
            "mmp_canceled": "canceled",
        }),
        client_id_fields=("clOrdId",),
        kind_fields=("ordType",),
        unsupported_kinds=frozenset({
            "conditional", "oco", "trigger", "move_order_stop", "iceberg", "twap", "chase",
            "optimal_limit_ioc", "mmp", "mmp_and_post_only", "elp",
        }),
        reason_fields=("cancelSourceReason",),
        reason_placeholders=frozenset({""}),
        status_reasons=read_only({"mmp_canceled": "market maker protection"}),
    ),
)

# REST QueryOrders/OpenOrders/ClosedOrders: status, descr.ordertype (read through ccxt),
# cl_ord_id, reason. Websocket v2 executions: order_status. ``userref`` is an integer tag, not
# a client order id (ccxt falls back to it, and "0" means none), so ccxt's clientOrderId is
# not used.
_KRAKEN = Venue(
    name="kraken", ccxt_id="kraken", markets_precision="tick",
    candle_limit=720, trade_limit=1000,
    timeframes=("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w"),
    ws_channels=_ALL_WS, has_sandbox=False, trade_ids_sequential=False,
    book_checksum="crc32-kraken",
    client_order_id_param="cl_ord_id", client_order_id_query_param="cl_ord_id",
    client_order_id_max_len=18, ws_private=_ALL_PRIVATE,
    shape=VenueShape(
        status_fields=("status", "order_status"),
        statuses=read_only({
            "pending": "open",
            "pending_new": "open",
            "new": "open",
            "open": "open",
            "partially_filled": "open",
            "closed": "closed",
            "filled": "closed",
            "canceled": "canceled",
            "expired": "expired",
        }),
        client_id_fields=("cl_ord_id",),
        trust_ccxt_client_id=False,
        kind_fields=("descr.ordertype", "order_type"),
        unsupported_kinds=frozenset({
            "take-profit", "take-profit-limit", "trailing-stop", "trailing-stop-limit",
            "settle-position", "iceberg",
        }),
        stop_kinds=frozenset({"stop-loss", "stop-loss-limit"}),
        reason_fields=("reason",),
        reason_placeholders=frozenset({""}),
        # Kraken documents an order's ``fee`` as "total fee (quote currency)"
        order_fee_currency="quote",
    ),
)

# Advanced Trade v3 order: status, order_type, client_order_id, reject_reason/messages.
_COINBASE = Venue(
    name="coinbase", ccxt_id="coinbase", markets_precision="tick",
    candle_limit=300, trade_limit=1000,
    timeframes=("1m", "5m", "15m", "30m", "1h", "2h", "6h", "1d"),
    ws_channels=frozenset({"trades", "bbo", "book"}), has_sandbox=False,
    trade_ids_sequential=False,
    client_order_id_param="client_order_id", client_order_id_query_param="client_order_id",
    client_order_id_max_len=128, ws_private=frozenset({"orders"}),
    shape=VenueShape(
        status_fields=("status",),
        statuses=read_only({
            "PENDING": "open",
            "QUEUED": "open",
            "OPEN": "open",
            "CANCEL_QUEUED": "open",
            "FILLED": "closed",
            "CANCELLED": "canceled",
            "EXPIRED": "expired",  # ccxt says "canceled"
            "FAILED": "rejected",  # ccxt says "canceled"
        }),
        client_id_fields=("client_order_id",),
        kind_fields=("order_type",),
        unsupported_kinds=frozenset({"BRACKET", "TAKE_PROFIT_STOP_LOSS", "TWAP", "SCALED"}),
        stop_kinds=frozenset({"STOP", "STOP_LIMIT"}),
        reason_fields=("reject_reason", "reject_message", "cancel_message"),
        reason_placeholders=frozenset({"", "REJECT_REASON_UNSPECIFIED", "UNKNOWN_REJECT_REASON"}),
        # Advanced Trade charges and reports order fees (total_fees) in the quote currency
        order_fee_currency="quote",
        ccxt_status_differences=MappingProxyType({
            "PENDING": "PENDING",
            "QUEUED": "QUEUED",
            "CANCEL_QUEUED": "CANCEL_QUEUED",
            "EXPIRED": "canceled",
            "FAILED": "canceled",
        }),
    ),
)

VENUES: Mapping[str, Venue] = MappingProxyType(
    {v.name: v for v in (_BINANCE, _BYBIT, _OKX, _KRAKEN, _COINBASE)}
)
"""Known venues by Lyra name (also their ccxt id), read-only."""


def get_venue(name: str, *, field: str = "venue") -> Venue:
    """The :class:`Venue` called ``name``.

    An unknown name is a :class:`~lyra.core.errors.ValidationError` on ``field`` (the input
    that held the name, e.g. a downloader's ``exchange``) listing the known venues.
    """
    try:
        return VENUES[name]
    except (KeyError, TypeError):
        raise ValidationError(
            field, name, "unknown venue", f"known venues: {', '.join(sorted(VENUES))}"
        ) from None
