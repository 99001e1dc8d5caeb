"""Session configuration: one typed, frozen model that refuses unknown keys."""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from lyra.core.errors import ConfigError
from lyra.core.timeutil import timeframe_to_ms

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


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
        return v

    @field_validator("balances")
    @classmethod
    def _bal(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for k, amount in v.items():
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"balance of {k} must be >= 0")
        return v

    @model_validator(mode="after")
    def _live(self) -> SessionConfig:
        if self.mode == "live" and not self.live_confirm:
            raise ValueError("live mode trades real money: set live_confirm = true to confirm")
        if not self.symbols:
            raise ValueError("symbols: give at least one symbol")
        if self.equity_every < 1:
            raise ValueError("equity_every must be >= 1")
        return self

    def instrument_ids(self) -> list[str]:
        return [f"{self.venue}:{s}" for s in self.symbols]


def load_session_config(source: Path | dict[str, Any], **overrides: Any) -> SessionConfig:
    """Build a config from a TOML file or a dict; errors name the key and the value."""
    where = "config"
    if isinstance(source, Path):
        where = str(source)
        try:
            data: dict[str, Any] = tomllib.loads(source.read_text())
        except FileNotFoundError:
            raise ConfigError("config", where, "file not found") from None
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
        if err["type"] == "extra_forbidden":
            msg = f"unknown key in {where}; known keys: " + ", ".join(SessionConfig.model_fields)
        raise ConfigError(field, err.get("input"), msg) from None
