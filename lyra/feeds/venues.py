"""What each venue supports, as data.

Code asks this mapping ("how many candles per request?", "which websocket channels?") instead
of testing a venue's name, so adding a venue is adding a row here.

>>> from lyra.feeds.venues import venue
>>> venue("binance").candle_limit
1000
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from lyra.core.errors import ValidationError


@dataclass(frozen=True, slots=True)
class VenueCapabilities:
    """The facts about one venue that the feeds (and later the brokers) depend on."""

    ccxt_id: str  #: the ccxt class name (``ccxt.<id>`` / ``ccxt.pro.<id>``)
    candle_limit: int  #: most candles one OHLCV request returns
    trade_limit: int  #: most trades one public-trades request returns
    timeframes: tuple[str, ...]  #: candle sizes the venue serves
    ws_channels: frozenset[str]  #: websocket channels: trades, bbo, book, ohlcv
    has_sandbox: bool  #: a testnet/sandbox exists (``exchange.set_sandbox_mode``)
    client_order_id_param: str  #: the order parameter carrying our client order id
    trade_ids_sequential: bool  #: public trade ids increase by exactly 1 (gap = missing trade)
    book_checksum: str | None = None  #: order-book checksum algorithm, if the venue sends one
    #: the parameter that looks an order up (fetch/cancel) by our client order id
    client_order_id_query_param: str = "clientOrderId"
    #: private websocket streams ccxt.pro offers: ``orders``, ``my_trades``, ``balance``
    ws_private: frozenset[str] = frozenset()
    #: open orders and own trades can only be listed per symbol
    private_lists_need_symbol: bool = False
    #: order-entry errors that mean "already have that client order id" (the first send landed)
    duplicate_order_messages: tuple[str, ...] = ()
    #: longest client order id the venue accepts
    client_order_id_max_len: int = 36


_BINANCE_TF = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
               "1d", "3d", "1w")

VENUES: MappingProxyType[str, VenueCapabilities] = MappingProxyType({
    "binance": VenueCapabilities(
        ccxt_id="binance", candle_limit=1000, trade_limit=1000, timeframes=_BINANCE_TF,
        ws_channels=frozenset({"trades", "bbo", "book", "ohlcv"}), has_sandbox=True,
        client_order_id_param="newClientOrderId", trade_ids_sequential=True,
        client_order_id_query_param="origClientOrderId",
        ws_private=frozenset({"orders", "my_trades", "balance"}), private_lists_need_symbol=True,
        duplicate_order_messages=("Duplicate order sent",),
    ),
    "bybit": VenueCapabilities(
        ccxt_id="bybit", candle_limit=1000, trade_limit=1000,
        timeframes=("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w"),
        ws_channels=frozenset({"trades", "bbo", "book", "ohlcv"}), has_sandbox=True,
        client_order_id_param="orderLinkId", trade_ids_sequential=False,
        client_order_id_query_param="orderLinkId",
        ws_private=frozenset({"orders", "my_trades", "balance"}),
        duplicate_order_messages=("OrderLinkedID is duplicate", "orderLinkId is duplicate"),
    ),
    "okx": VenueCapabilities(
        ccxt_id="okx", candle_limit=300, trade_limit=100,
        timeframes=("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w"),
        ws_channels=frozenset({"trades", "bbo", "book", "ohlcv"}), has_sandbox=True,
        client_order_id_param="clOrdId", trade_ids_sequential=False, book_checksum="crc32-okx",
        client_order_id_query_param="clOrdId",
        ws_private=frozenset({"orders", "my_trades", "balance"}),
        duplicate_order_messages=("Duplicated clOrdId",), client_order_id_max_len=32,
    ),
    "kraken": VenueCapabilities(
        ccxt_id="kraken", candle_limit=720, trade_limit=1000,
        timeframes=("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w"),
        ws_channels=frozenset({"trades", "bbo", "book", "ohlcv"}), has_sandbox=False,
        client_order_id_param="cl_ord_id", trade_ids_sequential=False, book_checksum="crc32-kraken",
        client_order_id_query_param="cl_ord_id", client_order_id_max_len=18,
        ws_private=frozenset({"orders", "my_trades", "balance"}),
    ),
    "coinbase": VenueCapabilities(
        ccxt_id="coinbase", candle_limit=300, trade_limit=1000,
        timeframes=("1m", "5m", "15m", "30m", "1h", "2h", "6h", "1d"),
        ws_channels=frozenset({"trades", "bbo", "book"}), has_sandbox=False,
        client_order_id_param="client_order_id", trade_ids_sequential=False,
        client_order_id_query_param="client_order_id", client_order_id_max_len=128,
        ws_private=frozenset({"orders"}),
    ),
})
"""Known venues by Lyra name (the ccxt id)."""


def venue(name: str) -> VenueCapabilities:
    """The capabilities of ``name``; a ValidationError listing the known venues otherwise."""
    try:
        return VENUES[name]
    except KeyError:
        raise ValidationError(
            "exchange", name, "unknown exchange", f"known exchanges: {', '.join(sorted(VENUES))}"
        ) from None
