"""The HFT page on a multi-asset session: each fill's slippage is measured against the arrival
price of its own instrument (not the session's first one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lyra.bootstrap import initialise, open_engine
from lyra.demo import LIVE_DEMO_SESSION
from lyra.feeds import MarketStore, import_file
from lyra.readside import ReadModel
from lyra.session.config import load_session_config
from lyra.session.factory import open_session
from lyra.settings import load_settings
from lyra.testing.serving import KEY

REPO = Path(__file__).resolve().parents[3]
FILES = {s: REPO / "data" / "ohlcv" / f"bitstamp_{s.replace('/', '-')}_1d.csv.gz" for s in ("BTC/USD", "ETH/USD", "LTC/USD")}
pytestmark = [pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")]


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = load_settings(env={}, home=str(tmp_path_factory.mktemp("multi") / "home"), jwt_secret=KEY)
    initialise(load_samples=False, settings=settings)
    for f in FILES.values():
        import_file(f, store=MarketStore(settings.market_dir))
    cfg = {k: v for k, v in LIVE_DEMO_SESSION.items() if k != "speed"} | {"session_id": "multi", "end": "2018-12-31T00:00:00Z"}
    _s, engine = open_engine(settings)
    open_session(load_session_config(cfg), engine=engine, market_dir=settings.market_dir).run()
    yield ReadModel(engine, settings.market_dir)
    engine.dispose()


def test_each_fill_is_measured_against_its_own_instrument(multi: ReadModel) -> None:
    from lyra.dashboards import hft

    view = hft.HftView(multi, "multi", live=False)
    q = view.quality
    fills = multi.fills("multi")
    assert set(fills["symbol"]) >= {"BTC/USD", "ETH/USD"}  # the strategy traded more than one
    assert len(q) == len(fills)
    # Independent reference: the shipped files, read with pandas. The arrival price is the close
    # of the daily bar that ended when the order was created.
    orders = multi.orders(["multi"]).set_index("client_order_id")
    day = 86_400_000
    closes = {s: pd.read_csv(f).set_index("timestamp_ms")["close"] for s, f in FILES.items()}
    by_cid = fills.set_index("client_order_id")
    for row in q.itertuples():
        symbol = by_cid.loc[row.client_order_id, "symbol"]
        created = int(orders.loc[row.client_order_id, "created_ts"])
        assert row.arrival == pytest.approx(closes[symbol][created - day]), (symbol, row.client_order_id)
    # ...so slippage is a few bps (5 bps configured, plus the move to the next open), not the
    # gap between two instruments' prices.
    assert q["slippage_bps"].abs().median() < 500
    assert view.message == ""


def test_latency_without_a_latency_model_is_explained(multi: ReadModel) -> None:
    from lyra.dashboards import hft

    view = hft.HftView(multi, "multi", live=False)
    # No latency modelled (the demo config): a market order fills at the bar it was sent on,
    # stamped when sent (0 ms) -- and the page says why rather than showing a bare bar at 0.
    assert view.figures["median_latency_ms"] == 0
    assert ">0 ms<" in view._cards["Median latency"].object
    assert "latency_ms = 0" in view._lat_note.object
    assert [hft.fmt_duration_ms(v) for v in (float("nan"), 35, 2_500, 5_400_000)] == ["–", "35 ms", "2.5 s", "1.5 h"]
