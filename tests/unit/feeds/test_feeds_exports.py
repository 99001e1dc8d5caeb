"""The public surface of lyra.feeds (offline half) is pinned: a rename is a choice."""

from __future__ import annotations

import lyra.feeds

OFFLINE = {
    "BAR_COLUMNS", "BAR_REASONS", "BATCH_DTYPE", "KIND_BAR", "KIND_TRADE", "TRADES_TIMEFRAME",
    "TRADE_COLUMNS", "TRADE_REASONS", "AdvanceableClock", "BarArrays", "CorruptDataError", "DatasetKey",
    "DatasetName", "ImportResult", "MarketFeed", "MarketStore", "ReplayFeed", "ReplaySource",
    "ValidationConfig", "ValidationResult", "import_file", "make_instrument_id",
    "parse_dataset_name", "read_uniform_file", "safe_symbol", "trades_to_bars", "validate_bars",
    "validate_trades",
}


def test_offline_names_are_exported() -> None:
    assert set(lyra.feeds.__all__) >= OFFLINE
    for name in lyra.feeds.__all__:
        assert hasattr(lyra.feeds, name), name


def test_the_replay_clock_protocol_does_not_shadow_the_core_clock() -> None:
    # lyra.core.clock.Clock is *read* (now_ms); what a replay drives is an AdvanceableClock
    assert not hasattr(lyra.feeds, "Clock")
