"""Building a session from its config: feed, paper broker, risk engine, wired together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from lyra.core.clock import ReplayClock
from lyra.core.errors import ConfigError, ValidationError
from lyra.core.orders import Order
from lyra.core.timeutil import datetime_to_ms, parse_utc
from lyra.session.config import SessionConfig
from lyra.session.control import FeedSleep
from lyra.session.runtime import Session, session_instruments


def open_session(config: SessionConfig, *, engine: Engine, market_dir: Path,
                 jsonl_path: Path | None = None, risk: Any = None) -> Session:
    """A ready-to-run session on the local market store (replay feed, paper broker)."""
    from lyra.execution.fees import FeeSchedule
    from lyra.execution.latency import LatencyModel
    from lyra.execution.paper import PaperBroker
    from lyra.feeds.replay import ReplayFeed
    from lyra.feeds.store import MarketStore

    if config.mode == "live":
        return open_live_session(config, engine=engine, jsonl_path=jsonl_path, risk=risk)
    instruments = session_instruments(config)
    clock = ReplayClock()
    store = MarketStore(market_dir)
    start = datetime_to_ms(parse_utc(config.start)) if config.start else None
    end = datetime_to_ms(parse_utc(config.end)) if config.end else None
    datasets = [(config.venue, s, config.timeframe) for s in config.symbols]
    pacer = FeedSleep()  # the control plane polls while the paced feed waits
    try:
        feed = ReplayFeed.from_store(store, datasets, start=start, end=end,
                                     speed=config.speed if config.mode == "paper" else None, sleep=pacer)
    except (ValidationError, FileNotFoundError) as exc:
        raise ConfigError("symbols", list(config.symbols),
                          f"no {config.timeframe} data in the store: {exc}",
                          "run `lyra init` or `lyra data import FILE`") from exc
    fees = {iid: FeeSchedule.flat(i.maker_fee, i.taker_fee, config.slippage_bps)
            for iid, i in instruments.items()}
    broker = PaperBroker(instruments.values(), clock, dict(config.balances), fees=fees,
                         latency=LatencyModel(config.latency_ms, config.latency_ms))
    if risk is None:
        risk = default_risk_engine(config, engine, clock, jsonl_path=jsonl_path)
    # Risk sizes orders by what this broker reserves (one cost rule: lyra.core.costs).
    costs = broker.cost_rules()
    var_model = session_covariance(config, risk, market_dir)
    session = Session(config, engine=engine, feed=feed, broker=broker, risk=risk, instruments=instruments,
                      clock=clock, jsonl_path=jsonl_path, feed_sleep=pacer,
                      risk_context=lambda s, order: risk_context(s, order, costs=costs, var_model=var_model))
    session.var_model = var_model  # read by the metrics at scrape time (lyra_risk_var)
    return session


def session_covariance(config: SessionConfig, risk: Any, market_dir: Path | None) -> Any:
    """The covariance model of a ``max_var`` limit (None when no limit needs one or there is no
    market store): see :mod:`lyra.session.var_model`."""
    from lyra.session.var_model import SessionCovariance, needs_covariance

    if market_dir is None or not needs_covariance(risk):
        return None
    return SessionCovariance(market_dir, config.venue, config.symbols, config.timeframe,
                             lookback=risk.config.var_lookback)


def open_live_session(config: SessionConfig, *, engine: Engine, jsonl_path: Path | None = None,
                      risk: Any = None, exchange: Any = None, ws_exchange: Any = None,
                      feed: Any = None, home: Path | None = None, md_exchange: Any = None,
                      channels: frozenset[str] = frozenset({"trades", "book"}),
                      idle_timeout_s: float = 600.0) -> Session:
    """A live session: :class:`~lyra.execution.ccxt_broker.CcxtBroker` on the config's venue
    (credentials from the environment or ``$LYRA_HOME/secrets``; testnet with ``sandbox``),
    bars built from the venue's live trades. ``exchange``/``ws_exchange``/``feed`` can be
    given (tests aim them at the local fake exchange; ``md_exchange`` makes the ccxt.pro client
    of the market-data stream, which must be built in the stream's own thread)."""
    from lyra.core.timeutil import timeframe_to_ms
    from lyra.execution.ccxt_broker import CcxtBroker
    from lyra.feeds.book_tap import BookTap
    from lyra.feeds.live import FeedSource, LiveFeed, SyncLiveFeed
    from lyra.session.live import (
        LiveSession,
        bars_from_trades,
        check_live_config,
        live_credentials,
        live_exchange,
    )
    from lyra.settings import load_settings

    check_live_config(config)
    instruments = session_instruments(config)
    clock = ReplayClock()
    if exchange is None:
        creds = live_credentials(config.venue, home=home or load_settings().home)
        exchange = live_exchange(config.venue, creds, sandbox=config.sandbox)
        ws_exchange = live_exchange(config.venue, creds, sandbox=config.sandbox, pro=True)
    broker = CcxtBroker(exchange, instruments.values(), venue_name=config.venue, ws_exchange=ws_exchange)
    live = None
    if feed is None:
        # The market-data stream gets its own ccxt.pro client: each binds to its thread's loop.
        def make_feed() -> LiveFeed:
            md = md_exchange() if md_exchange else live_exchange(config.venue, {}, sandbox=config.sandbox,
                                                                 pro=True)
            return LiveFeed([FeedSource(config.venue, s, md, channels=channels) for s in config.symbols])

        live = SyncLiveFeed(make_feed)
        live.__enter__()
        # Books are kept for the dashboards (ladder, spread and depth); trades become bars. The
        # session ends when the venue is silent for ``idle_timeout_s``.
        books = BookTap(live.events(timeout=idle_timeout_s), engine, session_id=config.session_id,
                        on_error="log")
        feed = bars_from_trades(books, timeframe_to_ms(config.timeframe), config.timeframe)
    if risk is None:
        risk = default_risk_engine(config, engine, clock, jsonl_path=jsonl_path)
    from lyra.execution.reconcile import ReconcilePolicy

    var_model = session_covariance(config, risk, home / "market" if home is not None else None)
    session = LiveSession(config, engine=engine, feed=feed, broker=broker, risk=risk, instruments=instruments,
                          clock=clock, jsonl_path=jsonl_path,
                          risk_context=lambda s, o: risk_context(s, o, var_model=var_model),
                          policy=ReconcilePolicy(orphans=config.reconcile_orphans))
    session.var_model = var_model
    if live is not None:
        session.closers.append(lambda: live.__exit__(None, None, None))
        session.closers.append(books.close)
    return session


def default_risk_engine(config: SessionConfig, engine: Engine, clock: ReplayClock,
                        jsonl_path: Path | None = None) -> Any:
    """The pre-trade risk engine with the config's limits (``[risk]`` of the session config,
    in the shape of :class:`lyra.risk.RiskConfig`); money limits are in the first symbol's
    quote currency unless the config says otherwise."""
    from lyra.audit import EventLog
    from lyra.risk.config import RiskConfig
    from lyra.risk.engine import RiskEngine
    from lyra.risk.state import TradingStateStore

    instruments = session_instruments(config)
    data = dict(config.risk)
    data.setdefault("currency", next(iter(instruments.values())).quote)
    rcfg = RiskConfig.from_dict(data)
    state = TradingStateStore(EventLog(engine, jsonl_path), poll_interval_ms=rcfg.state_poll_ms)
    return RiskEngine(rcfg, state, clock=clock, account_id=config.session_id,
                      session_id=config.session_id, instruments=instruments)


def risk_context(session: Session, order: Order, *, costs: Any = None, var_model: Any = None) -> Any:
    """What the risk engine sees for one order: positions, marks, equity, balances, orders,
    the broker's cost rules (``costs``, by instrument) if it has them, and the covariance
    model of a ``max_var`` limit (``var_model``: a SessionCovariance) at the data time."""
    from decimal import Decimal

    from lyra.risk.engine import RiskContext

    marks = {k: Decimal(repr(v)) for k, v in session.marks.items()}
    known = session.ledger.state.orders
    open_orders = [known[c] for c in session.working if c in known]
    return RiskContext(
        account_id=session.sid,
        positions=dict(session.holdings),
        marks=marks,
        equity=session.equity(),
        balances=dict(session.cash),
        open_orders=open_orders,
        instruments=session.instruments,
        now=session.clock.now_ms(),
        last_md_ts=dict(session.last_data_ts),
        costs=costs,
        **_covariance(var_model, session.clock.now_ms()),
    )


def _covariance(var_model: Any, now: int) -> dict[str, Any]:
    if var_model is None:
        return {}
    model, cols = var_model.model_at(now)
    return {"covariance": model, "covariance_instruments": cols}
