"""Session configuration: one typed, frozen model that refuses unknown keys.

Numbers are checked against sane bounds, so a typo cannot run a session on nonsense (every
bound is far beyond any real use; NaN and infinity are refused everywhere):

==================  ==========================================================
``slippage_bps``    0 .. 1,000 (10 %)
``latency_ms``      0 .. 86,400,000 (one day)
``quantity``        > 0 .. 1e12 base units (memecoins trade in billions)
``balances``        0 .. 1e15 per asset
``speed``           > 0 .. 1e9 x real time (a day of bars in under 0.1 ms)
``equity_every``    1 .. 1,000,000 bars
strategy windows    1 .. 1,000,000 bars (``params`` fields typed as a window)
``start``/``end``   ISO-8601 dates, ``end`` after ``start``
==================  ==========================================================

:func:`check_data_range` (called by ``lyra session start``) also refuses a config whose
venue / symbol / timeframe is not in the market store, or whose ``start``..``end`` holds no
stored bar, naming what is stored instead.
"""

from __future__ import annotations

import math
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from lyra.core.errors import ConfigError
from lyra.core.timeutil import timeframe_to_ms

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
MAX_SLIPPAGE_BPS = Decimal(1000)
MAX_LATENCY_MS = 86_400_000
MAX_QUANTITY = Decimal("1e12")
MAX_BALANCE = Decimal("1e15")
MAX_SPEED = 1e9
MAX_EQUITY_EVERY = 1_000_000
MAX_WINDOW = 1_000_000


class _FieldProblem(ValueError):
    """Raised by model-level checks so the error names the field and its value, not the
    whole config."""

    def __init__(self, field: str, value: Any, problem: str) -> None:
        self.field, self.value, self.problem = field, value, problem
        super().__init__(problem)


def _finite_in(v: Decimal, lo: Decimal, hi: Decimal, *, lo_open: bool = False) -> Decimal:
    if not v.is_finite() or v > hi or (v <= lo if lo_open else v < lo):
        raise ValueError(f"must be a number {'>' if lo_open else '>='} {lo} and <= {hi}")
    return v


def _ms_of(field: str, text: str | None) -> int | None:
    from lyra.core.errors import ValidationError
    from lyra.core.timeutil import datetime_to_ms, parse_utc

    if text is None:
        return None
    try:
        return datetime_to_ms(parse_utc(text))
    except (ValidationError, OverflowError, ValueError):
        raise _FieldProblem(field, text, "not an ISO-8601 date/time (e.g. 2024-01-01 or "
                            "2024-01-01T12:00Z)") from None


