"""Risk limits and circuit-breaker settings: typed, frozen, and refusing nonsense.

A :class:`RiskConfig` has three layers of :class:`Limits`, and the most specific layer that
sets a field wins, field by field:

1. ``accounts.<id>.instruments.<instrument_id>``  (one account, one instrument)
2. ``instruments.<instrument_id>``                 (every account, one instrument)
3. ``accounts.<id>``                               (one account, every instrument)
4. ``defaults``                                    (everything)

Portfolio-wide limits (exposure, leverage, open orders, order rate, VaR, balance, allowed
instruments/venues) make no sense for one instrument and are refused there. A field left
unset everywhere means "no such check". Money limits are in ``currency`` (the account's quote
currency, e.g. USDT); marks and balances the caller passes must be in it too.

Load from a dict (:meth:`RiskConfig.from_dict`) or a TOML file (:meth:`RiskConfig.from_toml`)::

    currency = "USDT"
    resize = ["max_order_notional"]

    [defaults]
    max_order_notional = 1000
    max_gross_exposure = 50000
    max_orders_per_second = 5

    [instruments."binance:BTC/USDT"]
    max_position_qty = 2

    [breakers]
    max_drawdown_pct = 10
    drawdown_action = "reduce"

Every error is a :class:`~lyra.core.errors.ConfigError` naming the field and the value.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from lyra.core.errors import ConfigError

#: Checks that may shrink an order instead of rejecting it (name them in ``resize``).
RESIZABLE_CHECKS = frozenset(
    {"max_order_qty", "max_order_notional", "max_position_qty", "max_position_notional", "balance"}
)

#: Fields that only make sense for the whole portfolio of an account.
PORTFOLIO_FIELDS = frozenset(
    {
        "max_open_orders",
        "max_orders_per_second",
        "max_orders_per_minute",
        "max_gross_exposure",
        "max_net_exposure",
        "max_leverage",
        "max_var",
        "balance_check",
        "margin_rate",
        "allowed_instruments",
        "allowed_venues",
    }
)

#: Fields resolved per instrument (the most specific layer wins).
INSTRUMENT_FIELDS = frozenset(
    {
        "min_order_notional",
        "max_order_qty",
        "max_order_notional",
        "max_position_qty",
        "max_position_notional",
        "price_collar_pct",
        "duplicate_window_ms",
    }
)

BreakerAction = Literal["halt", "reduce"]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


def _instrument_id_ok(iid: str) -> bool:
    venue, _, symbol = iid.partition(":")
    return bool(venue) and "/" in symbol


class Limits(BaseModel):
    """One layer of pre-trade limits. ``None`` means "not set at this layer"."""

    model_config = _FROZEN

    min_order_notional: Decimal | None = None  #: smallest order value (dust guard)
    max_order_qty: Decimal | None = None  #: largest order size, base units
    max_order_notional: Decimal | None = None  #: largest order value
    max_position_qty: Decimal | None = None  #: largest |position| after the order, base units
    max_position_notional: Decimal | None = None  #: largest |position| value after the order
    price_collar_pct: Decimal | None = None  #: a limit price within this % of the mark
    duplicate_window_ms: int | None = None  #: same side/size/price again within this → reject
    max_open_orders: int | None = None  #: open orders of the account, this one excluded
    max_orders_per_second: int | None = None  #: approved orders in any 1 s window
    max_orders_per_minute: int | None = None  #: approved orders in any 60 s window
    max_gross_exposure: Decimal | None = None  #: Σ|qty·mark| after the order
    max_net_exposure: Decimal | None = None  #: |Σ qty·mark| after the order
    max_leverage: Decimal | None = None  #: gross exposure / equity after the order
    max_var: Decimal | None = None  #: portfolio normal VaR after the order (see RiskConfig.var_*)
    balance_check: Literal["spot", "margin", "off"] | None = None  #: how funds are checked
    margin_rate: Decimal | None = None  #: initial margin per unit of notional (margin mode)
    allowed_instruments: frozenset[str] | None = None  #: only these instrument ids
    allowed_venues: frozenset[str] | None = None  #: only these venues

    @field_validator(
        "min_order_notional", "max_order_qty", "max_order_notional", "max_position_qty",
        "max_position_notional", "max_gross_exposure", "max_net_exposure", "max_leverage",
        "max_var", mode="before",
    )  # fmt: skip
    @classmethod
    def _positive_decimal(cls, v: Any) -> Any:
        return _decimal_in(v, low=Decimal(0), low_open=True)

    @field_validator("price_collar_pct", mode="before")
    @classmethod
    def _pct(cls, v: Any) -> Any:
        return _decimal_in(v, low=Decimal(0), low_open=True, high=Decimal(100))

    @field_validator("margin_rate", mode="before")
    @classmethod
    def _rate(cls, v: Any) -> Any:
        return _decimal_in(v, low=Decimal(0), low_open=True, high=Decimal(1))

    @field_validator(
        "duplicate_window_ms", "max_open_orders", "max_orders_per_second", "max_orders_per_minute"
    )
    @classmethod
    def _positive_int(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError("must be a positive whole number")
        return v

    @field_validator("duplicate_window_ms")
    @classmethod
    def _window(cls, v: int | None) -> int | None:
        if v is not None and v > 3_600_000:
            raise ValueError("must be at most 3600000 (an hour): the guard is for repeats, not history")
        return v

    @field_validator("allowed_instruments")
    @classmethod
    def _ids(cls, v: frozenset[str] | None) -> frozenset[str] | None:
        for iid in v or ():
            if not _instrument_id_ok(iid):
                raise ValueError(f"{iid!r} is not an instrument id like 'binance:BTC/USDT'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Limits:
        lo, hi = self.min_order_notional, self.max_order_notional
        if lo is not None and hi is not None and lo > hi:
            raise _Bad("min_order_notional", lo, f"greater than max_order_notional {hi}")
        return self

    def set_fields(self) -> dict[str, Any]:
        """The fields this layer sets (not None)."""
        return {k: v for k, v in self if v is not None}


class AccountLimits(Limits):
    """An account's limits, with optional per-instrument overrides for this account only."""

    instruments: dict[str, Limits] = Field(default_factory=dict)


