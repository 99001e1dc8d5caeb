"""The risk page's VaR and the fees page's rates, checked against independent references.

Risk: the 1-day VaR/ES of the *current positions* equals a hand-made historical simulation
(daily closes resampled by pandas from the stored hourly bars, ``np.quantile`` with the
inverted-CDF rule, the tail integral for ES); the limit usage equals the figure the session's
own VaR check computes (``lyra.session.factory.session_covariance`` + the ``lyra_risk_var``
metric's function) and a hand normal VaR (z · |V| · σ of the last 250 hourly returns); a flat
book says "no open positions: VaR 0".

Fees: the taker rate shown as charged is the session config's ``taker_fee``, and the effective
rate equals fees / notional summed from the fills table's exact Decimals; the venue's volume
tiers are labelled as what its schedule *would* give, not what the session paid.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from scipy.special import ndtri

from lyra.bootstrap import initialise, open_engine
from lyra.feeds import MarketStore, import_file
from lyra.readside import ReadModel, SessionInfo
from lyra.session.factory import open_session
from lyra.settings import load_settings
from lyra.store.tables import fills
from lyra.testing.serving import KEY, append_fill
from lyra.testing.sessions import demo_config

# Bokeh's ColumnDataSource.from_df calls reset_index(inplace=True), deprecated in pandas 3.1.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")

REPO = Path(__file__).resolve().parents[3]
OHLCV = REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz"
HOUR_MS = 3_600_000
MAX_VAR = "5000"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(settings, ReadModel) with a finished paper session ``book`` (SMA 10/30 on Coinbase
    BTC/USD hourly, July to November 2017, a ``max_var`` limit of 5000 USD); it ends flat."""
    settings = load_settings(env={}, home=str(tmp_path_factory.mktemp("riskfees") / "home"), jwt_secret=KEY)
    initialise(load_samples=False, settings=settings)
    import_file(OHLCV, store=MarketStore(settings.market_dir))
    _s, engine = open_engine(settings)
    cfg = demo_config(session_id="book", end="2017-12-01", risk={"defaults": {"max_var": MAX_VAR}})
    open_session(cfg, engine=engine, market_dir=settings.market_dir,
                 jsonl_path=settings.audit_dir / "events.jsonl").run()
    yield settings, ReadModel(engine, settings.market_dir), cfg
    engine.dispose()


def _as_of(rm: ReadModel, sid: str) -> int:
    return int(rm.events(kinds=["session.equity"], session_id=sid, limit=1)["ts"].iloc[0])


def _hand_daily_returns(rm: ReadModel, as_of: int, days: int = 250) -> np.ndarray:
    """Daily simple returns by pandas resampling: the last close of each UTC day whose hourly
    bars had all ended by ``as_of``."""
    bars = rm.bars("coinbase", "BTC/USD", "1h")
    end = bars["ts"] + HOUR_MS
    b = bars[end <= as_of]
    closes = pd.Series(b["close"].to_numpy(), index=pd.to_datetime(end[end <= as_of] - 1, unit="ms"))
    daily = closes.resample("1D").last().dropna()
    daily = daily[daily.index + pd.Timedelta(days=1) <= pd.to_datetime(as_of, unit="ms")]
    return (daily / daily.shift(1) - 1).dropna().to_numpy()[-days:]


def _hand_var_es(losses: np.ndarray, alpha: float) -> tuple[float, float]:
    """VaR = np.quantile (inverted CDF); ES = the empirical tail integral beyond it."""
    n = len(losses)
    var = float(np.quantile(losses, alpha, method="inverted_cdf"))
    srt = np.sort(losses)
    k = math.ceil(n * alpha)
    es = (srt[k:].sum() + (k - n * alpha) * srt[k - 1]) / (n * (1 - alpha))
    return var, float(es)


