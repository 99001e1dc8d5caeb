"""The notebook facade behind ``import lyra``: load bars, backtest a strategy, run a paper session.

Each function is a thin wrapper over the package that does the work, so what a notebook gets
from ``lyra.backtest(...)`` is exactly what ``lyra.research.backtest(...)`` returns, and a
session opened here is the very session ``lyra session start`` runs. Import it through
``lyra`` (``lyra.load_bars``, ``lyra.backtest``, ``lyra.open_session``); nothing heavy is
imported until one of them is used.
"""

from __future__ import annotations

import secrets
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from lyra.core.errors import ValidationError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from lyra.audit.verify import VerifyReport
    from lyra.execution.costs import CostModel
    from lyra.readside import ReadModel
    from lyra.research.backtest import BacktestResult
    from lyra.session.config import SessionConfig
    from lyra.session.runtime import Session, SessionResult
    from lyra.settings import Settings
    from lyra.strategy.base import FillAt, Strategy

#: Where :func:`load_bars` reads: the local market store, the shipped files, or the store if
#: it has the dataset and the shipped files otherwise.
BarSource = Literal["auto", "store", "sample"]
_SOURCES = ("auto", "store", "sample")


# ------------------------------------------------------------------------------------ bars
def load_bars(venue: str, symbol: str, timeframe: str, start: Any = None, end: Any = None, *,
              source: BarSource = "auto", market_dir: str | Path | None = None) -> pd.DataFrame:
    """OHLCV bars of one market as a DataFrame: float64 ``open, high, low, close, volume``,
    indexed by each candle's open time (a UTC-aware ``DatetimeIndex`` named ``time``).

    ``source`` says where they come from:

    - ``"store"``: the local market store (``$LYRA_HOME/market``, or ``market_dir``), i.e. what
      ``lyra init`` / ``lyra data import`` / ``lyra data download`` put there, validated;
    - ``"sample"``: the shipped file ``data/ohlcv/<venue>_<SYMBOL>_<timeframe>[_tag].csv.gz``,
      rows exactly as shipped (what :func:`lyra.research.sample_data` reads);
    - ``"auto"`` (default): the store if it holds the dataset, else the shipped file.

    ``start`` / ``end`` bound the range ``[start, end)``: ISO text (``"2018-01-01"``), int
    epoch milliseconds, an aware ``datetime`` or a ``Timestamp``; ``None`` is open-ended.

    >>> import lyra
    >>> bars = lyra.load_bars("binance", "BTC/USDT", "1d", source="sample")
    >>> str(bars.index.tz), list(bars.columns)
    ('UTC', ['open', 'high', 'low', 'close', 'volume'])
    """
    from lyra.feeds.schema import to_ms

    if source not in _SOURCES:
        raise ValidationError("source", source, f"must be one of {_SOURCES}")
    s, e = to_ms(start), to_ms(end)
    if source in ("store", "auto"):
        from lyra.feeds.store import MarketStore

        store = MarketStore(Path(market_dir) if market_dir is not None else _settings().market_dir)
        if store.first_timestamp(venue, symbol, timeframe) is not None:
            return store.read_bars(venue, symbol, timeframe, s, e)
        if source == "store":  # an empty frame would look like "no bars in that range"
            raise ValidationError("dataset", f"{venue} {symbol} {timeframe}",
                                  f"not in the market store {store.root}",
                                  "run `lyra init`, `lyra data import FILE` or `lyra data download`")
    files = _sample_files(venue, symbol, timeframe)
    if not files:
        from lyra.sample_data import sample_ohlcv_files

        have = sorted(p.name.removesuffix(".csv.gz") for p in sample_ohlcv_files())
        where = "in the market store nor " if source == "auto" else ""
        raise ValidationError("dataset", f"{venue} {symbol} {timeframe}", f"not {where}in the shipped data",
                              f"shipped: {', '.join(have)}; `lyra data download` fetches more")
    from lyra.research.data import load_ohlcv

    frames = [load_ohlcv(p) for p in files]
    df = frames[0] if len(frames) == 1 else pd.concat(frames).sort_index(kind="stable")
    ms = df.index.as_unit("ms").asi8
    keep = slice(None if s is None else int(ms.searchsorted(s, "left")),
                 None if e is None else int(ms.searchsorted(e, "left")))
    return df.iloc[keep]


def _sample_files(venue: str, symbol: str, timeframe: str) -> list[Path]:
    """The shipped OHLCV files of one market (several if it ships in slices), by name."""
    from lyra.feeds.importer import parse_dataset_name
    from lyra.feeds.schema import safe_symbol
    from lyra.sample_data import sample_ohlcv_files

    want = (venue.lower(), safe_symbol(symbol), timeframe)
    out = []
    for p in sample_ohlcv_files():
        try:
            name = parse_dataset_name(p)
        except ValidationError:
            continue  # not a uniform file name: not a dataset this function can name
        if (name.exchange, name.symbol, name.timeframe) == want:
            out.append(p)
    return out


