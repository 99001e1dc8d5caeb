"""lyra.risk: risk management: the numerical core (pure numpy/scipy) and the pre-trade engine.

* :mod:`lyra.risk.var` — VaR / Expected Shortfall (historical, normal, Cornish-Fisher,
  Monte Carlo), Euler component VaR, incremental VaR for pre-trade checks.
* :mod:`lyra.risk.var_backtest` — exceptions, Kupiec POF and Christoffersen tests.
* :mod:`lyra.risk.sizing` — fixed fractional, Kelly, volatility targeting, inverse vol,
  risk parity.
* :mod:`lyra.risk.stops` — fixed / trailing / ATR / time stops and take-profit, event-driven
  (:class:`StopTracker`) and vectorised (:func:`apply_exits`) with one semantics.

The trading side (no order reaches a broker without it):

* :mod:`lyra.risk.config` — :class:`RiskConfig`: limits per account/instrument, breakers.
* :mod:`lyra.risk.engine` — :class:`RiskEngine`: pre-trade checks → :class:`RiskDecision`,
  trading states (active / reducing / halted), circuit-breaker hooks.
* :mod:`lyra.risk.breakers` — daily loss, drawdown, consecutive losses, volatility, stale data.
* :mod:`lyra.risk.state` — :class:`TradingStateStore`: the state shared through the database.
* :mod:`lyra.risk.killswitch` — :class:`KillSwitch` (``lyra kill``) and re-arming.

``TradingStateStore`` and ``KillSwitch`` need the database; they are imported on first use,
so ``import lyra.risk`` stays free of SQLAlchemy for pure research use.
"""

from typing import TYPE_CHECKING, Any

from lyra.risk._types import BreakerTrip, KillRequest, ScopeState, TradingState
from lyra.risk.breakers import CircuitBreakers
from lyra.risk.config import AccountLimits, BreakerConfig, Limits, RiskConfig
from lyra.risk.engine import ExposureBook, RiskContext, RiskDecision, RiskEngine, flatten_intents
from lyra.risk.sizing import (
    RiskParityResult,
    fixed_fractional_size,
    inverse_volatility_weights,
    kelly_fraction,
    kelly_fraction_from_returns,
    risk_contributions,
    risk_parity_weights,
    volatility_target_leverage,
)
from lyra.risk.stops import (
    AtrStop,
    ExitReason,
    ExitRules,
    ExitSignal,
    FixedStop,
    PositionSide,
    StopTracker,
    TakeProfit,
    TimeStop,
    TrailingStop,
    VectorExits,
    WilderATR,
    apply_exits,
    true_range,
    wilder_atr,
)
from lyra.risk.var import (
    CovarianceModel,
    HorizonScaling,
    IncrementalVaR,
    VaRDecomposition,
    VaRMethod,
    VaRResult,
    component_var,
    cornish_fisher_var,
    cornish_fisher_z,
    empirical_var_es,
    historical_var,
    incremental_var,
    min_historical_obs,
    monte_carlo_var,
    normal_var,
    value_at_risk,
)
from lyra.risk.var_backtest import (
    ChristoffersenResult,
    KupiecResult,
    christoffersen_test,
    count_exceptions,
    find_exceptions,
    kupiec_pof,
    kupiec_test,
)

if TYPE_CHECKING:
    from lyra.risk.killswitch import KillSwitch
    from lyra.risk.state import TradingStateStore

_LAZY = {"KillSwitch": "lyra.risk.killswitch", "TradingStateStore": "lyra.risk.state"}


def __getattr__(name: str) -> Any:
    """Import the database-bound classes on first use (PEP 562)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lyra.risk' has no attribute {name!r}")


__all__ = [
    "AccountLimits",
    "AtrStop",
    "BreakerConfig",
    "BreakerTrip",
    "ChristoffersenResult",
    "CircuitBreakers",
    "CovarianceModel",
    "ExitReason",
    "ExitRules",
    "ExitSignal",
    "ExposureBook",
    "FixedStop",
    "HorizonScaling",
    "IncrementalVaR",
    "KillRequest",
    "KillSwitch",
    "KupiecResult",
    "Limits",
    "PositionSide",
    "RiskConfig",
    "RiskContext",
    "RiskDecision",
    "RiskEngine",
    "RiskParityResult",
    "ScopeState",
    "StopTracker",
    "TakeProfit",
    "TimeStop",
    "TradingState",
    "TradingStateStore",
    "TrailingStop",
    "VaRDecomposition",
    "VaRMethod",
    "VaRResult",
    "VectorExits",
    "WilderATR",
    "apply_exits",
    "christoffersen_test",
    "component_var",
    "cornish_fisher_var",
    "cornish_fisher_z",
    "count_exceptions",
    "empirical_var_es",
    "find_exceptions",
    "fixed_fractional_size",
    "flatten_intents",
    "historical_var",
    "incremental_var",
    "inverse_volatility_weights",
    "kelly_fraction",
    "kelly_fraction_from_returns",
    "kupiec_pof",
    "kupiec_test",
    "min_historical_obs",
    "monte_carlo_var",
    "normal_var",
    "risk_contributions",
    "risk_parity_weights",
    "true_range",
    "value_at_risk",
    "volatility_target_leverage",
    "wilder_atr",
]
