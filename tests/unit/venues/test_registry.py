"""The venue registry: one frozen row per venue, read by the feeds, the brokers, the answer
mappers and the recorded markets."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from importlib import resources

import ccxt
import ccxt.pro
import pytest

import lyra.venues
from lyra.core.errors import ValidationError
from lyra.execution.markets import RECORDED_VENUES, load_instruments
from lyra.execution.venue_shapes import UnknownVenueShape, venue_shape
from lyra.venues import FAMILIES, VENUES, Venue, VenueShape, get_venue


def test_exported_names_are_pinned() -> None:
    assert sorted(lyra.venues.__all__) == ["FAMILIES", "VENUES", "Venue", "VenueShape", "get_venue"]


def test_rows_are_keyed_by_name_and_name_real_ccxt_classes() -> None:
    assert sorted(VENUES) == ["binance", "bybit", "coinbase", "kraken", "okx"]
    for name, v in VENUES.items():
        assert v.name == name
        assert v.ccxt_id in ccxt.exchanges
        assert hasattr(ccxt.pro, v.ccxt_id), f"{name}: no ccxt.pro class for the live feed"


def test_known_facts_read_from_the_rows() -> None:
    binance = get_venue("binance")
    assert (binance.candle_limit, binance.client_order_id_param) == (1000, "newClientOrderId")
    assert "1s" in binance.timeframes and binance.has_sandbox and binance.trade_ids_sequential
    assert get_venue("kraken").book_checksum == "crc32-kraken"
    assert get_venue("okx").client_order_id_max_len == 32
    assert get_venue("coinbase").ws_channels == frozenset({"trades", "bbo", "book"})
    assert get_venue("bybit").shape.statuses["PartiallyFilledCanceled"] == "canceled"


def test_rows_and_the_mapping_are_read_only() -> None:
    row = get_venue("binance")
    with pytest.raises(FrozenInstanceError):
        row.candle_limit = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        VENUES["x"] = row  # type: ignore[index]
    with pytest.raises(TypeError):
        row.shape.statuses["NEW"] = "closed"  # type: ignore[index]
    with pytest.raises(TypeError):  # rows are built by keyword, so a field cannot shift
        Venue("x", "x")  # type: ignore[misc]


def test_unknown_venue_names_the_field_and_the_known_venues() -> None:
    with pytest.raises(ValidationError) as info:
        get_venue("mtgox")
    assert (info.value.field, info.value.value, info.value.problem) == ("venue", "mtgox", "unknown venue")
    assert info.value.hint == "known venues: binance, bybit, coinbase, kraken, okx"
    with pytest.raises(ValidationError) as info:
        get_venue("mtgox", field="exchange")
    assert info.value.field == "exchange"
    with pytest.raises(ValidationError, match="unknown venue"):
        get_venue(["binance"])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(VENUES))
def test_every_shape_table_is_consistent(name: str) -> None:
    shape = get_venue(name).shape
    assert isinstance(shape, VenueShape)
    assert set(shape.statuses.values()) <= FAMILIES
    assert set(shape.status_reasons) <= set(shape.statuses)
    assert set(shape.ccxt_status_differences) <= set(shape.statuses)
    assert not (shape.stop_kinds & shape.unsupported_kinds)
    assert shape.status_fields and shape.client_id_fields
    assert venue_shape(name) is shape


def test_a_venue_without_a_row_has_no_shape() -> None:
    with pytest.raises(UnknownVenueShape, match="unknown venue") as info:
        venue_shape("hyperliquid")
    assert info.value.venue == "hyperliquid"


def test_markets_precision_matches_the_shipped_market_files() -> None:
    shipped = {p.name.removesuffix(".json")
               for p in resources.files("lyra.execution").joinpath("venue_markets").iterdir()
               if p.name.endswith(".json")}
    assert set(RECORDED_VENUES) == shipped
    assert {n for n, v in VENUES.items() if v.markets_precision} == shipped
    # the mode is what makes the ticks come out right: binance's file counts decimals
    assert get_venue("binance").markets_precision == "decimals"
    btc = load_instruments("binance")["binance:BTC/USDT"]
    assert str(btc.price_increment) == "0.01"
    with pytest.raises(ValidationError, match="no recorded markets"):
        load_instruments("okx")
