"""The Trading page as a desk uses it, headless, on a finished multi-asset paper session like the
live demo's (Bitstamp BTC, ETH and LTC daily bars, SMA 5/20, 0.001 units per order, unpaced):
the instrument picker moves the chart, fills, KPIs and ticket to the picked instrument (checked
against the shipped CSV files read with pandas, not through the store); the chart spans the
whole session; sizes and prices keep the config's precision; 1d -> 1w candles equal pandas'
own weekly resample; hostile or impossible links get fixed messages; empty states say why;
a running session's chart extends as its data time moves; every table is dark."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import panel as pn
import pytest

from lyra.auth.permissions import Principal, Role
from lyra.bootstrap import initialise, open_engine
from lyra.demo import LIVE_DEMO_SESSION
from lyra.feeds import MarketStore, import_file
from lyra.readside import ManualDesk, ReadModel
from lyra.session.config import load_session_config
from lyra.session.factory import open_session
from lyra.session.registry import SessionRegistry
from lyra.session.runtime import session_instruments
from lyra.settings import load_settings
from lyra.testing.serving import KEY

# Bokeh's ColumnDataSource.from_df calls reset_index(inplace=True), deprecated in pandas 3.1.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")

REPO = Path(__file__).resolve().parents[3]
DAY = 86_400_000
SYMBOLS = ("BTC/USD", "ETH/USD", "LTC/USD")
START = "2017-09-01"
#: The live demo's session, unpaced and short; 0.001 units per order (a min notional of 0.01
#: USD lets them through), ending while ETH is held.
CONFIG: dict[str, Any] = {
    **{k: v for k, v in LIVE_DEMO_SESSION.items() if k != "speed"},
    "session_id": "desk", "start": START, "end": "2018-05-14", "quantity": "0.001",
    "instruments": {s: {**LIVE_DEMO_SESSION["instruments"][s], "min_notional": "0.01"} for s in SYMBOLS},
}
TRADER = Principal("tina", Role.TRADER)


def _csv(symbol: str) -> pd.DataFrame:
    """The shipped file itself, read with pandas: the independent reference."""
    path = REPO / "data" / "ohlcv" / f"bitstamp_{symbol.replace('/', '-')}_1d.csv.gz"
    return pd.read_csv(path).rename(columns={"timestamp_ms": "ts"})


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(settings, ReadModel) over a home with the three Bitstamp files and the finished ``desk``."""
    settings = load_settings(env={}, home=str(tmp_path_factory.mktemp("desk") / "home"), jwt_secret=KEY)
    initialise(load_samples=False, settings=settings)
    store = MarketStore(settings.market_dir)
    for s in SYMBOLS:
        import_file(REPO / "data" / "ohlcv" / f"bitstamp_{s.replace('/', '-')}_1d.csv.gz", store=store)
    _s, engine = open_engine(settings)
    result = open_session(load_session_config(CONFIG), engine=engine, market_dir=settings.market_dir,
                          jsonl_path=settings.audit_dir / "events.jsonl").run()
    assert result.positions["bitstamp:ETH/USD"] == Decimal("0.001")  # the scenario: ETH held at the end
    yield settings, ReadModel(engine, settings.market_dir)
    engine.dispose()


def _view(rm: ReadModel, settings: Any, **params: Any) -> Any:
    from lyra.dashboards import trading

    info = rm.session("desk")
    desk = ManualDesk(rm.engine, session_instruments(load_session_config(info.config)), session_id="desk",
                      jsonl_path=settings.audit_dir / "events.jsonl", equity=Decimal(50_000))
    return trading.TradingView(rm, "desk", principal=TRADER, desk=desk, live=False, **params)


def _seen(frame: pd.DataFrame, data_ts: int) -> pd.DataFrame:
    """Rows of a daily file the session saw: opened at/after its start, closed by data_ts."""
    start = int(pd.Timestamp(START, tz="UTC").timestamp() * 1000)
    return frame[(frame["ts"] >= start) & (frame["ts"] + DAY <= data_ts)].reset_index(drop=True)