class BreakerConfig(BaseModel):
    """Circuit breakers. Each is off until its threshold is set.

    A ``*_cooldown_ms`` of ``None`` means the trip lasts until a person re-arms the account
    (``lyra risk rearm``): it is written to the persisted trading state. A number means the
    breaker clears by itself that long after the trip (session clock). The daily-loss breaker
    clears at the next UTC midnight when its cool-down is ``None``.
    """

    model_config = _FROZEN

    daily_loss_limit: Decimal | None = None  #: loss since the UTC day's first equity, currency
    daily_loss_pct: Decimal | None = None  #: the same as % of that equity
    daily_loss_action: BreakerAction = "halt"
    daily_loss_cooldown_ms: int | None = None  #: None: until the next UTC day
    max_drawdown_pct: Decimal | None = None  #: % below the peak equity
    drawdown_action: BreakerAction = "halt"
    drawdown_cooldown_ms: int | None = None  #: None: until re-armed; after a cooldown the peak resets
    max_consecutive_losses: int | None = None  #: losing closing fills in a row
    consecutive_loss_action: BreakerAction = "halt"
    consecutive_loss_cooldown_ms: int | None = 3_600_000
    vol_spike_ratio: float | None = None  #: short-window vol / baseline vol that trips
    vol_window: int = 20  #: bars in the short window
    vol_baseline_window: int = 500  #: bars in the baseline window (must be full to trip)
    vol_cooldown_ms: int | None = 3_600_000  #: new entries on that instrument blocked this long
    stale_after_ms: int | None = None  #: no market data for this long → no orders there
    stale_cooldown_ms: int = 0  #: keep blocking this long after the feed came back

    @field_validator("daily_loss_limit", mode="before")
    @classmethod
    def _money(cls, v: Any) -> Any:
        return _decimal_in(v, low=Decimal(0), low_open=True)

    @field_validator("daily_loss_pct", "max_drawdown_pct", mode="before")
    @classmethod
    def _pct(cls, v: Any) -> Any:
        return _decimal_in(v, low=Decimal(0), low_open=True, high=Decimal(100), high_open=True)

    @field_validator("max_consecutive_losses", "stale_after_ms")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError("must be a positive whole number")
        return v

    @field_validator(
        "daily_loss_cooldown_ms", "drawdown_cooldown_ms", "consecutive_loss_cooldown_ms",
        "vol_cooldown_ms", "stale_cooldown_ms",
    )  # fmt: skip
    @classmethod
    def _non_negative(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise ValueError("must not be negative")
        return v

    @field_validator("vol_spike_ratio")
    @classmethod
    def _ratio(cls, v: float | None) -> float | None:
        if v is not None and not v > 1.0:
            raise ValueError("must be > 1 (a spike is a rise of volatility)")
        return v

    @model_validator(mode="after")
    def _windows(self) -> BreakerConfig:
        if self.vol_window < 2:
            raise _Bad("vol_window", self.vol_window, "must be >= 2")
        if self.vol_baseline_window <= self.vol_window:
            raise _Bad("vol_baseline_window", self.vol_baseline_window,
                       f"must be greater than vol_window {self.vol_window}")
        return self


class RiskConfig(BaseModel):
    """All pre-trade limits and breakers of a risk engine. Frozen; unknown keys are refused."""

    model_config = _FROZEN

    currency: str = "USDT"  #: the account currency of money limits, marks and equity
    defaults: Limits = Field(default_factory=Limits)
    instruments: dict[str, Limits] = Field(default_factory=dict)
    accounts: dict[str, AccountLimits] = Field(default_factory=dict)
    breakers: BreakerConfig = Field(default_factory=BreakerConfig)
    resize: frozenset[str] = frozenset()  #: checks allowed to shrink an order (RESIZABLE_CHECKS)
    var_confidence: float = 0.99  #: confidence of the pre-trade VaR check
    var_horizon: int = 1  #: periods (of the covariance model's returns) of the VaR check
    var_include_mean: bool = False  #: use the drift in the pre-trade VaR (off: conservative)
    #: bars of returns behind a session's covariance model (lyra.session.var_model)
    var_lookback: int = Field(default=250, ge=2, le=100_000)
    halted_allows_kill_flatten: bool = True  #: when halted, let the kill switch's flattening through
    state_poll_ms: int = 250  #: re-read the shared trading state at most this often (wall clock)

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if not v.strip() or not v.isalnum():
            raise ValueError("must be a currency code like USDT")
        return v

    @field_validator("resize")
    @classmethod
    def _resize(cls, v: frozenset[str]) -> frozenset[str]:
        unknown = sorted(v - RESIZABLE_CHECKS)
        if unknown:
            raise ValueError(f"{unknown} cannot resize; only {sorted(RESIZABLE_CHECKS)}")
        return v

    @field_validator("var_confidence")
    @classmethod
    def _conf(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            raise ValueError("must be between 0 and 1, e.g. 0.99")
        return v

    @field_validator("var_horizon", "state_poll_ms")
    @classmethod
    def _pos(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be a positive whole number")
        return v

    @model_validator(mode="after")
    def _layers(self) -> RiskConfig:
        for iid, lim in self.instruments.items():
            _check_instrument_layer(f"instruments.{iid}", iid, lim)
        for acc, alim in self.accounts.items():
            if not acc.strip():
                raise _Bad("accounts", acc, "an account id must not be empty")
            for iid, lim in alim.instruments.items():
                _check_instrument_layer(f"accounts.{acc}.instruments.{iid}", iid, lim)
        # min/max across layers: what an order of one instrument in one account really gets.
        accounts: list[str] = ["", *self.accounts]
        for acc in accounts:
            extra = self.accounts[acc].instruments if acc else {}
            for iid in ["", *self.instruments, *extra]:  # "": an instrument without overrides
                r = self.resolve(acc, iid)
                lo, hi = r.get("min_order_notional"), r.get("max_order_notional")
                if lo is not None and hi is not None and lo > hi:
                    parts = (["accounts", acc] if acc else []) + (["instruments", iid] if iid else [])
                    where = ".".join(parts) or "defaults"
                    raise _Bad(f"{where}.min_order_notional", lo,
                               f"greater than the max_order_notional {hi} it gets with the other layers")
        return self

    # ----------------------------------------------------------------------------- loading
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskConfig:
        """Validate a plain dict; raise ConfigError naming the field and the value."""
        try:
            return cls.model_validate(dict(data))
        except PydanticValidationError as exc:
            raise _config_error(exc, "risk") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> RiskConfig:
        """Read a TOML file (see the module docstring for its shape)."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("risk_config", str(p), "file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("risk_config", str(p), f"not valid TOML: {exc}") from None
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            raise _config_error(exc, str(p)) from None

    # --------------------------------------------------------------------------- resolving
    def resolve(self, account_id: str, instrument_id: str) -> dict[str, Any]:
        """The effective limits for one account and instrument: ``{field: value}``, set ones only."""
        acc = self.accounts.get(account_id)
        out: dict[str, Any] = {}
        layers: list[Limits] = [self.defaults]
        if acc is not None:
            layers.append(acc)
        if instrument_id in self.instruments:
            layers.append(self.instruments[instrument_id])
        if acc is not None and instrument_id in acc.instruments:
            layers.append(acc.instruments[instrument_id])
        for layer in layers:  # least to most specific: later layers overwrite
            for k, v in layer:
                if v is not None and k != "instruments":
                    out[k] = v
        return out

    def check_instruments(self, known: Iterable[str]) -> None:
        """Refuse limits for instruments that do not exist (a typo would silently not apply)."""
        ids = set(known)
        places: list[tuple[str, Iterable[str]]] = [("instruments", self.instruments)]
        places.append(("defaults.allowed_instruments", self.defaults.allowed_instruments or ()))
        for acc, alim in self.accounts.items():
            places.append((f"accounts.{acc}.instruments", alim.instruments))
            places.append((f"accounts.{acc}.allowed_instruments", alim.allowed_instruments or ()))
        for where, iids in places:
            for iid in iids:
                if iid not in ids:
                    raise ConfigError(
                        where, iid, "unknown instrument", f"known: {', '.join(sorted(ids)[:8])}..."
                    )


class _Bad(ValueError):
    """A config error that knows its field and value (pydantic keeps it in the error's ctx)."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.field, self.value, self.problem = field, value, problem
        super().__init__(problem)


def _check_instrument_layer(where: str, iid: str, lim: Limits) -> None:
    if not _instrument_id_ok(iid):
        raise _Bad(where, iid, "not an instrument id like 'binance:BTC/USDT'")
    bad = sorted(PORTFOLIO_FIELDS & lim.set_fields().keys())
    if bad:
        raise _Bad(f"{where}.{bad[0]}", lim.set_fields()[bad[0]],
                   "a portfolio limit; set it on defaults or an account")


def _decimal_in(
    v: Any,
    *,
    low: Decimal | None = None,
    low_open: bool = False,
    high: Decimal | None = None,
    high_open: bool = False,
) -> Decimal | None:
    """Parse a number into ``Decimal`` (floats by their repr) and check its range."""
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError("a boolean is not a number")
    try:
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v).strip())
    except ArithmeticError:
        raise ValueError("not a number") from None
    if not d.is_finite():
        raise ValueError("not a finite number")
    if low is not None and (d < low or (low_open and d == low)):
        raise ValueError(f"must be {'>' if low_open else '>='} {low}")
    if high is not None and (d > high or (high_open and d == high)):
        raise ValueError(f"must be {'<' if high_open else '<='} {high}")
    return d


def _config_error(exc: PydanticValidationError, source: str) -> ConfigError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    original = (err.get("ctx") or {}).get("error")
    if isinstance(original, _Bad):  # raised by our own validators: it knows field and value
        field = f"{loc}.{original.field}" if loc else original.field
        return ConfigError(field, original.value, original.problem)
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return ConfigError(loc or source, err.get("input"), msg)
