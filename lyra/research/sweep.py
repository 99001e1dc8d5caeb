"""Parameter sweeps: grid or random search, ranked by any metric, optionally on Dask::

    res = sweep(data, SmaCross, {"fast": range(5, 51, 5), "slow": range(20, 201, 5)})
    res.ranked("sharpe").head()          # best first
    res.heatmap("fast", "slow", "sharpe")

Speed: the crossover family (``SmaCross``, long-only) runs on a numba kernel that computes
each moving average **once per unique window** and derives every combination's signals on
the fly; other strategies compute their indicators once per chunk through a shared cache and
go through the same kernel. Both replay vectorbt's ``from_signals`` all-in long-only fills
(pinned against vectorbt in the tests). Long/short grids, or ``engine="vectorbt"``, use
``vbt.Portfolio.from_signals`` in chunks of ``chunk_size`` columns (chunking is mandatory:
one call over 1,590 columns × 200k bars went past 19 GB).

Scale-out: ``client=`` takes a ``dask.distributed.Client``, a scheduler address
(``"tcp://host:8786"``) or ``"local"`` (a ``LocalCluster`` of ``n_workers`` single-threaded
processes, closed afterwards). The grid is split into the same chunks either way and every
column is computed independently, so results are identical to the single-process run. (On
Dask each chunk computes the moving averages it needs on its worker: cheaper than shipping
them all.)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from tqdm import tqdm

from lyra.core.errors import ValidationError
from lyra.execution.costs import CostModel
from lyra.research import metrics as m
from lyra.research._kernel import finalize, simulate_cross_nb, simulate_signals_nb
from lyra.research.backtest import DEFAULT_CASH, _check_fill, _resolve_freq, shift_signal
from lyra.strategy.base import Strategy, check_ohlcv
from lyra.strategy.params import make_params
from lyra.strategy.sma_cross import SmaCross, moving_average

Engine = Literal["auto", "numba", "vectorbt"]


# ---------------------------------------------------------------- the grid
def expand_grid(strategy: type[Strategy[Any]], grid: Mapping[str, Sequence[Any]],
                fixed: Mapping[str, Any] | None = None) -> tuple[list[dict[str, Any]], int]:
    """All valid combinations of ``grid`` (plus ``fixed`` values), in grid order, and the
    number dropped by cross-parameter rules (e.g. fast >= slow).

    A value that appears in *no* valid combination (a negative window, an unknown
    parameter...) is an error naming it, as is an empty grid.
    """
    if not isinstance(grid, Mapping) or not grid:
        raise ValidationError("grid", grid, "is empty",
                              "e.g. {'fast': range(5, 51, 5), 'slow': range(20, 201, 5)}")
    keys = list(grid)
    known = set(strategy.params_model.model_fields)
    for k in keys:
        if k not in known:
            raise ValidationError(f"grid.{k}", grid[k], f"not a parameter of {strategy.name()}",
                                  f"parameters: {sorted(known)}")
    values: list[list[Any]] = []
    for k in keys:
        v = grid[k]
        vals = [v] if isinstance(v, str | bytes) or not hasattr(v, "__iter__") else list(v)
        if not vals:
            raise ValidationError(f"grid.{k}", vals, "has no values")
        values.append(vals)
    fixed = dict(fixed or {})
    valid: list[dict[str, Any]] = []
    used: list[set[int]] = [set() for _ in keys]
    first_error: dict[tuple[int, int], ValidationError] = {}
    for combo_idx in itertools.product(*(range(len(v)) for v in values)):
        combo = {k: values[j][i] for j, (k, i) in enumerate(zip(keys, combo_idx, strict=True))}
        try:
            p = make_params(strategy.params_model, {**fixed, **combo})
        except ValidationError as exc:
            for j, i in enumerate(combo_idx):
                first_error.setdefault((j, i), exc)
            continue
        valid.append(p.as_dict())
        for j, i in enumerate(combo_idx):
            used[j].add(i)
    for j, k in enumerate(keys):
        for i in range(len(values[j])):
            if i not in used[j]:
                why = first_error[(j, i)]
                raise ValidationError(f"grid.{k}", values[j][i], f"fits no valid combination ({why})")
    return valid, len(list(itertools.product(*values))) - len(valid)


# ---------------------------------------------------------------- chunk workers
def _cross_chunk(price: NDArray[np.float64], close: NDArray[np.float64], mas: NDArray[np.float64],
                 fast_row: NDArray[np.int64], slow_row: NDArray[np.int64], shift: int, fees: float,
                 slip: float, init_cash: float) -> NDArray[np.float64]:
    return simulate_cross_nb(price, close, mas, fast_row, slow_row, shift, fees, slip, init_cash)


def _cross_chunk_remote(price: NDArray[np.float64], close: NDArray[np.float64], keys: list[tuple[str, int]],
                        fast_row: NDArray[np.int64], slow_row: NDArray[np.int64], shift: int, fees: float,
                        slip: float, init_cash: float) -> NDArray[np.float64]:
    """Dask variant: compute the chunk's own moving averages on the worker (an SMA of 200k bars
    costs well under a millisecond; shipping 76 of them to every worker cost more)."""
    mas = np.empty((len(keys), close.shape[0]))
    for i, (kind, w) in enumerate(keys):
        mas[i] = moving_average(close, w, kind)
    return simulate_cross_nb(price, close, mas, fast_row, slow_row, shift, fees, slip, init_cash)


def _signals_chunk(strategy: type[Strategy[Any]], combos: list[dict[str, Any]], price: NDArray[np.float64],
                   close: NDArray[np.float64], shift: int, fees: float, slip: float,
                   init_cash: float) -> NDArray[np.float64]:
    cache: dict[tuple[Any, ...], NDArray[np.float64]] = {}
    n = close.shape[0]
    en = np.zeros((n, len(combos)), dtype=np.bool_, order="F")
    ex = np.zeros((n, len(combos)), dtype=np.bool_, order="F")
    for c, p in enumerate(combos):
        s = strategy(p).signals(close, cache)
        en[:, c] = s.entries
        ex[:, c] = s.exits
    return simulate_signals_nb(price, close, en, ex, shift, fees, slip, init_cash)


def _vbt_chunk(strategy: type[Strategy[Any]], combos: list[dict[str, Any]], price: NDArray[np.float64],
               close: NDArray[np.float64], open_fill: bool, fees: float, slip: float, init_cash: float,
               freq: pd.Timedelta) -> NDArray[np.float64]:
    """The reference path: one ``from_signals`` call per chunk; metrics from its curves."""
    from lyra.research._vectorbt import vectorbt

    vbt = vectorbt()

    fill = "next_open" if open_fill else "close"
    cache: dict[tuple[Any, ...], NDArray[np.float64]] = {}
    sigs = [strategy(p).signals(close, cache) for p in combos]

    def stack(arrays: list[Any]) -> NDArray[np.bool_]:
        return np.column_stack([shift_signal(x, fill) for x in arrays])

    short = any(s.allows_short for s in sigs)
    kw: dict[str, Any] = {
        "entries": stack([s.entries for s in sigs]), "exits": stack([s.exits for s in sigs]),
        "size": np.inf, "fees": fees, "slippage": slip, "init_cash": init_cash, "freq": freq,
    }
    if not short:
        kw["direction"] = "longonly"
    if short:
        z = np.zeros_like(close, dtype=np.bool_)
        kw["short_entries"] = stack([s.short_entries if s.short_entries is not None else z for s in sigs])
        kw["short_exits"] = stack([s.short_exits if s.short_exits is not None else z for s in sigs])
    if open_fill:
        kw["price"] = price[:, None]
    pf = vbt.Portfolio.from_signals(close[:, None], **kw)
    value = pf.value().to_numpy()
    assets = pf.assets().to_numpy()
    trades = pf.trades.records_arr
    orders = pf.orders.records_arr
    ann = m.ann_factor(freq)
    rows = []
    for c in range(len(combos)):
        t = trades[trades["col"] == c]
        o = orders[orders["col"] == c]
        closed = t[t["status"] == 1]
        mm = m.compute_metrics(value[:, c], init_cash, ann, trade_pnl=closed["pnl"],
                               n_open_trades=int((t["status"] == 0).sum()), position=assets[:, c],
                               traded_notional=o["size"] * o["price"], fees=o["fees"])
        rows.append([mm[k] for k in m.METRIC_NAMES])
    return np.asarray(rows, dtype=np.float64)


# ---------------------------------------------------------------- results
@dataclass
class SweepResult:
    """One row per parameter combination (grid order): the parameters, then the metrics."""

    table: pd.DataFrame
    param_names: list[str]
    metric: str
    engine: str
    n_skipped: int = 0
    elapsed: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def ranked(self, metric: str | None = None, ascending: bool | None = None) -> pd.DataFrame:
        """The table sorted best first by ``metric`` (NaN last; ties keep grid order)."""
        metric = metric or self.metric
        if metric not in self.table.columns:
            raise ValidationError("metric", metric, f"unknown; choose from {list(m.METRIC_NAMES)}")
        asc = metric in m.LOWER_IS_BETTER if ascending is None else ascending
        return self.table.sort_values(metric, ascending=asc, na_position="last", kind="mergesort")

    def best(self, metric: str | None = None) -> dict[str, Any]:
        """Parameters of the best combination."""
        row = self.ranked(metric).iloc[0]
        return {k: _py(row[k]) for k in self.param_names}

    def heatmap(self, x: str, y: str, metric: str | None = None) -> Any:
        """HoloViews heatmap of ``metric`` over two parameters (best value if others vary)."""
        from lyra.research.plots import sweep_heatmap

        return sweep_heatmap(self, x, y, metric or self.metric)


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


# ---------------------------------------------------------------- dask plumbing
@contextmanager
def _dask_client(client: Any, n_workers: int) -> Iterator[Any]:
    """Yield a Client for ``client`` ("local"/True, an address, or a Client); close what we open."""
    if client is None or client is False:
        yield None
        return
    import dask.distributed

    dd: Any = dask.distributed  # untyped third-party API
    Client, LocalCluster = dd.Client, dd.LocalCluster

    if client is True or client == "local":
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        c = Client(cluster)
        try:
            yield c
        finally:
            c.close()
            cluster.close()
    elif isinstance(client, str):
        c = Client(client)
        try:
            yield c
        finally:
            c.close()
    else:
        yield client


def sweep(
    data: pd.DataFrame,
    strategy: type[Strategy[Any]] = SmaCross,
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    method: Literal["grid", "random"] = "grid",
    n_iter: int | None = None,
    seed: int = 0,
    fixed: Mapping[str, Any] | None = None,
    metric: str = "sharpe",
    cost: CostModel | None = None,
    init_cash: float = DEFAULT_CASH,
    fill: Literal["next_open", "close"] = "next_open",
    freq: str | pd.Timedelta | None = None,
    chunk_size: int = 200,
    engine: Engine = "auto",
    client: Any = None,
    n_workers: int = 2,
    progress: bool = True,
) -> SweepResult:
    """Evaluate ``strategy`` over a parameter ``grid`` on ``data``; see the module doc.

    ``method="random"`` evaluates ``n_iter`` valid combinations drawn without replacement
    (``seed`` makes it repeatable). Metrics are those of
    :data:`lyra.research.metrics.METRIC_NAMES`; ``metric`` is the default ranking key.
    """
    t0 = time.perf_counter()
    _check_fill(fill)
    if metric not in m.METRIC_NAMES:
        raise ValidationError("metric", metric, f"unknown; choose from {list(m.METRIC_NAMES)}")
    if chunk_size < 1:
        raise ValidationError("chunk_size", chunk_size, "must be at least 1")
    if engine not in ("auto", "numba", "vectorbt"):
        raise ValidationError("engine", engine, "must be 'auto', 'numba' or 'vectorbt'")
    if grid is None:
        grid = {"fast": range(5, 51, 5), "slow": range(20, 201, 5)} if strategy is SmaCross else {}
    combos, n_skipped = expand_grid(strategy, grid, fixed)
    if method == "random":
        if n_iter is None or n_iter < 1:
            raise ValidationError("n_iter", n_iter, "random search needs n_iter >= 1")
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(combos), size=min(n_iter, len(combos)), replace=False))
        combos = [combos[i] for i in pick]
    elif method != "grid":
        raise ValidationError("method", method, "must be 'grid' or 'random'")
    check_ohlcv(data, ("open", "close") if fill == "next_open" else ("close",))
    f = _resolve_freq(data, freq)
    ann = m.ann_factor(f)
    cost = cost or CostModel()
    fees, slip = cost.taker_fee_float, cost.slippage_float
    close = np.ascontiguousarray(data["close"].to_numpy(np.float64))
    price = np.ascontiguousarray(data["open"].to_numpy(np.float64)) if fill == "next_open" else close
    shift = 1 if fill == "next_open" else 0
    shorts = any(c.get("allow_short") for c in combos)
    if engine == "numba" and shorts:
        raise ValidationError("engine", engine, "the numba engine is long-only", "use engine='vectorbt'")
    use_vbt = engine == "vectorbt" or shorts
    cross = not use_vbt and strategy is SmaCross
    chunks = [combos[i:i + chunk_size] for i in range(0, len(combos), chunk_size)]

    mas = np.empty((0, 0))
    rows_of: dict[tuple[str, int], int] = {}
    if cross and client is None:
        # Each moving average once per unique window, shared by every combination.
        keys = sorted({(c["ma"], c[w]) for c in combos for w in ("fast", "slow")})
        rows_of = {k: i for i, k in enumerate(keys)}
        mas = np.empty((len(keys), close.shape[0]))
        for k, i in rows_of.items():
            mas[i] = moving_average(close, k[1], k[0])

    def task_args(chunk: list[dict[str, Any]], remote: bool = False) -> tuple[Any, tuple[Any, ...]]:
        if cross and remote:
            local = sorted({(c["ma"], c[w]) for c in chunk for w in ("fast", "slow")})
            pos = {k: i for i, k in enumerate(local)}
            fr = np.array([pos[(c["ma"], c["fast"])] for c in chunk], dtype=np.int64)
            sr = np.array([pos[(c["ma"], c["slow"])] for c in chunk], dtype=np.int64)
            return _cross_chunk_remote, (price, close, local, fr, sr, shift, fees, slip, init_cash)
        if cross:
            fr = np.array([rows_of[(c["ma"], c["fast"])] for c in chunk], dtype=np.int64)
            sr = np.array([rows_of[(c["ma"], c["slow"])] for c in chunk], dtype=np.int64)
            return _cross_chunk, (price, close, mas, fr, sr, shift, fees, slip, init_cash)
        if use_vbt:
            return _vbt_chunk, (strategy, chunk, price, close, shift == 1, fees, slip, init_cash, f)
        return _signals_chunk, (strategy, chunk, price, close, shift, fees, slip, init_cash)

    results: list[NDArray[np.float64] | None] = [None] * len(chunks)
    bar = tqdm(total=len(combos), desc=f"sweep {strategy.name()}", unit="combo", disable=not progress,
               leave=False)
    try:
        with _dask_client(client, n_workers) as dc:
            if dc is None:
                for i, ch in enumerate(chunks):
                    fn, args = task_args(ch)
                    results[i] = fn(*args)
                    bar.update(len(ch))
            else:
                import dask.distributed

                as_completed: Any = dask.distributed.as_completed

                # Ship the big arrays once; tasks refer to them.
                shared = {id(a): dc.scatter(a, broadcast=True) for a in (price, close)}
                futs = {}
                for i, ch in enumerate(chunks):
                    fn, args = task_args(ch, remote=True)
                    args = tuple(shared.get(id(a), a) if isinstance(a, np.ndarray) else a for a in args)
                    futs[dc.submit(fn, *args, pure=False)] = i
                for fut in as_completed(futs):
                    results[futs[fut]] = fut.result()
                    bar.update(len(chunks[futs[fut]]))
    finally:
        bar.close()
    if any(r is None for r in results):  # never present a partial sweep as complete
        raise ValidationError("sweep", f"{sum(r is None for r in results)} chunks", "did not finish")
    table = _to_table(combos, [r for r in results if r is not None], use_vbt, ann, init_cash, close.shape[0])
    name = "vectorbt" if use_vbt else ("numba-cross" if cross else "numba")
    return SweepResult(table, list(grid), metric, name, n_skipped, time.perf_counter() - t0,
                       {"n_bars": close.shape[0], "fill": fill, "freq": f, "chunks": len(chunks)})


def _to_table(combos: list[dict[str, Any]], parts: list[NDArray[np.float64]], from_vbt: bool, ann: float,
              init_cash: float, n_bars: int) -> pd.DataFrame:
    params = pd.DataFrame(combos)
    acc = np.vstack(parts) if parts else np.empty((0, len(m.METRIC_NAMES)))
    if from_vbt:
        met = pd.DataFrame(acc, columns=list(m.METRIC_NAMES))
        met["n_trades"] = met["n_trades"].astype(np.int64)
        met["max_drawdown_duration"] = met["max_drawdown_duration"].astype(np.int64)
    else:
        cols = finalize(acc, ann)
        final = cols.pop("_final")
        total = (final - init_cash) / init_cash
        with np.errstate(invalid="ignore", divide="ignore"):
            ar = (final / init_cash) ** (ann / n_bars) - 1.0
            calmar = np.where(cols["max_drawdown"] == 0.0, np.nan, ar / cols["max_drawdown"])
        cols.update(total_return=total, annualized_return=ar, calmar=calmar, final_equity=final)
        met = pd.DataFrame({k: cols[k] for k in m.METRIC_NAMES})
    return pd.concat([params, met], axis=1)