def test_picking_eth_moves_chart_fills_kpis_and_ticket_to_eth(desk):
    settings, rm = desk
    v = _view(rm, settings)
    assert v.symbol() == "BTC/USD" and v._inst_pick.options == list(SYMBOLS)  # default: the first
    assert v._t_inst.value == "bitstamp:BTC/USD"
    v._inst_pick.value = "ETH/USD"  # what the person does
    assert v.instrument == "ETH/USD" and v._t_inst.value == "bitstamp:ETH/USD"  # the ticket follows
    info = rm.session("desk")
    ref = _seen(_csv("ETH/USD"), info.data_ts)
    cols = ["ts", "open", "high", "low", "close", "volume"]
    pd.testing.assert_frame_equal(v.candles[cols].reset_index(drop=True), ref[cols], check_dtype=False)
    assert list(v._candles.data["close"]) == ref["close"].tolist()  # what the chart draws
    # Only ETH's fills are marked, at their ledger prices; BTC's and LTC's are not.
    fills = rm.fills("desk")
    eth = fills[fills["instrument_id"] == "bitstamp:ETH/USD"]
    assert 0 < len(eth) < len(fills)
    assert list(v._fill_src.data["price"]) == eth["price"].tolist()
    assert all(label.startswith(("buy 0.001 @ ", "sell 0.001 @ ")) for label in v._fill_src.data["label"])
    # KPIs: ETH's position, its last fill, and the mark = ETH's last close the session saw.
    last_close = ref["close"].iloc[-1]
    assert v.mark == last_close == rm.last_marks("desk")["bitstamp:ETH/USD"]
    assert f">{last_close:,.2f} USD<" in v._kpis["Mark"].object
    assert ">0.001 ETH<" in v._kpis["Position"].object
    assert f">{eth['side'].iloc[-1]} 0.001 @ {eth['price'].iloc[-1]:,.2f}<" in v._kpis["Last fill"].object
    assert f">{len(fills):,}<" in v._kpis["Fills"].object  # the session's count, every instrument
    # The tables keep every instrument (a desk sees its whole book), with an Instrument column.
    assert sorted(set(v._fills.value["Instrument"])) == list(SYMBOLS)
    assert v._positions.value["Instrument"].tolist() == list(SYMBOLS)
    # The book: ETH has none recorded, and nothing else is shown in its place.
    assert "no level-2 data is recorded for **bitstamp:ETH/USD**" in v._book.note and not v._book._ladder.visible


def test_whole_session_on_the_chart_for_every_instrument(desk):
    settings, rm = desk
    info = rm.session("desk")
    for sym in SYMBOLS:
        v = _view(rm, settings, instrument=sym)
        ref = _seen(_csv(sym), info.data_ts)
        # From the session's start (or the instrument's first bar, ETH's came later) to its data time.
        assert v.candles["ts"].iloc[0] == ref["ts"].iloc[0] and v.candles["ts"].iloc[-1] == ref["ts"].iloc[-1]
        assert len(v.candles) == len(ref) and len(v.shown_bars) == len(ref)  # < MAX_CANDLES: all drawn
        assert v._x.start < ref["ts"].iloc[0] and v._x.end > ref["ts"].iloc[-1]  # the range shows it all
        first = pd.Timestamp(ref["ts"].iloc[0], unit="ms")
        assert f"{first:%Y-%m-%d} 00:00 →" in v._chart_note.object
    assert pd.Timestamp(_seen(_csv("BTC/USD"), info.data_ts)["ts"].iloc[0], unit="ms") == pd.Timestamp(START)


