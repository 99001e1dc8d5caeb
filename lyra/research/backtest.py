"""Backtests of the strategy contract's vectorized form on vectorbt::

    res = backtest(SmaCross(fast=10, slow=30), sample_data("coinbase_BTC-USD_1h"))
    res.metrics["sharpe"], res.trades, res.equity, res.drawdown, res.exposure

Costs come from :class:`lyra.execution.costs.CostModel` (taker fee and slippage), the very
object the paper broker charges with. **Fills:** a signal on bar t's close fills at bar t+1's
open (``fill="next_open"``, default; a signal on the last bar is dropped) or at bar t's close
(``fill="close"``). Entries buy with all the cash; exits sell everything; with
``allow_short`` strategies an opposite signal reverses the position.

Stops: pass ``stops=lyra.risk.ExitRules(...)``. The percentage rules map onto vectorbt's
intrabar stops (``FixedStop(pct)`` -> ``sl_stop``, ``TrailingStop(pct)`` -> trailing
``sl_stop``, ``TakeProfit(pct)`` -> ``tp_stop``); other rules (absolute prices, ATR, time)
are refused here rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lyra.core.errors import ValidationError
from lyra.execution.costs import CostModel
from lyra.research import metrics as m
from lyra.research.data import infer_freq
from lyra.strategy.base import FILL_CHOICES, FillAt, Signals, Strategy, check_ohlcv

DEFAULT_CASH = 10_000.0


def naive_utc_index(index: pd.Index) -> pd.DatetimeIndex:
    """The index as naive UTC (what vectorbt wants; a tz-aware one is ~100x slower)."""
    if not isinstance(index, pd.DatetimeIndex):
        raise ValidationError("data.index", type(index).__name__, "must be a DatetimeIndex",
                              "use lyra.research.load_ohlcv / sample_data")
    return index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index


def _check_fill(fill: str) -> None:
    if fill not in FILL_CHOICES:
        raise ValidationError("fill", fill, f"must be one of {FILL_CHOICES}")


def _as_bool(name: str, x: Any, index: pd.Index) -> NDArray[np.bool_]:
    """A signal array, checked for length and (if it has an index) alignment."""
    if isinstance(x, pd.Series | pd.DataFrame):
        if len(x.index) != len(index) or not x.index.equals(index):
            bad = next((t for t in x.index if t not in index), x.index[0] if len(x.index) else None)
            raise ValidationError(f"signals.{name}", str(bad), "index not aligned with the data",
                                  "return one flag per data bar, on the data's index")
        x = x.to_numpy()
    a = np.asarray(x)
    if a.shape != (len(index),):
        raise ValidationError(f"signals.{name}", f"shape {a.shape}",
                              f"misaligned: the data has {len(index)} bars")
    if a.dtype != np.bool_:
        if a.dtype.kind == "f" and np.isnan(a).any():
            pos = int(np.argmax(np.isnan(a)))
            raise ValidationError(f"signals.{name}", f"NaN at {index[pos]}", "flags must be True/False")
        a = a.astype(np.bool_)
    return a


def shift_signal(a: NDArray[np.bool_], fill: str) -> NDArray[np.bool_]:
    """Move flags to the bar where they fill: one bar later for ``next_open``."""
    if fill == "close":
        return a
    out = np.zeros_like(a)
    out[1:] = a[:-1]
    return out


def vbt_signal_kwargs(data: pd.DataFrame, signals: Signals, *, cost: CostModel, init_cash: float,
                      fill: str, freq: pd.Timedelta, stops: Any = None,
                      size: float | None = None) -> dict[str, Any]:
    """The exact ``vbt.Portfolio.from_signals`` arguments a backtest uses (``size``: base units
    per entry, as a paper session's ``quantity``; None: all the cash)."""
    idx = naive_utc_index(data.index)
    s = pd.Series  # shorthand
    kw: dict[str, Any] = {
        "close": s(data["close"].to_numpy(np.float64), index=idx, name="close"),
        "entries": s(shift_signal(signals.entries, fill), index=idx),
        "exits": s(shift_signal(signals.exits, fill), index=idx),
        "size": np.inf if size is None else float(size),
        "fees": cost.taker_fee_float,
        "slippage": cost.slippage_float,
        "init_cash": float(init_cash),
        "freq": freq,
    }
    if not signals.allows_short:  # with short_entries/short_exits vectorbt infers the direction
        kw["direction"] = "longonly"
    if signals.allows_short:
        assert signals.short_entries is not None
        assert signals.short_exits is not None
        kw["short_entries"] = s(shift_signal(signals.short_entries, fill), index=idx)
        kw["short_exits"] = s(shift_signal(signals.short_exits, fill), index=idx)
    if fill == "next_open":
        kw["price"] = s(data["open"].to_numpy(np.float64), index=idx)
    if stops is not None:
        kw.update(open=data["open"].to_numpy(np.float64), high=data["high"].to_numpy(np.float64),
                  low=data["low"].to_numpy(np.float64))
        kw.update(stop_kwargs(stops))
    return kw


def stop_kwargs(stops: Any) -> dict[str, Any]:
    """``lyra.risk.ExitRules`` -> vectorbt stop arguments (percentage rules only)."""
    from lyra.risk import ExitRules

    if not isinstance(stops, ExitRules):
        raise ValidationError("stops", type(stops).__name__, "must be a lyra.risk.ExitRules")
    for name in ("atr", "time"):
        if getattr(stops, name) is not None:
            raise ValidationError(f"stops.{name}", getattr(stops, name),
                                  "not supported by vectorized backtests",
                                  "use percentage stops, or run a session")
    # Levels are measured from the actual fill price (vectorbt's default is the entry bar's close).
    out: dict[str, Any] = {"stop_entry_price": "fillprice"}
    if stops.stop is not None and stops.trailing is not None:
        raise ValidationError("stops", stops, "vectorbt has one stop-loss: set stop or trailing, not both")
    for name, rule, key in (("stop", stops.stop, "sl_stop"), ("trailing", stops.trailing, "sl_stop"),
                            ("take_profit", stops.take_profit, "tp_stop")):
        if rule is None:
            continue
        if rule.pct is None:
            raise ValidationError(f"stops.{name}", rule, "only percentage stops are supported here")
        out[key] = float(rule.pct)
    if stops.trailing is not None:
        out["sl_trail"] = True
    return out


@dataclass(frozen=True)
class Comparison:
    """How a backtest compares with another vectorbt portfolio."""

    n_trades: tuple[int, int]
    final_equity: tuple[float, float]
    max_abs_equity_diff: float

    @property
    def equal(self) -> bool:
        return self.n_trades[0] == self.n_trades[1] and self.max_abs_equity_diff < 1e-6


@dataclass(eq=False)
class BacktestResult:
    """A finished backtest. Series are indexed by tz-aware UTC time.

    ``portfolio`` is the underlying ``vbt.Portfolio`` (naive-UTC index) for anything
    vectorbt offers beyond this summary.
    """

    strategy: Strategy[Any]
    portfolio: Any
    fill: str
    cost: CostModel
    init_cash: float
    freq: pd.Timedelta
    vbt_kwargs: dict[str, Any] = field(repr=False)

    def _utc(self, x: pd.Series | pd.DataFrame) -> Any:
        x = x.copy()
        x.index = pd.DatetimeIndex(x.index).tz_localize("UTC")
        return x

    @cached_property
    def equity(self) -> pd.Series:
        """Portfolio value at each bar's close (cash + position × close)."""
        return self._utc(self.portfolio.value()).rename("equity")

    @cached_property
    def drawdown(self) -> pd.Series:
        """Equity over its running peak, minus one (zero or negative)."""
        e = self.equity
        return (e / e.cummax() - 1.0).rename("drawdown")

    @cached_property
    def position(self) -> pd.Series:
        """Units of the asset held at each bar's close (negative when short)."""
        return self._utc(self.portfolio.assets()).rename("position")

    @cached_property
    def exposure(self) -> pd.Series:
        """Position value as a fraction of equity (1.0 = fully long)."""
        close = self.vbt_kwargs["close"].to_numpy()
        return (self.position * close / self.equity).rename("exposure")

    def _time(self, idx: NDArray[np.int64]) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.portfolio.wrapper.index[idx]).tz_localize("UTC")

    def _column(self, col: NDArray[np.int64]) -> Any:
        cols = self.portfolio.wrapper.columns
        return cols[col] if self.portfolio.wrapper.ndim > 1 else np.zeros(len(col), dtype=np.int64)

    @cached_property
    def trades(self) -> pd.DataFrame:
        """One row per round trip (an open one included, with status 'Open' and no exit).

        Built from vectorbt's trade records (its ``records_readable`` warns under pandas 3)."""
        t = self.portfolio.trades.records_arr
        is_open = t["status"] == 0
        exit_ts = self._time(t["exit_idx"]).to_series(index=range(len(t)))
        exit_ts[is_open] = pd.NaT
        return pd.DataFrame({
            "Column": self._column(t["col"]),
            "Size": t["size"],
            "Entry Timestamp": self._time(t["entry_idx"]),
            "Avg Entry Price": t["entry_price"],
            "Entry Fees": t["entry_fees"],
            "Exit Timestamp": exit_ts.to_numpy(),
            "Avg Exit Price": t["exit_price"],
            "Exit Fees": t["exit_fees"],
            "PnL": t["pnl"],
            "Return": t["return"],
            "Direction": np.where(t["direction"] == 0, "Long", "Short"),
            "Status": np.where(is_open, "Open", "Closed"),
        })

    @cached_property
    def orders(self) -> pd.DataFrame:
        """One row per fill: time, size, price (slippage included), fees, side."""
        o = self.portfolio.orders.records_arr
        return pd.DataFrame({
            "Column": self._column(o["col"]),
            "Timestamp": self._time(o["idx"]),
            "Size": o["size"],
            "Price": o["price"],
            "Fees": o["fees"],
            "Side": np.where(o["side"] == 0, "Buy", "Sell"),
        })

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """All of :data:`lyra.research.metrics.METRIC_NAMES`, computed with numpy."""
        pf = self.portfolio
        tr = pf.trades.records_arr
        closed = tr[tr["status"] == 1]
        orders = pf.orders.records_arr
        return m.compute_metrics(
            pf.value().to_numpy(), self.init_cash, m.ann_factor(self.freq),
            trade_pnl=closed["pnl"], n_open_trades=int((tr["status"] == 0).sum()),
            position=pf.assets().to_numpy(), traded_notional=orders["size"] * orders["price"],
            fees=orders["fees"],
        )

    @property
    def n_trades(self) -> int:
        return int(self.metrics["n_trades"])

    @property
    def final_equity(self) -> float:
        return float(self.metrics["final_equity"])

    def stats(self) -> pd.Series:
        """vectorbt's own summary table."""
        return self.portfolio.stats()

    def compare(self, other: Any) -> Comparison:
        """Compare with another ``vbt.Portfolio`` (e.g. a direct ``from_signals`` call)."""
        mine = self.portfolio.value().to_numpy()
        theirs = np.asarray(other.value().to_numpy(), dtype=np.float64)
        diff = float(np.max(np.abs(mine - theirs))) if mine.shape == theirs.shape else float("inf")
        return Comparison(
            (int(self.portfolio.trades.count()), int(other.trades.count())),
            (float(mine[-1]), float(theirs[-1])),
            diff,
        )

    def direct_vectorbt(self) -> Any:
        """Re-run ``vbt.Portfolio.from_signals`` with exactly this backtest's inputs."""
        from lyra.research._vectorbt import vectorbt

        vbt = vectorbt()

        return vbt.Portfolio.from_signals(**self.vbt_kwargs)

    def plot(self) -> Any:
        """Equity and drawdown (HoloViews)."""
        from lyra.research.plots import backtest_plot

        return backtest_plot(self)


