"""Backtest–paper parity: the same strategy, data and cost model through vectorbt (research)
and through the event-driven runtime (sessions), compared trade by trade.

With identical fill rules the two must agree exactly. Where they differ, the report says
why, from the runtime's own event log: a risk denial, a venue rejection (precision, funds,
minimum notional), a partial fill (volume cap), or a price difference (tick rounding).

    report = parity_report(config, market_dir=settings.market_dir)
    report.summary()          # counts and PnL difference
    report.trades             # one row per trade, both sides, with the explanation
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lyra.core.timeutil import datetime_to_ms, parse_utc, timeframe_to_ms
from lyra.session.config import SessionConfig

PRICE_TOL = 1e-9  # relative: float64 (vectorbt) against Decimal (ledger)


@dataclass
class ParityReport:
    """Trade-by-trade comparison of research (vectorbt) and runtime fills."""

    trades: pd.DataFrame
    research_pnl: float
    runtime_pnl: float
    research_fees: float
    runtime_fees: float

    @property
    def mismatches(self) -> pd.DataFrame:
        return self.trades[~self.trades["match"]]

    @property
    def pnl_difference(self) -> float:
        return self.runtime_pnl - self.research_pnl

    @property
    def identical(self) -> bool:
        return bool(self.trades["match"].all()) and abs(self.pnl_difference) < 0.005

    def summary(self) -> dict[str, Any]:
        return {"trades_research": int(self.trades["research_side"].notna().sum()),
                "trades_runtime": int(self.trades["runtime_side"].notna().sum()),
                "mismatches": int((~self.trades["match"]).sum()),
                "research_pnl": round(self.research_pnl, 2), "runtime_pnl": round(self.runtime_pnl, 2),
                "pnl_difference": round(self.pnl_difference, 2),
                "research_fees": round(self.research_fees, 2), "runtime_fees": round(self.runtime_fees, 2)}


def research_orders(config: SessionConfig, data: pd.DataFrame) -> tuple[pd.DataFrame, Any]:
    """Run the strategy's vectorized form on vectorbt with the session's fill rules: fixed
    size per signal, fill at the next bar's open, the same taker fee and slippage."""
    import vectorbt as vbt

    from lyra.execution.costs import CostModel
    from lyra.research.backtest import vbt_signal_kwargs
    from lyra.session.runtime import session_instruments
    from lyra.session.strategies import build_strategy

    inst = next(iter(session_instruments(config).values()))
    cost = CostModel(maker_fee=inst.maker_fee, taker_fee=inst.taker_fee, slippage_bps=config.slippage_bps)
    strategy = build_strategy(config.strategy, config.params)
    signals = strategy.signals(data)
    quote = inst.quote
    cash = float(config.balances.get(quote, Decimal(0)))
    kw = vbt_signal_kwargs(data, signals, cost=cost, init_cash=cash, fill="next_open",
                           freq=pd.Timedelta(milliseconds=timeframe_to_ms(config.timeframe)))
    kw.update(size=float(config.quantity), size_type="amount")
    pf = vbt.Portfolio.from_signals(**kw)
    rec = pf.orders.records
    ts = (data.index[rec["idx"]].as_unit("ms").asi8 if len(rec) else np.array([], dtype=np.int64))
    orders = pd.DataFrame({
        "ts": ts, "side": np.where(rec["side"] == 0, "buy", "sell"),
        "price": rec["price"].astype(float), "size": rec["size"].astype(float),
        "fee": rec["fees"].astype(float),
    })
    return orders, pf