def test_precision_from_the_config_and_human_tables(desk):
    from lyra.dashboards.theme import Precision, decimals_of, instrument_precision

    settings, rm = desk
    v = _view(rm, settings)
    assert v.precision("bitstamp:ETH/USD") == Precision(price=2, size=8)  # 0.01 tick, 1E-8 lot
    table = v._fills.value
    assert set(table["Quantity"]) == {"0.001"}  # never 0.00
    fills = rm.fills("desk").iloc[::-1].reset_index(drop=True)
    assert table["Price"].tolist() == [f"{p:,.2f}" for p in fills["price"]]
    # fees of a 0.001 LTC order are a fraction of a cent: shown, not rounded away
    assert table["Fee"].tolist() == [f"{f:.8f}".rstrip("0").ljust(len(f"{f:.2f}"), "0") for f in fills["fee"]]
    assert "0.00" not in set(table["Fee"])
    assert table["Time (UTC)"].tolist() == fills["time"].dt.strftime("%Y-%m-%d %H:%M:%S").tolist()
    assert list(v._positions.value.columns)[:5] == ["Venue", "Instrument", "Quantity", "Avg price", "Mark"]
    # Another precision in a config is followed, and nonsense falls back to the defaults.
    cfg = {"instruments": {"XBT/EUR": {"price_increment": "0.5", "size_increment": "0.0001"}}}
    p = instrument_precision(cfg, "XBT/EUR")
    assert p == Precision(1, 4) and p.price_text(30123.5) == "30,123.5" and p.size_text(0.25) == "0.25"
    assert instrument_precision({"instruments": {"X/Y": {"price_increment": "-1"}}}, "X/Y") == Precision(2, 8)
    assert [decimals_of(x, 9) for x in ("1E-8", "0.001", "10", "nan", None, "abc")] == [8, 3, 0, 9, 9, 9]