class InstrumentSpec(BaseModel):
    """An instrument the venue's recorded markets do not define (e.g. a USD pair)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price_increment: Decimal
    size_increment: Decimal
    min_size: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)
    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.001")


class SessionConfig(BaseModel):
    """Everything a session needs. ``mode`` is ``backtest`` (as fast as possible), ``paper``
    (paced replay or live data, paper broker) or ``live`` (real venue; needs ``live_confirm``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: str
    mode: Literal["backtest", "paper", "live"] = "backtest"
    #: a shipped strategy (``sma_cross``, ``rsi_reversion``, ``bollinger``) or an import path
    #: ``"package.module:Class"`` to a subclass of ``lyra.strategy.Strategy``
    strategy: str = "sma_cross"
    params: dict[str, Any] = Field(default_factory=dict)
    venue: str = "binance"
    symbols: tuple[str, ...] = ("BTC/USDT",)
    timeframe: str = "1h"
    start: str | None = None
    end: str | None = None
    #: order size per signal, in base units
    quantity: Decimal = Decimal("0.01")
    balances: dict[str, Decimal] = Field(default_factory=lambda: {"USDT": Decimal(10_000)})
    slippage_bps: Decimal = Decimal(0)
    latency_ms: int = 0
    #: paper mode: replay at N× real time (None: as fast as possible)
    speed: float | None = None
    #: instruments not in the venue's recorded markets
    instruments: dict[str, InstrumentSpec] = Field(default_factory=dict)
    #: risk limits (see lyra.risk.RiskConfig); empty means the defaults
    risk: dict[str, Any] = Field(default_factory=dict)
    #: write an equity snapshot to the log every N bars (and after every fill)
    equity_every: int = 60
    live_confirm: bool = False
    #: live mode: trade the venue's testnet (``set_sandbox_mode``)
    sandbox: bool = False
    #: live mode, restart reconciliation: orphans ``cancel``/``adopt``/``leave``
    reconcile_orphans: Literal["cancel", "adopt", "leave"] = "cancel"
    #: seconds the session's ownership lease lasts without a heartbeat (``lyra.session.lease``):
    #: how long a paused or unreachable owner keeps others out. Operational: not logged with
    #: the config, so it may change between resumes.
    lease_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    #: a strategy's orders denied this many times in a row on one instrument: the session
    #: records it (``session.denials``) and stops sending that intent until the signal changes
    #: (``lyra.session.gateway``)
    denied_in_row_limit: int = Field(default=20, ge=1, le=1_000_000)

    @field_validator("session_id")
    @classmethod
    def _sid(cls, v: str) -> str:
        if not _SESSION_ID.match(v):
            raise ValueError("use 1-40 letters, digits, '-' or '_'")
        return v

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str) -> str:
        # Resolved now, so a bad name or path is refused before anything is written.
        from lyra.strategy.registry import strategy_class

        try:
            strategy_class(v)
        except ConfigError as exc:
            raise ValueError(f"{exc.problem} ({exc.hint})" if exc.hint else exc.problem) from None
        return v

    @field_validator("timeframe")
    @classmethod
    def _tf(cls, v: str) -> str:
        try:
            timeframe_to_ms(v)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("quantity")
    @classmethod
    def _qty(cls, v: Decimal) -> Decimal:
        if not v.is_finite() or v <= 0:
            raise ValueError("must be a positive number")
        return _finite_in(v, Decimal(0), MAX_QUANTITY, lo_open=True)

    @field_validator("balances")
    @classmethod
    def _bal(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for k, amount in v.items():
            if not amount.is_finite() or amount < 0 or amount > MAX_BALANCE:
                raise _FieldProblem(f"balances.{k}", str(amount), f"must be >= 0 and <= {MAX_BALANCE}")
        return v

    @field_validator("slippage_bps")
    @classmethod
    def _slippage(cls, v: Decimal) -> Decimal:
        return _finite_in(v, Decimal(0), MAX_SLIPPAGE_BPS)

    @field_validator("latency_ms")
    @classmethod
    def _latency(cls, v: int) -> int:
        if not 0 <= v <= MAX_LATENCY_MS:
            raise ValueError(f"must be >= 0 and <= {MAX_LATENCY_MS:,} ms")
        return v

    @field_validator("speed")
    @classmethod
    def _speed(cls, v: float | None) -> float | None:
        if v is not None and not (math.isfinite(v) and 0 < v <= MAX_SPEED):
            raise ValueError(f"must be a number > 0 and <= {MAX_SPEED:g} (times real time)")
        return v

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Checked against the strategy's own parameter model now, so a bad value is refused
        # before anything is written, naming ``params.<name>``.
        from lyra.core.errors import ValidationError
        from lyra.strategy.registry import strategy_class

        name = info.data.get("strategy")
        if name is None:  # the strategy itself was refused: that error is reported
            return v
        model = getattr(strategy_class(name), "params_model", None)
        if model is None:
            return v
        for key, value in v.items():
            field = model.model_fields.get(key)
            if field is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise _FieldProblem(f"params.{key}", value, "must be a finite number")
            is_window = field.annotation is int and any(getattr(m, "ge", None) == 1 for m in field.metadata)
            if is_window and value > MAX_WINDOW:
                raise _FieldProblem(f"params.{key}", value,
                                    f"a window of at most {MAX_WINDOW:,} bars")
        from lyra.session.strategies import build_strategy

        try:
            build_strategy(name, v)  # the session's own way (``params.execution`` set aside)
        except ValidationError as exc:
            field_name = exc.field if exc.field.startswith("params.") else f"params.{exc.field}"
            raise _FieldProblem(field_name, exc.value, exc.problem) from None
        return v

    @model_validator(mode="after")
    def _live(self) -> SessionConfig:
        if self.mode == "live" and not self.live_confirm:
            raise _FieldProblem("live_confirm", self.live_confirm,
                                "live mode trades real money: set live_confirm = true to confirm")
        if not self.symbols:
            raise _FieldProblem("symbols", [], "give at least one symbol")
        if not 1 <= self.equity_every <= MAX_EQUITY_EVERY:
            raise _FieldProblem("equity_every", self.equity_every,
                                f"must be >= 1 and <= {MAX_EQUITY_EVERY:,}")
        start, end = _ms_of("start", self.start), _ms_of("end", self.end)
        if start is not None and end is not None and end <= start:
            raise _FieldProblem("end", self.end, f"must be after start ({self.start})")
        return self

    def instrument_ids(self) -> list[str]:
        return [f"{self.venue}:{s}" for s in self.symbols]


def load_session_config(source: Path | dict[str, Any], **overrides: Any) -> SessionConfig:
    """Build a config from a TOML file or a dict; errors name the key and the value."""
    where = "config"
    if isinstance(source, Path):
        where = str(source)
        try:
            raw = source.read_bytes()
        except FileNotFoundError:
            raise ConfigError("config", where, "file not found") from None
        except OSError as exc:
            raise ConfigError("config", where, f"cannot be read: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError("config", where, f"not a text file (byte {exc.start} is not UTF-8)",
                              "a session config is a TOML text file") from None
        if "\x00" in text:
            raise ConfigError("config", where, "not a text file (it holds NUL bytes)",
                              "a session config is a TOML text file")
        try:
            data: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", where, f"not valid TOML: {exc}") from None
    else:
        data = dict(source)
    data.update(overrides)
    try:
        return SessionConfig(**data)
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        problem = (err.get("ctx") or {}).get("error")
        if isinstance(problem, _FieldProblem):
            field, value, msg = problem.field, problem.value, problem.problem
        elif err["type"] == "extra_forbidden":
            msg = f"unknown key in {where}; known keys: " + ", ".join(SessionConfig.model_fields)
        if isinstance(value, dict | list) and len(repr(value)) > 80:
            value = f"<{type(value).__name__} of {len(value)}>"  # never the whole config
        raise ConfigError(field, value, msg) from None


def check_data_range(config: SessionConfig, market_dir: Path) -> None:
    """Refuse (ConfigError) a backtest/paper config whose data is not in the market store, or
    whose ``start``..``end`` holds no stored bar, naming venue, symbol and timeframe and what
    is stored. A session on missing data would "finish" with 0 events."""
    if config.mode == "live":
        return
    import pandas as pd

    from lyra.feeds.store import MarketStore

    def when(ms: int) -> str:
        return str(pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M"))

    store = MarketStore(market_dir)
    start, end = _ms_of("start", config.start), _ms_of("end", config.end)
    for symbol in config.symbols:
        what = f"{config.venue} {symbol} {config.timeframe}"
        first = store.first_timestamp(config.venue, symbol, config.timeframe)
        last = store.last_timestamp(config.venue, symbol, config.timeframe)
        if first is None or last is None:
            listed = store.list_datasets()
            near = listed[(listed["exchange"] == config.venue)]
            stored = ", ".join(f"{r.exchange} {r.symbol} {r.timeframe}" for r in near.itertuples()) or (
                "none for this venue" if not listed.empty else "nothing")
            raise ConfigError("symbols", symbol, f"no {what} bars in the market store (stored: {stored})",
                              "`lyra data list`; `lyra data import FILE` or `lyra data download`")
        if (start is not None and start > last) or (end is not None and end <= first):
            raise ConfigError("start" if start is not None and start > last else "end",
                              config.start if start is not None and start > last else config.end,
                              f"no {what} bars between start and end (stored: {when(first)} → "
                              f"{when(last)})", "pick start and end inside the stored range")
