"""A session config may name its strategy by import path (``"package.module:Class"``): a
user's own strategy runs a session; a path that is not importable, an attribute that does
not exist and an object that is not a strategy are refused at config validation, naming the
field and the value, before anything is written (``lyra session start`` exits 2)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from lyra.core import ConfigError
from lyra.session.config import load_session_config
from lyra.session.factory import open_session
from lyra.session.strategies import build_strategy
from lyra.strategy import SmaCross
from lyra.testing.sessions import demo_config

#: A user's package: a strategy (buy every ``every`` bars, sell ``hold`` bars later) and
#: things that are not strategies.
SOURCE = '''
from decimal import Decimal

import numpy as np

from lyra.strategy import ENTRY, EXIT, NO_SIGNAL, IncrementalSignalStrategy, Signals, Strategy, StrategyParams


class EveryNParams(StrategyParams):
    every: int = 24
    hold: int = 6


class EveryN(Strategy[EveryNParams]):
    params_model = EveryNParams

    def signals(self, data, cache=None):
        n = np.arange(len(data))
        p = self.params
        return Signals(n % p.every == 0, n % p.every == p.hold)

    def incremental(self, instrument_id, quantity=1):
        return EveryNIncremental(instrument_id, self.params.every, self.params.hold, quantity)


class EveryNIncremental(IncrementalSignalStrategy):
    def __init__(self, instrument_id, every, hold, quantity=Decimal(1)):
        super().__init__(instrument_id, quantity)
        self.every, self.hold, self.i = every, hold, 0

    def update(self, close):
        i, self.i = self.i, self.i + 1
        return ENTRY if i % self.every == 0 else EXIT if i % self.every == self.hold else NO_SIGNAL


class Unfinished(Strategy[EveryNParams]):
    params_model = EveryNParams


class NotAStrategy:
    pass


def a_function():
    return 1
'''


@pytest.fixture
def user_pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package ``<name>.strategies`` on sys.path (a unique name: imports are cached)."""
    name = f"userpkg_{uuid.uuid4().hex[:8]}"
    pkg = tmp_path / "src" / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "strategies.py").write_text(textwrap.dedent(SOURCE))
    (pkg / "broken.py").write_text("raise RuntimeError('this module is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    yield name
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


def test_a_strategy_named_by_import_path_runs_a_session(session_home, user_pkg):
    h = session_home
    cfg = demo_config(session_id="bypath", strategy=f"{user_pkg}.strategies:EveryN",
                      params={"every": 24, "hold": 6}, end="2017-08-01")
    s = open_session(cfg, engine=h["engine"], market_dir=h["home"] / "market",
                     jsonl_path=h["home"] / "audit" / "events.jsonl")
    r = s.run()
    # One buy every 24 bars from the first, each sold 6 bars later: the user's rule, traded.
    assert r.orders > 20 and r.fills == r.orders and r.denied == 0
    orders = sorted(s.ledger.state.orders.values(), key=lambda o: o.client_order_id)
    assert [o.intent.side.value for o in orders[:4]] == ["buy", "sell", "buy", "sell"]
    fills = sorted((f for _, f in s.ledger.state.fills), key=lambda f: f.ts)
    gaps = {b.ts - a.ts for a, b in zip(fills[::2], fills[1::2], strict=False)}
    assert gaps == {6 * 3_600_000}
    assert all(o.quantity == Decimal("0.1") for o in orders)


def test_shipped_names_and_their_paths_build_the_same_strategy(user_pkg):
    by_name = build_strategy("sma_cross", {"fast": 5, "slow": 20})
    by_path = build_strategy("lyra.strategy.sma_cross:SmaCross", {"fast": 5, "slow": 20})
    assert by_name == by_path == SmaCross(fast=5, slow=20)
    user = build_strategy(f"{user_pkg}.strategies:EveryN", {"every": 3, "hold": 1})
    sig = user.signals(np.ones(7))
    assert sig.entries.tolist() == [True, False, False, True, False, False, True]
    with pytest.raises(ConfigError) as err:
        build_strategy(f"{user_pkg}.strategies:EveryN", {"every": 3, "nope": 1})
    assert err.value.field == "params.nope"


BAD = [
    ("{pkg}.nosuch:EveryN", "no module named '{pkg}.nosuch' (install the package, or put its folder on "
                            "PYTHONPATH)"),
    ("nosuchpkg_zz.strategies:EveryN", "no module named 'nosuchpkg_zz'"),
    ("{pkg}.broken:EveryN", "importing '{pkg}.broken' failed: RuntimeError: this module is broken"),
    ("{pkg}.strategies:Nope", "module '{pkg}.strategies' has no attribute 'Nope' (check the class name "
                              "after ':')"),
    ("{pkg}.strategies:NotAStrategy", "is the class NotAStrategy, not a strategy (name a concrete subclass "
                                      "of lyra.strategy.Strategy, with params_model, signals() and "
                                      "incremental())"),
    ("{pkg}.strategies:a_function", "is a function, not a strategy"),
    ("{pkg}.strategies:EveryNParams", "is the class EveryNParams, not a strategy"),
    ("{pkg}.strategies:Unfinished", "is an abstract strategy (does not implement incremental, signals)"),
    ("no_colon_here", "unknown strategy (use a shipped strategy (bollinger, rsi_reversion, sma_cross) or "
                      "an import path 'package.module:Class')"),
]


@pytest.mark.parametrize(("spec", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_strategy_paths_are_refused_at_config_validation(user_pkg, spec, message):
    spec = spec.format(pkg=user_pkg)
    with pytest.raises(ConfigError) as err:
        load_session_config({"session_id": "bad", "strategy": spec})
    assert err.value.field == "strategy"
    assert err.value.value == spec
    assert str(err.value).startswith(f"strategy={spec!r}: {message.format(pkg=user_pkg)}")


@pytest.mark.subprocess
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("attr", ["nosuch:EveryN", "strategies:Nope", "strategies:NotAStrategy"])
def test_lyra_session_start_refuses_a_bad_path_and_writes_nothing(session_home, user_pkg, attr, tmp_path):
    h = session_home
    env = {**h["env"], "PYTHONPATH": str(tmp_path / "src")}
    spec = f"{user_pkg}.{attr}"
    r = subprocess.run([sys.executable, "-m", "lyra.cli", "session", "start", "--id", "refused",
                        "--set", f"strategy={spec}", "--quiet"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = " ".join(r.stderr.split())  # rich wraps long lines
    assert f"strategy='{spec}'" in err
    with h["engine"].connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM events")).scalar() == 0
        assert c.execute(sa.text("SELECT count(*) FROM sessions")).scalar() == 0