def _settings() -> Settings:
    from lyra.settings import load_settings

    return load_settings()


# -------------------------------------------------------------------------------- backtest
def backtest(strategy: Strategy[Any], data: pd.DataFrame | Mapping[str, pd.DataFrame] | str, *,
             cost: CostModel | Mapping[str, Any] | None = None, init_cash: float = 10_000.0,
             fill: FillAt = "next_open", freq: str | pd.Timedelta | None = None,
             stops: Any = None, size: float | None = None) -> BacktestResult:
    """Backtest ``strategy``'s vectorized form on vectorbt; return the result with its metrics.

    The same call as :func:`lyra.research.backtest`, with two conveniences: ``data`` may be
    the name of a shipped file (``"coinbase_BTC-USD_1h"``), and ``cost`` may be a dict of
    :class:`~lyra.execution.costs.CostModel` fields (``{"taker_fee": "0.006",
    "slippage_bps": 2}``). The cost model is the one the paper broker charges with, so a
    backtest and a paper session pay the same fees and slippage. Signals on bar *t*'s close
    fill at bar *t+1*'s open (``fill="next_open"``) or at *t*'s close (``fill="close"``).

    The result has ``metrics`` (Sharpe, drawdown, trades...), ``trades``, ``orders``,
    ``equity``, ``drawdown``, ``exposure``, ``plot()`` and the underlying ``portfolio``.
    The first backtest in a fresh environment compiles vectorbt's kernels (tens of seconds):

    .. code-block:: python

        import lyra
        res = lyra.backtest(lyra.SmaCross(fast=10, slow=30), "coinbase_BTC-USD_1h",
                            cost={"taker_fee": "0.001", "slippage_bps": 5})
        res.metrics["sharpe"], res.n_trades, res.final_equity
    """
    from lyra.execution.costs import CostModel
    from lyra.research.backtest import backtest as research_backtest
    from lyra.research.data import sample_data

    frame = sample_data(data) if isinstance(data, str) else data
    if isinstance(cost, Mapping):
        fields = dict(cost)
        try:
            cost = CostModel(**fields)
        except TypeError as exc:
            raise ValidationError("cost", fields, str(exc),
                                  "use maker_fee, taker_fee and slippage_bps") from None
    return research_backtest(strategy, frame, cost=cost, init_cash=init_cash, fill=fill, freq=freq,
                             stops=stops, size=size)


# --------------------------------------------------------------------------------- sessions
def open_session(config: SessionConfig | Mapping[str, Any] | str | Path | None = None, /, *,
                 settings: Settings | None = None, **params: Any) -> SessionHandle:
    """Open (or resume) a session on this installation and return a handle that runs it.

    ``config`` is a :class:`~lyra.session.config.SessionConfig`, a dict of its fields, or a
    TOML file (as for ``lyra session start --config``); keyword ``params`` override its fields
    (``strategy="sma_cross"``, ``params={"fast": 10, "slow": 30}``, ``venue``, ``symbols``,
    ``timeframe``, ``start``, ``end``, ``quantity``, ``balances``...). Without ``mode`` the
    session is a ``"paper"`` session: the paper broker replaying the local market store as
    fast as it can (``speed=N`` paces it at N x real time); without ``session_id`` it gets a
    fresh ``nb-<hex>`` id. The database and store are the installation's (``LYRA_HOME``,
    ``LYRA_DATABASE_URL``; run ``lyra init`` once), or those of ``settings``.

    Every decision, order and fill goes through pre-trade risk and into the hash-chained
    event log, exactly as for ``lyra session start``. Opening an existing ``session_id``
    resumes it: the run re-verifies what the log holds and writes nothing twice.

    .. code-block:: python

        import lyra
        with lyra.open_session(strategy="sma_cross", params={"fast": 10, "slow": 30},
                               venue="binance", symbols=["BTC/USDT"], timeframe="1h") as s:
            result = s.run()
            s.fills().tail(), s.equity().plot()
    """
    from lyra.bootstrap import open_engine
    from lyra.session.config import SessionConfig, check_data_range, load_session_config

    source: Path | dict[str, Any]
    if config is None:
        source = {}
    elif isinstance(config, SessionConfig):
        source = config.model_dump()
    elif isinstance(config, str | Path):
        source = Path(config)
    else:
        source = dict(config)
    given = _given_keys(source) | set(params)
    if "mode" not in given:
        params["mode"] = "paper"
    if "session_id" not in given:
        params["session_id"] = f"nb-{secrets.token_hex(4)}"
    cfg = load_session_config(source, **params)
    settings, engine = open_engine(settings)
    try:
        check_data_range(cfg, settings.market_dir)  # as `lyra session start`: no 0-event "run"
        handle = SessionHandle(cfg, engine, settings)
    except BaseException:
        engine.dispose()
        raise
    return handle


