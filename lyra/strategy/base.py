"""The strategy contract: one set of typed parameters, two forms.

A :class:`Strategy` states its parameters once (a :class:`~lyra.strategy.params.StrategyParams`
model) and gives

(a) a **vectorized** form, :meth:`Strategy.signals`: OHLCV arrays in, boolean entry/exit
    arrays out (or target weights, for rebalancing strategies), for vectorbt backtests and
    sweeps; and
(b) an **incremental** form, :meth:`Strategy.incremental`: an object whose
    ``on_bar(bar) -> list[OrderIntent]`` keeps O(1) state per bar, for sessions.

Both forms produce, bar by bar, exactly the same raw entry/exit decisions on the same data:
the incremental classes repeat the vectorized kernels' float arithmetic in the same order.

**Fill convention.** Signals are computed on bar *t*'s close. Backtests fill them at bar
*t+1*'s open (``fill="next_open"``, the default, what a live session can really do) or at
bar *t*'s close (``fill="close"``, optimistic). The incremental form emits its intents on
bar *t*; the session decides when they execute, with the same convention.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Generic, Literal, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from lyra.core.enums import Side
from lyra.core.errors import ValidationError
from lyra.core.market import Bar
from lyra.core.orders import OrderIntent
from lyra.strategy.params import P, make_params

#: Where a signal computed on bar t's close is filled: t+1's open (default) or t's close.
FillAt = Literal["next_open", "close"]
FILL_CHOICES: tuple[str, ...] = ("next_open", "close")

#: Indicator cache shared across parameter combinations: key -> array (e.g. ("sma", 20)).
IndicatorCache = dict[tuple[Any, ...], NDArray[np.float64]]

#: Raw signal codes returned by ``IncrementalSignalStrategy.update`` (bit flags).
NO_SIGNAL = 0
ENTRY = 1
EXIT = 2

OHLC = ("open", "high", "low", "close")


@dataclass(frozen=True)
class Signals:
    """Entry and exit flags, one per bar, aligned with the input data.

    ``entries``/``exits`` are long entries and exits. For a long/short strategy
    ``short_entries``/``short_exits`` are set (an opposite entry reverses the position).
    """

    entries: NDArray[np.bool_]
    exits: NDArray[np.bool_]
    short_entries: NDArray[np.bool_] | None = None
    short_exits: NDArray[np.bool_] | None = None

    @property
    def allows_short(self) -> bool:
        return self.short_entries is not None

    def __len__(self) -> int:
        return int(self.entries.shape[0])


def check_ohlcv(data: pd.DataFrame, columns: tuple[str, ...] = OHLC) -> None:
    """Refuse OHLCV data a backtest cannot trust, naming the offending timestamp.

    Checks: the columns exist; the index is increasing without duplicates; no NaN/inf and no
    non-positive price in ``columns``. Missing bars (time gaps) are allowed: real exchanges
    have outages, and the data-quality notebook reports them.
    """
    if not isinstance(data, pd.DataFrame):
        raise ValidationError("data", type(data).__name__, "must be a pandas DataFrame of OHLCV")
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise ValidationError("data.columns", list(data.columns), f"missing {missing}")
    if len(data) == 0:
        raise ValidationError("data", "0 rows", "is empty")
    idx = data.index
    keys = np.asarray(idx.asi8 if isinstance(idx, pd.DatetimeIndex) else idx)
    if len(keys) > 1:
        step = np.diff(keys)
        if not (step > 0).all():  # strictly increasing = sorted and no duplicates, in one pass
            pos = int(np.argmax(step <= 0)) + 1
            problem = "duplicate timestamp" if step[pos - 1] == 0 else "timestamps go backwards here"
            raise ValidationError("data.index", str(idx[pos]), problem,
                                  "sort the data and drop duplicated bars")
    for col in columns:
        arr = data[col].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(arr) | (arr <= 0)
        if bad.any():
            pos = int(np.argmax(bad))
            raise ValidationError(
                f"data.{col}", f"{arr[pos]} at {idx[pos]}", "NaN, infinite or non-positive price",
                "fill or drop the gap before backtesting; a partial result would be misleading",
            )


def close_array(data: pd.DataFrame | pd.Series | ArrayLike) -> NDArray[np.float64]:
    """The close prices of ``data`` (DataFrame with 'close', Series or array) as float64."""
    if isinstance(data, pd.DataFrame):
        if "close" not in data.columns:
            raise ValidationError("data.columns", list(data.columns), "missing 'close'")
        arr = data["close"].to_numpy(dtype=np.float64)
    elif isinstance(data, pd.Series):
        arr = data.to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 1:
        raise ValidationError("data", f"shape {arr.shape}", "close prices must be one-dimensional")
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = int(np.argmax(bad))
        where = data.index[pos] if isinstance(data, pd.DataFrame | pd.Series) else f"row {pos}"
        raise ValidationError("data.close", f"NaN at {where}", "NaN or infinite close",
                              "fill or drop the gap")
    return np.ascontiguousarray(arr)


class Strategy(ABC, Generic[P]):
    """Base of every strategy. Subclasses set ``params_model`` and implement the two forms.

    Build with keyword parameters (``SmaCross(fast=10, slow=30)``) or a mapping; invalid
    values raise :class:`~lyra.core.errors.ValidationError` naming the parameter.
    """

    params_model: ClassVar[type[Any]]
    #: "signals" (entries/exits) or "weights" (target portfolio weights).
    kind: ClassVar[Literal["signals", "weights"]] = "signals"

    def __init__(self, params: P | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if isinstance(params, self.params_model):
            base: Mapping[str, Any] = params.as_dict()
        else:
            base = dict(params or {})
        self.params: P = make_params(self.params_model, base, **kwargs)

    @classmethod
    def name(cls) -> str:
        return cls.__name__

    def with_params(self, **changes: Any) -> Self:
        """A copy with some parameters changed (validated again)."""
        return type(self)({**self.params.as_dict(), **changes})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.as_dict().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.params == self.params

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.params))

    @property
    def warmup(self) -> int:
        """Bars needed before the first possible signal."""
        return 0

    @abstractmethod
    def signals(self, data: pd.DataFrame | pd.Series | ArrayLike,
                cache: IndicatorCache | None = None) -> Signals:
        """Vectorized form: entry/exit flags on each bar's close (see the fill convention).

        ``cache`` lets sweeps compute each indicator once per unique window and reuse it.
        """

    @abstractmethod
    def incremental(self, instrument_id: str, quantity: Decimal | str | int = 1) -> Any:
        """Incremental form for sessions: an object with ``on_bar(bar) -> list[OrderIntent]``."""


class IncrementalSignalStrategy(ABC):
    """Incremental form of an entry/exit strategy: O(1) work per bar.

    Subclasses implement :meth:`update` (one close in, raw signal code out: ``ENTRY``,
    ``EXIT`` or ``NO_SIGNAL``). This class turns codes into a target position with the same
    rules as the vectorbt backtest (an entry while long, or an exit while flat, does
    nothing; with shorts allowed an exit reverses to short and an entry reverses to long) and
    emits :class:`~lyra.core.orders.OrderIntent` objects of ``quantity`` per unit of target.

    ``target_position`` is -1, 0 or +1 (short, flat, long), so a session runtime may size
    orders itself (e.g. all-in on equity) instead of using the fixed ``quantity``.
    """

    __slots__ = (
        "_neg_qty", "_qty", "allow_short", "instrument_id", "last_signal", "n_bars", "target_position",
    )

    def __init__(self, instrument_id: str, quantity: Decimal | str | int = 1,
                 allow_short: bool = False) -> None:
        qty = Decimal(str(quantity))
        if qty <= 0:
            raise ValidationError("quantity", quantity, "must be positive")
        self.instrument_id = instrument_id
        self._qty = qty
        self._neg_qty = qty * 2
        self.allow_short = allow_short
        #: -1 short, 0 flat, +1 long.
        self.target_position = 0
        #: raw signal code of the last bar (ENTRY / EXIT bit flags).
        self.last_signal = NO_SIGNAL
        self.n_bars = 0

    @abstractmethod
    def update(self, close: float) -> int:
        """Feed one close; return the raw signal code for this bar."""

    def on_bar(self, bar: Bar) -> list[OrderIntent]:
        """Feed one bar; return the order intents it triggers (usually none)."""
        code = self.update(bar.close)
        if code == NO_SIGNAL:
            return []
        return self._act(code)

    def on_close(self, close: float) -> list[OrderIntent]:
        """Same as :meth:`on_bar` for a bare close price (the cheapest hot path)."""
        code = self.update(close)
        if code == NO_SIGNAL:
            return []
        return self._act(code)

    def _act(self, code: int) -> list[OrderIntent]:
        pos = self.target_position
        if code == ENTRY:
            if pos == 1:
                return []
            self.target_position = 1
            qty = self._qty if pos == 0 else self._neg_qty
            return [OrderIntent(self.instrument_id, Side.BUY, qty, tag="entry")]
        if code == EXIT:
            if self.allow_short:
                if pos == -1:
                    return []
                self.target_position = -1
                qty = self._qty if pos == 0 else self._neg_qty
                return [OrderIntent(self.instrument_id, Side.SELL, qty, tag="short_entry")]
            if pos != 1:
                return []
            self.target_position = 0
            return [OrderIntent(self.instrument_id, Side.SELL, self._qty, reduce_only=True, tag="exit")]
        return []  # entry and exit on one bar: ignored, as vectorbt does


def signals_from_codes(codes: NDArray[np.int8]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Split raw codes (ENTRY/EXIT flags) into entry and exit arrays."""
    return (codes & ENTRY) != 0, (codes & EXIT) != 0


def make_signals(entries: NDArray[np.bool_], exits: NDArray[np.bool_], allow_short: bool) -> Signals:
    """Signals for a long-only or a long/short (exit = short entry) strategy."""
    if allow_short:
        return Signals(entries, np.zeros_like(exits), short_entries=exits, short_exits=np.zeros_like(entries))
    return Signals(entries, exits)