def _resolve_freq(data: pd.DataFrame, freq: str | pd.Timedelta | None) -> pd.Timedelta:
    return pd.Timedelta(freq) if freq is not None else infer_freq(pd.DatetimeIndex(data.index))


def backtest(
    strategy: Strategy[Any],
    data: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    cost: CostModel | None = None,
    init_cash: float = DEFAULT_CASH,
    fill: FillAt = "next_open",
    freq: str | pd.Timedelta | None = None,
    stops: Any = None,
    size: float | None = None,
) -> BacktestResult:
    """Backtest ``strategy`` on OHLCV ``data`` (one DataFrame; or, for a weights strategy
    such as :class:`~lyra.strategy.Rebalance`, a mapping instrument -> DataFrame).

    Each entry buys all the cash's worth, or ``size`` base units (a paper session's fixed
    ``quantity``: the same trades, sized the same way); signal strategies only.

    Raises :class:`~lyra.core.errors.ValidationError` on NaN prices (naming the timestamp),
    an unsorted or duplicated index, misaligned signals, or a bad ``fill``.
    """
    from lyra.research._vectorbt import vectorbt

    vbt = vectorbt()

    _check_fill(fill)
    cost = cost or CostModel()
    if init_cash <= 0:
        raise ValidationError("init_cash", init_cash, "must be positive")
    if size is not None and not (isinstance(size, int | float) and np.isfinite(size) and size > 0):
        raise ValidationError("size", size, "must be a positive number of base units (or None: all the cash)")
    if strategy.kind == "weights":
        if size is not None:
            raise ValidationError("size", size, "a weights strategy sizes by its weights")
        if not isinstance(data, Mapping):
            raise ValidationError("data", type(data).__name__,
                                  "a weights strategy needs {instrument: DataFrame}")
        return _backtest_weights(strategy, data, cost=cost, init_cash=init_cash, fill=fill, freq=freq)
    if not isinstance(data, pd.DataFrame):
        raise ValidationError("data", type(data).__name__, "must be an OHLCV DataFrame")
    check_ohlcv(data, ("open", "close") if fill == "next_open" else ("close",))
    f = _resolve_freq(data, freq)
    raw = strategy.signals(data)
    sig = Signals(
        _as_bool("entries", raw.entries, data.index), _as_bool("exits", raw.exits, data.index),
        None if raw.short_entries is None else _as_bool("short_entries", raw.short_entries, data.index),
        None if raw.short_exits is None else _as_bool("short_exits", raw.short_exits, data.index),
    )
    kw = vbt_signal_kwargs(data, sig, cost=cost, init_cash=init_cash, fill=fill, freq=f, stops=stops,
                           size=size)
    pf = vbt.Portfolio.from_signals(**kw)
    return BacktestResult(strategy, pf, fill, cost, float(init_cash), f, kw)