def test_position_var_equals_a_hand_historical_simulation_and_the_check_equals_the_session(home):
    from lyra.dashboards import risk
    from lyra.metrics.execution import _portfolio_var
    from lyra.risk.config import RiskConfig
    from lyra.session.factory import session_covariance

    settings, rm, cfg = home
    as_of = _as_of(rm, "book")
    # The session ended flat: a VaR of 0 in words, not a stale number.
    flat = risk.RiskView(rm, "book", live=False)
    assert (rm.positions("book")["quantity"] == 0).all()
    assert flat.figures["var"] == 0 and flat.figures["es"] == 0
    assert "VaR 99% · 1 day · no open positions" in flat._cards["VaR"].object
    assert ">0 USD<" in flat._cards["VaR"].object and ">0 USD<" in flat._cards["ES"].object
    assert "no open positions at 2017-12-01 00:00 UTC: VaR 0 and ES 0 (1 day)" in flat._method.object
    # Then a position opens (a fill at the last mark, at the data time) and the page follows it.
    mark = float(rm.positions("book")["mark"].iloc[0])
    append_fill(rm.engine, settings.audit_dir / "events.jsonl", "book", price=repr(mark), quantity="0.3",
                ts=as_of)
    v = risk.RiskView(rm, "book", live=False)
    value = 0.3 * mark
    assert v.pvar is not None and v.pvar.values == pytest.approx((value,))
    r = _hand_daily_returns(rm, as_of)
    assert len(r) == v.pvar.days >= 100  # July..November 2017: enough days at 99%
    var, es = _hand_var_es(-r * value, 0.99)
    assert v.figures["var"] == pytest.approx(var, rel=1e-12) and v.figures["es"] == pytest.approx(es, rel=1e-12)
    assert 0 < var <= es
    assert f"over {len(r)} days of the instruments' daily returns, 99%" in v._method.object

    # The limit usage: what the session's VaR check computes, by the session's own code path.
    rcfg = RiskConfig.from_dict({"currency": "USD", **cfg.risk})
    model = session_covariance(cfg, SimpleNamespace(config=rcfg), settings.market_dir)
    session = SimpleNamespace(var_model=model, clock=SimpleNamespace(now_ms=lambda: as_of),
                              holdings={"coinbase:BTC/USD": Decimal("0.3")},
                              marks={"coinbase:BTC/USD": mark})
    module_var = _portfolio_var(session, rcfg)
    assert module_var is not None and v.figures["check_var"] == pytest.approx(module_var, rel=1e-12)
    # ...and by hand: normal VaR without drift, sigma of the last 250 hourly returns that
    # ended by the start of the data time's UTC day
    bars = rm.bars("coinbase", "BTC/USD", "1h")
    day = as_of - as_of % 86_400_000
    rets = bars["close"].to_numpy()[1:] / bars["close"].to_numpy()[:-1] - 1
    ends = bars["ts"].to_numpy()[1:] + HOUR_MS
    window = rets[ends <= day][-250:]
    hand = float(ndtri(0.99)) * value * np.std(window, ddof=1)
    assert v.figures["check_var"] == pytest.approx(hand, rel=1e-9)
    assert v.figures["usage"] == pytest.approx(hand / float(MAX_VAR), rel=1e-9)
    assert f"{v.figures['usage'] * 100:.1f} % of 5,000 USD" in v._cards["VaR limit usage"].object
    assert "pre-trade check: normal VaR 99% over 1 × 1h bar(s), covariance of 250 bars" in v._method.object

    # Another confidence: the same simulation at 95%; at 99.9% there are too few days: said so.
    v.confidence = 0.95
    assert v.figures["var"] == pytest.approx(_hand_var_es(-r * value, 0.95)[0], rel=1e-12)
    assert "VaR 95% · 1 day" in v._cards["VaR"].object
    v.confidence = 0.999
    assert math.isnan(v.figures["var"]) and "needs 1000" in v._method.object
    assert v.message == ""  # the rest of the page still shows


def test_no_limit_configured_says_so(home):
    from lyra.dashboards import risk

    _settings, rm, _cfg = home
    info = rm.session("book")
    assert info is not None
    bare = SessionInfo(**{**info.__dict__, "config": {**info.config, "risk": {}}})
    v = risk.RiskView(rm, "book", live=False)
    lu = v.limit_usage(bare, {"coinbase:BTC/USD": 1000.0}, _as_of(rm, "book"))
    assert lu.limit is None and math.isnan(lu.usage)


def test_fees_page_shows_the_rate_the_session_was_charged(home):
    from lyra.dashboards import fees

    _settings, rm, cfg = home
    v = fees.FeesView(rm, "book", live=False)
    with rm.engine.connect() as conn:
        rows = conn.execute(
            sa.select(fills.c.fee, fills.c.quantity, fills.c.price, fills.c.liquidity).where(
                fills.c.session_id == "book"
            )
        ).all()
    taker = [r for r in rows if r.liquidity == "taker"]
    assert len(taker) > 50
    effective = sum(Decimal(str(r.fee)) for r in taker) / sum(
        Decimal(str(r.quantity)) * Decimal(str(r.price)) for r in taker
    )
    config_taker = cfg.instruments["BTC/USD"].taker_fee
    assert effective == pytest.approx(Decimal(config_taker), rel=Decimal("1e-9"))  # charged as configured
    assert v.figures["taker_effective"] == pytest.approx(float(effective), rel=1e-12)
    assert v.figures["taker_charged"] == float(config_taker)
    assert "0.60 %" in v._cards["Taker rate charged"].object
    assert "0.600 %" in v._cards["Effective taker rate"].object
    assert "maker 0.40 %, taker 0.60 %" in v._rates.object and "session config" in v._rates.object
    # The venue's tiers are only a reference, labelled as such (the issue: "tier 2 (0.4% taker)"
    # shown while every fill was charged 0.6%).
    assert "recorded schedule would give at this volume" in v._tier.object
    assert "not what this paper session is charged" in v._tier.object


def test_charged_rates_of_recorded_markets_and_live_sessions(home):
    from lyra.dashboards.fees import charged_rates, effective_rates
    from lyra.execution.markets import load_instrument

    _settings, rm, _cfg = home
    info = rm.session("book")
    assert info is not None
    recorded = SessionInfo(**{**info.__dict__, "venue": "binance", "symbols": ("BTC/USDT",), "quote": "USDT",
                              "config": {**info.config, "instruments": {}}})
    got = charged_rates(recorded)
    inst = load_instrument("binance:BTC/USDT")
    assert got.rates == {"binance:BTC/USDT": (float(inst.maker_fee), float(inst.taker_fee))}
    assert "recorded markets" in got.source
    live = SessionInfo(**{**info.__dict__, "mode": "live"})
    assert charged_rates(live).rates == {} and "venue" in charged_rates(live).source
    unknown = SessionInfo(**{**info.__dict__, "symbols": ("NOPE/USD",), "config": {**info.config, "instruments": {}}})
    assert charged_rates(unknown).problem  # a clear problem, not an exception
    none = effective_rates(rm.fees("book").iloc[0:0], "USD")
    assert math.isnan(none["taker"]) and math.isnan(none["maker"])