def parity_report(config: SessionConfig, *, market_dir: Path, risk: Any = None,
                  db_url: str | None = None) -> ParityReport:
    """Run both sides on the stored data of ``config`` (one symbol) and compare."""
    from lyra.audit import EventLog
    from lyra.feeds.store import MarketStore
    from lyra.session.factory import open_session
    from lyra.store import create_engine_for, upgrade

    if len(config.symbols) != 1:
        from lyra.core.errors import ConfigError

        raise ConfigError("symbols", list(config.symbols), "parity compares one symbol at a time")
    start = datetime_to_ms(parse_utc(config.start)) if config.start else None
    end = datetime_to_ms(parse_utc(config.end)) if config.end else None
    data = MarketStore(market_dir).read_bars(config.venue, config.symbols[0], config.timeframe, start, end)
    research, pf = research_orders(config, data)

    with tempfile.TemporaryDirectory() as tmp:
        url = db_url or f"sqlite:///{Path(tmp) / 'parity.db'}"
        engine = create_engine_for(url)
        try:
            upgrade(engine)
            cfg = config.model_copy(update={"mode": "backtest", "speed": None})
            session = open_session(cfg, engine=engine, market_dir=market_dir, risk=risk)
            result = session.run()
            fills = [f for _, f in session.ledger.state.fills]
            explain = _explanations(EventLog(engine), cfg.session_id)
        finally:
            engine.dispose()  # on errors too: no connection outlives the comparison
    runtime = pd.DataFrame({
        "ts": [f.ts for f in fills], "side": [f.side.value for f in fills],
        "price": [float(f.price) for f in fills], "size": [float(f.quantity) for f in fills],
        "fee": [float(f.fee) for f in fills], "client_order_id": [f.client_order_id for f in fills],
    })
    trades = _pair(research, runtime, explain)
    quote_cash0 = float(next(iter(config.balances.values()), Decimal(0)))
    research_pnl = float(pf.final_value()) - quote_cash0
    runtime_pnl = float(result.equity) - quote_cash0
    return ParityReport(trades, research_pnl, runtime_pnl, float(research["fee"].sum()), float(result.fees))


def _explanations(log: Any, session_id: str) -> dict[int, str]:
    """Why the runtime did not trade where research did, keyed by the decision's time."""
    out: dict[int, str] = {}
    created: dict[str, int] = {}
    for rec in log.read(session_id=session_id):
        p = rec.data()
        if rec.kind == "order.created":
            created[p["client_order_id"]] = rec.ts
        elif rec.kind == "risk.decision" and not p["approved"]:
            out[rec.ts] = f"denied by risk: {p['reason']}"
        elif rec.kind in ("order.reject", "order.expire", "order.cancel"):
            out[created.get(p["client_order_id"], rec.ts)] = f"venue {rec.kind[6:]}: {p.get('reason', '')}"
        elif rec.kind == "order.partial_fill":
            out.setdefault(created.get(p["client_order_id"], rec.ts), "partial fill (volume cap)")
    return out


def _pair(research: pd.DataFrame, runtime: pd.DataFrame, explain: dict[int, str]) -> pd.DataFrame:
    """Outer-join both sides on (time, side); a runtime order split into partial fills is
    summed first. Every row says whether it matches and, if not, why."""
    if len(runtime):
        agg = runtime.groupby(["ts", "side"], sort=True).agg(
            price=("price", lambda s: float(np.average(s, weights=runtime.loc[s.index, "size"]))),
            size=("size", "sum"), fee=("fee", "sum"), fills=("price", "size")).reset_index()
    else:
        agg = pd.DataFrame(columns=["ts", "side", "price", "size", "fee", "fills"])
    left = research.rename(columns={c: f"research_{c}" for c in ("side", "price", "size", "fee")})
    left["side_key"] = research["side"]
    right = agg.rename(columns={c: f"runtime_{c}" for c in ("side", "price", "size", "fee", "fills")})
    right["side_key"] = agg["side"]
    m = pd.merge(left, right, on=["ts", "side_key"], how="outer", sort=True)
    rows = []
    for r in m.itertuples(index=False):
        why = ""
        if pd.isna(r.research_price):
            why = "runtime traded where research did not"
        elif pd.isna(r.runtime_price):
            why = explain.get(int(r.ts), "runtime did not trade (no order: strategy state differs)")
        else:
            if abs(r.runtime_size - r.research_size) > 1e-12:
                why = explain.get(int(r.ts), "size differs") + f" ({r.runtime_size} vs {r.research_size})"
            elif abs(r.runtime_price - r.research_price) > PRICE_TOL * r.research_price:
                why = f"price differs: {r.runtime_price} vs {r.research_price} (tick rounding or slippage)"
            elif abs(r.runtime_fee - r.research_fee) > max(1e-8, PRICE_TOL * r.research_fee):
                why = f"fee differs: {r.runtime_fee} vs {r.research_fee} (fee tier or rounding)"
        rows.append(why)
    m["match"] = [w == "" for w in rows]
    m["explanation"] = rows
    m["time"] = pd.to_datetime(m["ts"], unit="ms", utc=True)
    return m.drop(columns=["side_key"])