def align_closes(data: Mapping[str, pd.DataFrame], column: str = "close") -> pd.DataFrame:
    """One column per instrument on the bars all instruments share (inner join)."""
    if not data:
        raise ValidationError("data", {}, "no instruments")
    for k, df in data.items():
        try:
            check_ohlcv(df, ("open", "close"))
        except ValidationError as exc:
            raise ValidationError(f"data[{k!r}].{exc.field}", exc.value, exc.problem, exc.hint) from None
    out = pd.concat({k: df[column] for k, df in data.items()}, axis=1, join="inner")
    if len(out) < 2:
        raise ValidationError("data", list(data), "the instruments share fewer than two bars")
    return out


def _backtest_weights(strategy: Any, data: Mapping[str, pd.DataFrame], *, cost: CostModel, init_cash: float,
                      fill: str, freq: str | pd.Timedelta | None) -> BacktestResult:
    from lyra.research._vectorbt import vectorbt

    vbt = vectorbt()

    closes = align_closes(data)
    opens = align_closes(data, "open")
    f = _resolve_freq(closes, freq)
    w = strategy.target_weights(closes)
    idx = naive_utc_index(closes.index)
    wv = w.to_numpy()
    if fill == "next_open":
        wv = np.vstack([np.full((1, wv.shape[1]), np.nan), wv[:-1]])
    close_n = pd.DataFrame(closes.to_numpy(), index=idx, columns=closes.columns)
    kw: dict[str, Any] = {
        "close": close_n,
        "size": pd.DataFrame(wv, index=idx, columns=closes.columns),
        "size_type": "targetpercent",
        "fees": cost.taker_fee_float,
        "slippage": cost.slippage_float,
        "init_cash": float(init_cash),
        "group_by": True,
        "cash_sharing": True,
        "call_seq": "auto",  # sells before buys, so their cash funds the buys
        "freq": f,
    }
    if fill == "next_open":
        kw["price"] = pd.DataFrame(opens.to_numpy(), index=idx, columns=closes.columns)
    pf = vbt.Portfolio.from_orders(**kw)
    return WeightsBacktestResult(strategy, pf, fill, cost, float(init_cash), f, kw)