def test_weekly_candles_equal_pandas_resample_of_the_raw_bars(desk):
    settings, rm = desk
    v = _view(rm, settings, instrument="ETH/USD")
    assert v._tf_pick.options == ["1d", "1w"]
    v._tf_pick.value = "1w"
    assert v.timeframe == "1w"
    raw = _seen(_csv("ETH/USD"), rm.session("desk").data_ts)
    raw.index = pd.to_datetime(raw["ts"], unit="ms")
    # pandas' own calendar: weeks starting Monday 00:00 UTC, labelled by their first day
    ref = raw.resample("W-MON", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna()
    got = v.candles.set_index(pd.to_datetime(v.candles["ts"], unit="ms"))
    pd.testing.assert_frame_equal(got[["open", "high", "low", "close"]], ref[["open", "high", "low", "close"]],
                                  check_names=False, check_freq=False)
    assert got["volume"].to_numpy() == pytest.approx(ref["volume"].to_numpy(), rel=1e-12)
    assert (got.index.day_of_week == 0).all()
    assert "ETH/USD 1w: " in v._chart_note.object and f"{len(ref):,} candles" in v._chart_note.object


def test_hostile_and_impossible_links_get_fixed_messages(desk, monkeypatch):
    from lyra.dashboards import base, trading

    settings, rm = desk
    monkeypatch.setattr(trading, "read_model", lambda: (rm, settings.audit_dir / "events.jsonl"))

    def app(search: str) -> Any:
        monkeypatch.setattr(trading, "read_query", lambda *specs: base.read_query(*specs, search=search))
        tpl = trading.create_app()
        return next(iter(tpl.main[0].select(pn.pane.Alert))), tpl.main[0]  # type: ignore[index]

    hostile = "?instrument=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E&timeframe=1y%3Cb%3E&session=desk"
    note, _ = app(hostile)
    assert note.object == f"{trading.INSTRUMENT_PARAM.message} {trading.TIMEFRAME_PARAM.message}"
    assert "img" not in note.object and "1y" not in note.object
    note, _ = app("?session=desk&instrument=XRP/USD&timeframe=1h")  # well-formed, not this session's
    assert note.object == f"{trading.NOT_TRADED} {trading.TOO_FINE}"
    note, layout = app("?session=desk&instrument=LTC/USD&timeframe=1w")  # fine: no message, LTC weekly
    assert not note.visible
    picks = [w.value for w in layout.select(pn.widgets.Select) if w.label in ("Instrument", "Timeframe")]
    assert picks == ["LTC/USD", "1w"]
    # In a notebook, an instrument the session does not trade says so (the value escaped).
    v = trading.TradingView(rm, "desk", live=False, instrument="X*Y/USD")
    assert v.symbol() == "BTC/USD" and "X\\*Y/USD" in v.message


def test_empty_states_say_why(desk):
    from lyra.dashboards import trading

    _settings, rm = desk
    quiet = dict(CONFIG, session_id="quiet", symbols=["ETH/USD", "XRP/USD"],
                 instruments={"ETH/USD": CONFIG["instruments"]["ETH/USD"]})
    SessionRegistry(rm.engine).upsert("quiet", load_session_config(quiet), status="finished")
    v = trading.TradingView(rm, "quiet", live=False)
    assert v._fills_note.visible and trading.NO_FILLS in v._fills_note.object
    assert "no fills of ETH/USD yet" in v._chart_note.object and ">–<" in v._kpis["Last fill"].object
    v.instrument = "XRP/USD"
    note = v._chart_note.object
    assert note.startswith("**No 1d bars for bitstamp XRP/USD in the market store.**")
    assert "`lyra data import FILE --exchange bitstamp --symbol XRP/USD --timeframe 1d`" in note
    assert v._candles.data["close"] == [] or len(v._candles.data["close"]) == 0
    assert "no level-2 data is recorded for **bitstamp:XRP/USD**" in v._book.note
    assert v.precision("bitstamp:XRP/USD") == trading.Precision()  # not in the config: defaults


def test_a_running_sessions_chart_extends_as_its_data_time_moves(desk):
    settings, rm = desk
    reg = SessionRegistry(rm.engine)
    end = rm.session("desk").data_ts
    try:
        reg.update("desk", data_ts=end - 10 * DAY)
        v = _view(rm, settings, instrument="LTC/USD")
        n, right = len(v._candles.data["close"]), v._x.end
        ref = _seen(_csv("LTC/USD"), end)
        assert n == len(ref) - 10
        reg.update("desk", data_ts=end - 7 * DAY)  # three more days seen by the session
        v._safe_update(False)
        assert len(v._candles.data["close"]) == n + 3  # streamed, not redrawn
        assert list(v._candles.data["close"])[-3:] == ref["close"].iloc[-10:-7].tolist()
        assert v._x.end == right + 3 * DAY  # the view sat on the latest candle: it follows
        v._x.end = right - 50 * DAY  # a person zooms into the past: the range is left alone
        reg.update("desk", data_ts=end)
        v._safe_update(False)
        assert len(v._candles.data["close"]) == len(ref) and v._x.end == right - 50 * DAY
    finally:
        reg.update("desk", data_ts=end)


def test_every_table_is_dark_and_the_theme_ships_with_panel(desk):
    from lyra.dashboards import base, theme

    settings, rm = desk
    tpl = base.page("Trading", _view(rm, settings), route="trading")
    tables = tpl.main[0].select(pn.widgets.Tabulator)  # type: ignore[index]
    assert len(tables) == 3
    plain = pn.widgets.Tabulator(pd.DataFrame({"a": [1]}))
    assert theme.dark_tables(pn.Column(plain)) == 1
    for t in [*tables, plain]:
        assert t.theme == "midnight" and theme.TABLE_CSS in t.stylesheets
    # Offline: the theme's stylesheet is a file of Panel's own bundle, which its server serves.
    url = plain._get_theme("midnight")
    rel = url.split("/dist/", 1)[1]
    assert (Path(pn.__file__).parent / "dist" / rel).is_file() and rel.endswith("tabulator_midnight.min.css")
