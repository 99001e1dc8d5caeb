"""Walk-forward analysis: optimise in-sample, evaluate the winner out-of-sample, roll on::

    wf = walk_forward(data, SmaCross, {"fast": [5, 10, 20], "slow": [30, 50, 100]},
                      train_bars=2000, test_bars=500)
    wf.folds            # one row per fold: windows, chosen parameters, in/out-of-sample metric
    wf.plot()

Each fold sweeps the grid on ``train_bars`` bars and picks the best ``metric``. The winner's
signals are then computed on train + test bars (so its indicators are warm at the start of the
test window) and traded only inside the test window, starting flat with the fold's starting
equity; with ``fill="next_open"`` a signal on the last training bar fills at the first test
bar's open. Windows move by ``step`` bars (``test_bars`` by default; ``anchored=True`` keeps
every training window starting at bar 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from lyra.core.errors import ValidationError
from lyra.execution.costs import CostModel
from lyra.research import metrics as m
from lyra.research.backtest import DEFAULT_CASH, _check_fill, _resolve_freq, naive_utc_index, shift_signal
from lyra.research.sweep import sweep
from lyra.strategy.base import Strategy, check_ohlcv


@dataclass
class WalkForwardResult:
    """``folds``: one row per fold; ``oos_equity``: the out-of-sample equity of all folds
    chained (each fold starts with the previous fold's final equity)."""

    folds: pd.DataFrame
    oos_equity: pd.Series
    metric: str
    param_names: list[str]
    oos_metrics: dict[str, Any]

    def plot(self) -> Any:
        """In- vs out-of-sample metric per fold, and the chained out-of-sample equity."""
        from lyra.research.plots import walkforward_plot

        return walkforward_plot(self)


def walk_forward(
    data: pd.DataFrame,
    strategy: type[Strategy[Any]],
    grid: Mapping[str, Sequence[Any]],
    *,
    train_bars: int,
    test_bars: int,
    step: int | None = None,
    anchored: bool = False,
    metric: str = "sharpe",
    cost: CostModel | None = None,
    init_cash: float = DEFAULT_CASH,
    fill: Literal["next_open", "close"] = "next_open",
    freq: str | pd.Timedelta | None = None,
    fixed: Mapping[str, Any] | None = None,
    client: Any = None,
) -> WalkForwardResult:
    """Rolling (or anchored) walk-forward of ``strategy`` over ``grid``; see the module doc."""
    from lyra.research._vectorbt import vectorbt

    vbt = vectorbt()

    _check_fill(fill)
    for name, v in (("train_bars", train_bars), ("test_bars", test_bars)):
        if not isinstance(v, int | np.integer) or v < 2:
            raise ValidationError(name, v, "must be an integer >= 2")
    step = test_bars if step is None else step
    if step < 1:
        raise ValidationError("step", step, "must be >= 1")
    check_ohlcv(data, ("open", "close"))
    n = len(data)
    if train_bars + test_bars > n:
        raise ValidationError("train_bars", train_bars, f"train_bars + test_bars exceed the {n} bars of data")
    f = _resolve_freq(data, freq)
    ann = m.ann_factor(f)
    cost = cost or CostModel()
    rows: list[dict[str, Any]] = []
    curves: list[pd.Series] = []
    # What the folds traded, so the out-of-sample summary counts their trades and fees.
    pnls: list[np.ndarray] = []
    notionals: list[np.ndarray] = []
    fee_parts: list[np.ndarray] = []
    positions: list[pd.Series] = []
    n_open = 0
    equity_now = float(init_cash)
    idx = naive_utc_index(data.index)
    start = 0
    fold = 0
    while start + train_bars + test_bars <= n:
        t0 = 0 if anchored else start
        tr_end = start + train_bars
        te_end = tr_end + test_bars
        train = data.iloc[t0:tr_end]
        sw = sweep(train, strategy, grid, fixed=fixed, metric=metric, cost=cost, init_cash=init_cash,
                   fill=fill, freq=f, client=client, progress=False)
        best = sw.ranked(metric).iloc[0]
        params = sw.best(metric)
        strat = strategy({**(fixed or {}), **params})
        window = data.iloc[t0:te_end]
        sig = strat.signals(window)
        k = tr_end - t0  # first test bar inside the window
        sl = slice(k, None)
        kw: dict[str, Any] = {
            "entries": shift_signal(sig.entries, fill)[sl], "exits": shift_signal(sig.exits, fill)[sl],
            "size": np.inf, "fees": cost.taker_fee_float, "slippage": cost.slippage_float,
            "init_cash": equity_now, "freq": f,
        }
        if not sig.allows_short:
            kw["direction"] = "longonly"
        else:
            assert sig.short_entries is not None
            assert sig.short_exits is not None
            kw["short_entries"] = shift_signal(sig.short_entries, fill)[sl]
            kw["short_exits"] = shift_signal(sig.short_exits, fill)[sl]
        if fill == "next_open":
            kw["price"] = window["open"].to_numpy(np.float64)[sl]
        close = pd.Series(window["close"].to_numpy(np.float64)[sl], index=idx[tr_end:te_end])
        pf = vbt.Portfolio.from_signals(close, **kw)
        tr = pf.trades.records_arr
        orders = pf.orders.records_arr
        oos = m.compute_metrics(pf.value().to_numpy(), equity_now, ann,
                                trade_pnl=tr[tr["status"] == 1]["pnl"],
                                n_open_trades=int((tr["status"] == 0).sum()), position=pf.assets().to_numpy(),
                                traded_notional=orders["size"] * orders["price"], fees=orders["fees"])
        curve = pf.value()
        curves.append(curve)
        pnls.append(tr[tr["status"] == 1]["pnl"])
        notionals.append(orders["size"] * orders["price"])
        fee_parts.append(orders["fees"])
        positions.append(pf.assets())
        n_open += int((tr["status"] == 0).sum())  # a fold's open trade ends with its fold
        rows.append({
            "fold": fold,
            "train_start": data.index[t0], "train_end": data.index[tr_end - 1],
            "test_start": data.index[tr_end], "test_end": data.index[te_end - 1],
            **params,
            f"is_{metric}": float(best[metric]), f"oos_{metric}": float(oos[metric]),
            "is_total_return": float(best["total_return"]), "oos_total_return": float(oos["total_return"]),
            "oos_n_trades": int(oos["n_trades"]),
        })
        equity_now = float(curve.iloc[-1])
        start += step
        fold += 1
    eq = pd.concat(curves)
    eq = eq[~eq.index.duplicated(keep="last")]  # overlapping test windows when step < test_bars
    eq.index = pd.DatetimeIndex(eq.index).tz_localize("UTC")
    eq.name = "oos_equity"
    v = eq.to_numpy()
    pos = pd.concat(positions)
    pos = pos[~pos.index.duplicated(keep="last")]
    overall = m.compute_metrics(v, init_cash, ann, trade_pnl=np.concatenate(pnls), n_open_trades=n_open,
                                position=pos.to_numpy(), traded_notional=np.concatenate(notionals),
                                fees=np.concatenate(fee_parts))
    return WalkForwardResult(pd.DataFrame(rows), eq, metric, list(grid), overall)