class WeightsBacktestResult(BacktestResult):
    """A multi-asset backtest: equity, drawdown and metrics are for the whole portfolio;
    ``position`` and ``exposure`` have one column per instrument."""

    def direct_vectorbt(self) -> Any:
        from lyra.research._vectorbt import vectorbt

        vbt = vectorbt()

        return vbt.Portfolio.from_orders(**self.vbt_kwargs)

    @cached_property
    def position(self) -> pd.DataFrame:
        return self._utc(self.portfolio.assets())

    @cached_property
    def exposure(self) -> pd.DataFrame:
        close = self.vbt_kwargs["close"].to_numpy()
        return self.position * close / self.equity.to_numpy()[:, None]

    @cached_property
    def metrics(self) -> dict[str, Any]:
        pf = self.portfolio
        tr = pf.trades.records_arr
        closed = tr[tr["status"] == 1]
        orders = pf.orders.records_arr
        pos = pf.assets().to_numpy()
        return m.compute_metrics(
            pf.value().to_numpy(), self.init_cash, m.ann_factor(self.freq),
            trade_pnl=closed["pnl"], n_open_trades=int((tr["status"] == 0).sum()),
            position=np.abs(pos).sum(axis=1), traded_notional=orders["size"] * orders["price"],
            fees=orders["fees"],
        )
