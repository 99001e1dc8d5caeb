"""lyra.feeds: market data. The offline half lives here: the Parquet store, imports of uniform
files, validation and quarantine, trades-to-bars aggregation and the replay feed.

>>> import tempfile
>>> from lyra.feeds import MarketStore, import_file, validate_bars
>>> from lyra.sample_data import sample_ohlcv_dir
>>> store = MarketStore(tempfile.mkdtemp())  # in a notebook: MarketStore(load_settings().market_dir)
>>> result = import_file(sample_ohlcv_dir() / "binance_BTC-USDT_4h_2018-04.csv.gz", store=store)
>>> result.rows_added, result.gaps, result.missing_bars
(500, 1, 7)
>>> bars = store.read_bars("binance", "BTC/USDT", "4h")  # a DataFrame on a UTC DatetimeIndex
>>> list(bars.columns), str(bars.index.tz)
(['open', 'high', 'low', 'close', 'volume'], 'UTC')
>>> report = validate_bars(bars, "4h").report()         # one row per check, with counts
>>> list(report.loc[report["count"] > 0, "check"])
['rows', 'gaps', 'missing_bars']

The command line (``lyra data ...``) is ``lyra.feeds.cli.data_app``; it is not imported here
so that ``import lyra.feeds`` stays free of typer.
"""

from lyra.feeds.aggregate import trades_to_bars
from lyra.feeds.importer import (
    DatasetName,
    ImportResult,
    import_file,
    parse_dataset_name,
    read_uniform_file,
)
from lyra.feeds.replay import (
    BATCH_DTYPE,
    KIND_BAR,
    KIND_TRADE,
    AdvanceableClock,
    MarketFeed,
    ReplayFeed,
    ReplaySource,
)
from lyra.feeds.schema import (
    BAR_COLUMNS,
    TRADE_COLUMNS,
    TRADES_TIMEFRAME,
    BarArrays,
    DatasetKey,
    make_instrument_id,
    safe_symbol,
)
from lyra.feeds.store import CorruptDataError, MarketStore
from lyra.feeds.validation import (
    BAR_REASONS,
    TRADE_REASONS,
    ValidationConfig,
    ValidationResult,
    validate_bars,
    validate_trades,
)

__all__ = [
    "BAR_COLUMNS",
    "BAR_REASONS",
    "BATCH_DTYPE",
    "KIND_BAR",
    "KIND_TRADE",
    "TRADES_TIMEFRAME",
    "TRADE_COLUMNS",
    "TRADE_REASONS",
    "AdvanceableClock",
    "BarArrays",
    "CorruptDataError",
    "DatasetKey",
    "DatasetName",
    "ImportResult",
    "MarketFeed",
    "MarketStore",
    "ReplayFeed",
    "ReplaySource",
    "ValidationConfig",
    "ValidationResult",
    "import_file",
    "make_instrument_id",
    "parse_dataset_name",
    "read_uniform_file",
    "safe_symbol",
    "trades_to_bars",
    "validate_bars",
    "validate_trades",
]
