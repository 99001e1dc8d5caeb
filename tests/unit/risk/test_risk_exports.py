"""The public surface of lyra.risk is pinned: a rename or removal must be a choice."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lyra.risk

EXPECTED = {
    "AtrStop", "ChristoffersenResult", "CovarianceModel", "ExitReason", "ExitRules",
    "ExitSignal", "FixedStop", "HorizonScaling", "IncrementalVaR", "KupiecResult",
    "PositionSide", "RiskParityResult", "StopTracker", "TakeProfit", "TimeStop", "TrailingStop",
    "VaRDecomposition", "VaRMethod", "VaRResult", "VectorExits", "WilderATR", "apply_exits",
    "christoffersen_test", "component_var", "cornish_fisher_var", "cornish_fisher_z",
    "count_exceptions", "empirical_var_es", "find_exceptions", "fixed_fractional_size",
    "historical_var", "incremental_var", "inverse_volatility_weights", "kelly_fraction",
    "kelly_fraction_from_returns", "kupiec_pof", "kupiec_test", "min_historical_obs",
    "monte_carlo_var", "normal_var", "risk_contributions", "risk_parity_weights", "true_range",
    "value_at_risk", "volatility_target_leverage", "wilder_atr",
    # the trading side: engine, checks config, breakers, shared state, kill switch
    "AccountLimits", "BreakerConfig", "BreakerTrip", "CircuitBreakers", "ExposureBook", "KillRequest", "KillSwitch",
    "Limits", "RiskConfig", "RiskContext", "RiskDecision", "RiskEngine", "ScopeState", "TradingState",
    "TradingStateStore", "flatten_intents",
}  # fmt: skip


def test_exported_names_are_pinned():
    assert set(lyra.risk.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(lyra.risk, name) is not None


@pytest.mark.subprocess
def test_risk_has_no_io_dependencies():
    """Importing lyra.risk pulls in no database, broker or UI code: the database-bound
    TradingStateStore and KillSwitch load on first use."""
    code = (
        "import sys, lyra.risk; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'ccxt', 'panel', 'aiohttp', 'vectorbt') or m.startswith('lyra.store')"
        " or m.startswith('lyra.execution')]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.subprocess
def test_database_bound_names_load_on_first_use():
    code = (
        "import sys, lyra.risk; assert 'sqlalchemy' not in sys.modules; "
        "from lyra.risk import KillSwitch, TradingStateStore; "
        "assert KillSwitch.__module__ == 'lyra.risk.killswitch'; "
        "assert TradingStateStore.__module__ == 'lyra.risk.state'; assert 'sqlalchemy' in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