def _given_keys(source: Path | dict[str, Any]) -> set[str]:
    if isinstance(source, dict):
        return set(source)
    try:
        return set(tomllib.loads(source.read_text()))
    except (OSError, tomllib.TOMLDecodeError):
        return {"mode", "session_id"}  # let load_session_config name the problem


class SessionHandle:
    """A session opened by :func:`lyra.open_session`: run it, then read what it did.

    - :meth:`run` runs it to the end of the data (or ``max_events``) and returns the
      :class:`~lyra.session.runtime.SessionResult` (orders, fills, fees, final equity...);
      calling it again resumes from the event log.
    - :meth:`orders`, :meth:`fills`, :meth:`positions` and :meth:`equity` read the session's
      projections and equity snapshots back from the database as pandas objects.
    - :meth:`verify` checks the event log's hash chain and its JSON-lines mirror.
    - :meth:`close` (or a ``with`` block) releases the database connections.
    """

    def __init__(self, config: SessionConfig, engine: Engine, settings: Settings) -> None:
        self.config = config  #: the validated session config
        self.settings = settings  #: where the database, the market store and the log mirror are
        self.engine = engine  #: the SQLAlchemy engine of the installation's database
        self.result: SessionResult | None = None  #: the last run's result
        self._session: Session | None = self._open()  # now, so a bad config fails at open
        self._read: ReadModel | None = None

    @property
    def session_id(self) -> str:
        """The session's id (its rows and log entries carry it)."""
        return self.config.session_id

    @property
    def jsonl_path(self) -> Path:
        """The JSON-lines mirror of the event log."""
        return self.settings.audit_dir / "events.jsonl"

    def _open(self) -> Session:
        from lyra.session.factory import open_session as factory_open

        return factory_open(self.config, engine=self.engine, market_dir=self.settings.market_dir,
                            jsonl_path=self.jsonl_path)

    @property
    def session(self) -> Session:
        """The underlying runtime :class:`~lyra.session.runtime.Session` (opened lazily again
        after a run, so that the next :meth:`run` resumes)."""
        if self._session is None:
            self._session = self._open()
        return self._session

    def run(self, *, max_events: int | None = None, progress: bool = True,
            on_progress: Callable[[int], None] | None = None) -> SessionResult:
        """Run until the data ends, a stop is requested or ``max_events`` events; return the
        result. ``progress`` shows a progress bar; ``on_progress(n)`` is called with the
        number of events processed so far."""
        session = self.session
        self._session = None  # a runtime session runs once; the next run() resumes from the log
        feed: Any = session.feed
        total = len(feed) if hasattr(feed, "__len__") else None
        if max_events is not None and total is not None:
            total = min(total, max_events)
        from tqdm.auto import tqdm

        with tqdm(total=total, unit="ev", desc=self.session_id, disable=not progress) as bar:
            seen = [0]

            def report(n: int) -> None:
                bar.update(n - seen[0])
                seen[0] = n
                if on_progress is not None:
                    on_progress(n)

            from lyra.metrics.session import session_metrics

            # /metrics on loopback while it runs (metrics never stop the run)
            with session_metrics(session, settings=self.settings):
                result = session.run(max_events=max_events, on_progress=report)
            bar.update(result.events - seen[0])
        self.result = result
        return result

    @property
    def read_model(self) -> ReadModel:
        """The dashboards' query layer (:class:`lyra.readside.ReadModel`) on this database."""
        if self._read is None:
            from lyra.readside import ReadModel

            self._read = ReadModel(self.engine, self.settings.market_dir)
        return self._read

    def orders(self) -> pd.DataFrame:
        """The session's orders (newest first): status, quantities, prices, fees."""
        return self.read_model.orders(self.session_id)

    def fills(self) -> pd.DataFrame:
        """The session's fills (oldest first): time, side, quantity, price, fee, notional."""
        return self.read_model.fills(self.session_id)

    def positions(self) -> pd.DataFrame:
        """The session's net positions with the last mark and unrealised PnL."""
        return self.read_model.positions(self.session_id)

    def equity(self) -> pd.Series:
        """Equity at each snapshot the session logged (``session.equity``), in the quote
        currency, indexed by UTC time."""
        curve = self.read_model.equity_curve(self.session_id)
        index = pd.DatetimeIndex(pd.to_datetime(curve["ts"].to_numpy("int64"), unit="ms", utc=True),
                                 name="time")
        return pd.Series(curve["equity"].to_numpy("float64"), index=index, name="equity")

    def verify(self) -> VerifyReport:
        """Check the whole event log's hash chain and its JSON-lines mirror (``report.ok``)."""
        from lyra.audit.verify import verify

        return verify(self.engine, self.jsonl_path)

    def close(self) -> None:
        """Release the database connections (the session's data stays in the database)."""
        self._session = None
        self.engine.dispose()

    def __enter__(self) -> SessionHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.config
        return (f"SessionHandle({c.session_id!r}, {c.mode}, {c.strategy} {dict(c.params)}, "
                f"{c.venue} {', '.join(c.symbols)} {c.timeframe})")
