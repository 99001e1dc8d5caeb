"""Numbers the dashboards show, computed from the read model's frames (pure pandas/numpy).

Each function is small and checked against a hand-worked example in
``tests/unit/readside``. Money here is float64 for display; the ledger stays exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

import lyra.analytics as an
from lyra.core.errors import ValidationError
from lyra.core.timeutil import timeframe_to_ms
from lyra.risk.var import empirical_var_es

#: A year of the default conventions (365 days: crypto trades every day), in ms.
MS_PER_YEAR = 365 * 24 * 3600 * 1000


# ---------------------------------------------------------------------- downsampling
def downsample_ohlc(bars: pd.DataFrame, max_points: int = 2000) -> pd.DataFrame:
    """At most ``max_points`` candles: consecutive bars merged into buckets (first open, max
    high, min low, last close, summed volume, first ts/time). Extremes survive, so a chart of
    100,000 bars keeps every wick that matters while the browser draws ``max_points``."""
    if max_points < 2:
        raise ValidationError("max_points", max_points, "must be at least 2")
    n = len(bars)
    if n <= max_points:
        return bars.reset_index(drop=True)
    size = math.ceil(n / max_points)
    key = np.arange(n) // size
    g = bars.groupby(key, sort=True)
    out = pd.DataFrame(
        {
            "ts": g["ts"].first(),
            "open": g["open"].first(),
            "high": g["high"].max(),
            "low": g["low"].min(),
            "close": g["close"].last(),
            "volume": g["volume"].sum(),
        }
    )
    if "time" in bars:
        out["time"] = g["time"].first()
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------- performance
# Every figure here comes from lyra.analytics (the conventions live in its docstring), so a
# dashboard shows what research and the reports show for the same curve.
def returns(equity: pd.Series) -> pd.Series:
    """Simple returns between consecutive equity snapshots."""
    e = pd.Series(equity, dtype="float64")
    return e.pct_change().iloc[1:]


def drawdown(equity: pd.Series) -> pd.Series:
    """Underwater curve: equity / running peak - 1 (0 at new highs, negative below)."""
    e = pd.Series(equity, dtype="float64")
    return pd.Series(an.drawdown_series(e.to_numpy()), index=e.index)


def periods_per_year(ts: pd.Series, conventions: an.Conventions = an.DEFAULT_CONVENTIONS) -> float:
    """How many snapshot intervals make a year of ``conventions.year_days`` (365) days,
    from the median spacing of ``ts`` in ms."""
    return an.periods_per_year(np.asarray(ts, dtype="int64"), conventions)


def sharpe(rets: pd.Series, per_year: float) -> float:
    """Annualised Sharpe ratio (:func:`lyra.analytics.sharpe_ratio`); NaN when undefined."""
    r = pd.Series(rets, dtype="float64").dropna()
    if not np.isfinite(per_year):
        return float("nan")
    return an.sharpe_ratio(r.to_numpy(), per_year)


def rolling_volatility(rets: pd.Series, window: int, per_year: float) -> pd.Series:
    """Annualised rolling standard deviation of returns over ``window`` snapshots."""
    if window < 2:
        raise ValidationError("window", window, "must be at least 2")
    return pd.Series(rets, dtype="float64").rolling(window).std(ddof=1) * math.sqrt(per_year)


def var_es(rets: pd.Series, confidence: float = 0.95) -> tuple[float, float]:
    """Historical VaR and ES of the returns, as positive loss fractions (lyra.risk.var's
    quantile convention). NaN when there are no returns."""
    r = pd.Series(rets, dtype="float64").dropna().to_numpy()
    if r.size == 0:
        return float("nan"), float("nan")
    return empirical_var_es(-r, confidence)


def trade_pnls(fills: pd.DataFrame) -> pd.Series:
    """Realised PnL (before fees) of each fill that reduces a position, average-cost method,
    per session and instrument, in fill order. The index is the fill's row. A display of
    closing fills; the win rate and trade count are per round trip (:func:`kpis`)."""
    out: dict[int, float] = {}
    state: dict[tuple[str, str], tuple[float, float]] = {}
    for i, sid, iid, q, px in zip(
        fills.index,
        fills["session_id"],
        fills["instrument_id"],
        fills["signed_qty"],
        fills["price"],
        strict=True,
    ):
        pos, avg = state.get((sid, iid), (0.0, 0.0))
        if pos == 0 or np.sign(q) == np.sign(pos):
            new = pos + q
            avg = (avg * pos + px * q) / new if new else 0.0
            state[(sid, iid)] = (new, avg)
            continue
        closed = min(abs(q), abs(pos))
        out[i] = closed * (px - avg) * np.sign(pos)
        new = pos + q
        if new == 0 or np.sign(new) == np.sign(pos):
            state[(sid, iid)] = (new, avg if new else 0.0)
        else:  # flipped through zero: the rest opens at this price
            state[(sid, iid)] = (new, px)
    return pd.Series(out, dtype="float64")


_NAN = float("nan")


@dataclass(frozen=True)
class Kpis:
    """Headline figures of one session (money in its quote currency), as
    :mod:`lyra.analytics` defines them."""

    equity: float
    start_equity: float
    pnl: float
    pnl_today: float
    pnl_mtd: float
    pnl_ytd: float
    sharpe: float
    max_drawdown: float  #: positive fraction, e.g. 0.12 = 12 % below the peak
    win_rate: float  #: share of closed round trips with a positive P&L after fees (NaN: none)
    trades: int  #: round trips: the closed ones plus the open one(s)
    fees: float  #: every fill's fee, valued in the quote currency
    sortino: float = _NAN
    calmar: float = _NAN
    annualized_return: float = _NAN
    annualized_volatility: float = _NAN
    profit_factor: float = _NAN
    exposure: float = _NAN
    turnover: float = _NAN
    fees_share: float = _NAN
    periods_per_year: float = _NAN


def _pnl_since(curve: pd.DataFrame, start: pd.Timestamp) -> float:
    before = curve[curve["time"] < start]
    base = float(before["equity"].iloc[-1]) if len(before) else float(curve["equity"].iloc[0])
    return float(curve["equity"].iloc[-1]) - base


def session_metrics(
    curve: pd.DataFrame,
    fills: pd.DataFrame,
    start_equity: float | None = None,
    *,
    fee_rates: Mapping[str, an.FeeRate] | None = None,
    conventions: an.Conventions = an.DEFAULT_CONVENTIONS,
) -> dict[str, Any]:
    """:data:`lyra.analytics.METRIC_NAMES` (plus ``fees_share`` and ``periods_per_year``) of a
    session from its equity snapshots and fills: trades are exact round trips after fees
    from the ledger's Decimal columns, the period is the snapshots' median spacing."""
    v, init, _ts = an.session_curve(curve, start_equity)
    tf = an.fills_from_frame(fills) if len(fills) else []
    trips = an.round_trips(tf, fee_rates)
    ts_all = curve.drop_duplicates("ts", keep="last")["ts"] if len(curve) else curve.get("ts", [])
    ppy = an.periods_per_year(np.asarray(ts_all, dtype="int64"), conventions)
    closed = [t for t in trips if t.closed]
    fee_total = float(sum((t.fees for t in trips), Decimal(0)))
    if "positions" in curve and len(curve):
        held = curve.drop_duplicates("ts", keep="last")["positions"].map(lambda p: float(bool(p)))
        pos = held.to_numpy()[len(held) - len(v):]
    else:
        pos = np.array([])
    notional = np.asarray([float(f.quantity * f.price) for f in tf], dtype="float64")
    if v.size == 0:
        m: dict[str, Any] = {k: _NAN for k in an.METRIC_NAMES}
        m.update(n_trades=len(trips), max_drawdown=0.0, fees_paid=fee_total, final_equity=init)
    else:
        m = an.compute_metrics(
            v, init, ppy, trade_pnl=[float(t.pnl) for t in closed], n_open_trades=len(trips) - len(closed),
            position=pos, traded_notional=notional, fees=[fee_total], conventions=conventions,
        )
    summary = an.trades_summary(trips)  # exact Decimal ratios (equal to the float ones)
    m["win_rate"], m["profit_factor"] = summary["win_rate"], summary["profit_factor"]
    m["fees_share"] = an.fees_share(fee_total, v, init)
    m["periods_per_year"] = ppy
    return m


def kpis(curve: pd.DataFrame, fills: pd.DataFrame, start_equity: float | None = None,
         *, fee_rates: Mapping[str, an.FeeRate] | None = None) -> Kpis:
    """KPIs from an equity curve (:meth:`ReadModel.equity_curve`) and the session's fills
    (:func:`session_metrics`). "Today", "MTD" and "YTD" are on the session's own clock (its
    last snapshot)."""
    m = session_metrics(curve, fills, start_equity, fee_rates=fee_rates)
    extra = {k: m[k] for k in ("sortino", "calmar", "annualized_return", "annualized_volatility",
                               "profit_factor", "exposure", "turnover", "fees_share",
                               "periods_per_year")}
    if curve.empty:
        s = _NAN if start_equity is None else start_equity
        return Kpis(s, s, 0.0, 0.0, 0.0, 0.0, _NAN, 0.0, m["win_rate"], m["n_trades"], m["fees_paid"],
                    **extra)
    last = pd.Timestamp(curve["time"].iloc[-1])
    eq = float(curve["equity"].iloc[-1])
    first = float(curve["equity"].iloc[0]) if start_equity is None else start_equity
    return Kpis(
        equity=eq,
        start_equity=first,
        pnl=eq - first,
        pnl_today=_pnl_since(curve, last.normalize()),
        pnl_mtd=_pnl_since(curve, last.normalize().replace(day=1)),
        pnl_ytd=_pnl_since(curve, last.normalize().replace(month=1, day=1)),
        sharpe=m["sharpe"],
        max_drawdown=m["max_drawdown"],
        win_rate=m["win_rate"],
        trades=m["n_trades"],
        fees=m["fees_paid"],
        **extra,
    )


# ---------------------------------------------------------------------- execution quality
def execution_quality(
    fills: pd.DataFrame, orders: pd.DataFrame, bars: pd.DataFrame | None, timeframe_ms: int
) -> pd.DataFrame:
    """Per fill: order-to-fill latency (ms) and slippage vs the arrival price in bps
    (positive = paid more than arrival). The arrival price is the close of the bar the
    strategy had just seen when it created the order (the bar ending at ``created_ts``)."""
    if fills.empty:
        return pd.DataFrame(columns=["client_order_id", "latency_ms", "arrival", "slippage_bps", "side"])
    created = orders.set_index("client_order_id")["created_ts"]
    f = fills[fills["client_order_id"].isin(created.index)].copy()
    f["created_ts"] = f["client_order_id"].map(created).astype("int64")
    f["latency_ms"] = f["ts"] - f["created_ts"]
    if bars is not None and len(bars):
        close = pd.Series(bars["close"].to_numpy(), index=bars["ts"].to_numpy() + timeframe_ms)
        f["arrival"] = f["created_ts"].map(close)
    else:
        f["arrival"] = np.nan
    sign = np.where(f["side"] == "buy", 1.0, -1.0)
    f["slippage_bps"] = sign * (f["price"] - f["arrival"]) / f["arrival"] * 1e4
    return f[["client_order_id", "time", "side", "latency_ms", "arrival", "price", "slippage_bps"]]


def order_flow(fills: pd.DataFrame, freq: str = "1D") -> pd.DataFrame:
    """Buy and sell volume (base units) per period and the imbalance (buy-sell)/(buy+sell)."""
    if fills.empty:
        return pd.DataFrame(columns=["time", "buy", "sell", "imbalance"])
    g = fills.assign(
        buy=np.where(fills["side"] == "buy", fills["quantity"], 0.0),
        sell=np.where(fills["side"] == "sell", fills["quantity"], 0.0),
    )
    out = g.set_index("time")[["buy", "sell"]].resample(freq).sum()
    out = out[(out["buy"] + out["sell"]) > 0]
    out["imbalance"] = (out["buy"] - out["sell"]) / (out["buy"] + out["sell"])
    return out.reset_index()


# ---------------------------------------------------------------------- portfolio
def weights(quantities: dict[str, float], marks: dict[str, float], equity: float) -> dict[str, float]:
    """Position value / equity per instrument (instruments without a mark are left out)."""
    if not equity or not np.isfinite(equity):
        return {}
    return {k: q * marks[k] / equity for k, q in quantities.items() if k in marks}


def rebalance_proposal(
    quantities: dict[str, float],
    marks: dict[str, float],
    equity: float,
    targets: dict[str, float],
    *,
    fee_rate: float,
    slippage_bps: float,
    size_increment: float = 1e-8,
) -> pd.DataFrame:
    """Target vs actual weights, drift, and the market orders that reach the targets, with an
    estimate of fees (notional × ``fee_rate``) and slippage (notional × bps)."""
    for k, w in targets.items():
        if not np.isfinite(w) or w < 0 or w > 1:
            raise ValidationError(f"target.{k}", w, "must be between 0 and 1")
    if sum(targets.values()) > 1 + 1e-9:
        raise ValidationError("targets", round(sum(targets.values()), 6), "weights must sum to at most 1")
    rows = []
    actual = weights(quantities, marks, equity)
    for iid in sorted(set(targets) | set(quantities)):
        mark = marks.get(iid, float("nan"))
        cur = actual.get(iid, 0.0)
        tgt = targets.get(iid, 0.0)
        q_target = tgt * equity / mark if mark and np.isfinite(mark) else float("nan")
        delta = q_target - quantities.get(iid, 0.0)
        delta = (
            math.copysign(math.floor(abs(delta) / size_increment) * size_increment, delta)
            if np.isfinite(delta)
            else float("nan")
        )
        notional = abs(delta) * mark
        rows.append(
            {
                "instrument_id": iid,
                "mark": mark,
                "actual_weight": cur,
                "target_weight": tgt,
                "drift": cur - tgt,
                "side": "buy" if delta > 0 else "sell" if delta < 0 else "",
                "quantity": abs(delta),
                "notional": notional,
                "est_fee": notional * fee_rate,
                "est_slippage": notional * slippage_bps / 1e4,
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- fees
def fee_tier_progress(volume_30d: float, thresholds: list[Decimal]) -> tuple[int, float, float | None]:
    """(current tier index, progress 0..1 toward the next tier, volume still needed or None)."""
    th = sorted(float(t) for t in thresholds)
    idx = max(i for i, t in enumerate(th) if volume_30d >= t) if th else 0
    if idx + 1 >= len(th):
        return idx, 1.0, None
    lo, hi = th[idx], th[idx + 1]
    return idx, (volume_30d - lo) / (hi - lo), hi - volume_30d


# ---------------------------------------------------------------------- formatting
def fmt_money(v: float, currency: str = "USD", digits: int = 2) -> str:
    """``12,345.67 USD``; an en dash for missing values; a minus sign for losses."""
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v:,.{digits}f} {currency}".replace("-", "−")


def fmt_pct(v: float, digits: int = 2) -> str:
    """``-12.34 %`` from -0.1234; an en dash for missing values."""
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v * 100:,.{digits}f} %".replace("-", "−")


def fmt_num(v: float | None, digits: int = 2) -> str:
    """``1,234.57``; an en dash for missing values."""
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v:,.{digits}f}".replace("-", "−")


# ------------------------------------------------------------------ candles in coarser timeframes
#: The timeframes a chart offers (each a whole number of the finer ones it is made from).
CHART_TIMEFRAMES = ("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w")
_DAY_MS = 86_400_000
_MONDAY_MS = 4 * _DAY_MS  # 1970-01-05, the first Monday after the epoch: weeks start on Mondays


def timeframe_choices(base: str) -> list[str]:
    """``base`` and the coarser timeframes of :data:`CHART_TIMEFRAMES` that a whole number of
    ``base`` bars make (1h -> 1h, 4h, 1d, 1w)."""
    b = timeframe_to_ms(base)
    return [base] + [t for t in CHART_TIMEFRAMES if (ms := timeframe_to_ms(t)) > b and ms % b == 0]


def resample_ohlc(bars: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Bars (``ts`` = open time, ms UTC) merged into ``timeframe`` candles aligned on UTC:
    days at midnight, weeks on Monday 00:00, shorter ones on the epoch. First open, highest
    high, lowest low, last close, summed volume; ``ts``/``time`` = the candle's open time (the
    last candle of a running session is partial)."""
    step = timeframe_to_ms(timeframe)
    cols = ("ts", "open", "high", "low", "close", "volume")
    if bars.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols}).assign(
            time=pd.Series(dtype="datetime64[ns]"))
    origin = _MONDAY_MS if step % (7 * _DAY_MS) == 0 else 0
    ts = bars["ts"].to_numpy(dtype="int64")
    key = (ts - origin) // step * step + origin
    g = bars.groupby(key, sort=True)
    out = pd.DataFrame({"ts": g["ts"].first().index.to_numpy(dtype="int64"),
                        "open": g["open"].first().to_numpy(), "high": g["high"].max().to_numpy(),
                        "low": g["low"].min().to_numpy(), "close": g["close"].last().to_numpy(),
                        "volume": g["volume"].sum().to_numpy()})
    out["time"] = pd.to_datetime(out["ts"], unit="ms")
    return out
