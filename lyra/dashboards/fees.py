"""Fees: paid by venue, instrument and strategy over time, the maker/taker split, the rates
the session's fee model charges next to the effective rates of its fills, and fees as a share
of gross PnL.

The rate shown as charged is the one the session's broker applies (:func:`charged_rates`: a
paper session's flat maker/taker rates from its config), and the effective rate is fees over
notional of the session's fills, so the two agree unless something charged differently. The
venue's recorded volume tiers are shown apart, labelled as what the venue's schedule *would*
give at the session's trailing 30-day volume: a paper session is not charged by them.

Query parameter: ``?session=<id>`` (rates, tier and share of PnL are the session's; the
breakdowns cover every session).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models.widgets import NumberFormatter

from lyra.core.errors import LyraError, ValidationError
from lyra.dashboards.base import (
    NUMBER,
    SESSION_PARAM,
    TABLE_OPTS,
    LiveView,
    chart,
    empty_source,
    kpi_card,
    kpi_html,
    md_literal,
    page,
    read_model,
    read_query,
)
from lyra.execution.fees import FeeSchedule
from lyra.readside import SessionInfo, fee_tier_progress, fmt_money, fmt_pct

ROUTE = "fees"
TITLE = "Fees"
REQUIRES = "view_fees"

THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000
_FMT = {c: NumberFormatter(format=NUMBER) for c in ("fee", "notional")}
_FMT["share"] = NumberFormatter(format="0.00%")
_COLORS = ("#4f8cc9", "#26a69a", "#ffb74d", "#ba68c8", "#ef5350", "#90a4ae")


def breakdown(fees: pd.DataFrame, by: str) -> pd.DataFrame:
    """Fees and traded notional grouped by ``by`` with each group's share of all fees."""
    g = fees.groupby(by, as_index=False)[["fee", "notional"]].sum()
    total = g["fee"].sum()
    g["share"] = g["fee"] / total if total else 0.0
    return g.sort_values("fee", ascending=False).reset_index(drop=True)


@dataclass(frozen=True)
class ChargedRates:
    """The maker/taker rates the session's fee model charges, per instrument, and where they
    come from. Paper and backtest sessions: the paper broker's flat rates of each instrument
    (the config's ``instruments`` table, else the venue's recorded market), exactly as
    :func:`lyra.session.factory.open_session` builds them. Live sessions: the venue charges."""

    rates: dict[str, tuple[float, float]]  #: instrument -> (maker, taker)
    source: str
    problem: str = ""

    def taker_text(self) -> str:
        takers = sorted({t for _m, t in self.rates.values()})
        if not takers:
            return "–"
        return fmt_pct(takers[0]) if len(takers) == 1 else f"{fmt_pct(takers[0])}–{fmt_pct(takers[-1])}"

    def maker_text(self) -> str:
        makers = sorted({m for m, _t in self.rates.values()})
        if not makers:
            return "–"
        return fmt_pct(makers[0]) if len(makers) == 1 else f"{fmt_pct(makers[0])}–{fmt_pct(makers[-1])}"


def charged_rates(info: SessionInfo) -> ChargedRates:
    """What the session's broker charges (see :class:`ChargedRates`)."""
    from lyra.session.config import SessionConfig
    from lyra.session.runtime import session_instruments

    if info.mode == "live":
        return ChargedRates({}, f"the venue ({info.venue}) charges by its own schedule")
    cfg = info.config
    try:
        # Only the fields that decide the instruments: the rest of a stored config may come from
        # another Lyra version, and the fee model does not depend on it.
        minimal = SessionConfig(session_id=info.session_id, venue=info.venue, symbols=info.symbols,
                                instruments=cfg.get("instruments") or {})
        inst = session_instruments(minimal)
    except (LyraError, ValueError) as exc:
        return ChargedRates({}, "", f"the session's instruments: {exc}")
    own = set(cfg.get("instruments") or {})
    where = ("the session config's flat rates" if own >= set(info.symbols)
             else "flat rates from the config and the venue's recorded markets")
    return ChargedRates({iid: (float(i.maker_fee), float(i.taker_fee)) for iid, i in inst.items()},
                        f"paper broker: {where}")


def effective_rates(fills: pd.DataFrame, quote: str) -> dict[str, float]:
    """Fees paid per unit of traded notional, by liquidity (``maker``/``taker``): fees in the
    quote currency over the notional of the same fills; NaN where there are none."""
    out = {}
    same = fills[fills["fee_currency"] == quote] if quote else fills
    for liq in ("maker", "taker"):
        part = same[same["liquidity"] == liq]
        notional = float(part["notional"].sum())
        out[liq] = float(part["fee"].sum()) / notional if notional > 0 else float("nan")
    return out


def venue_schedule(venue: str, instrument_id: str) -> FeeSchedule | None:
    """The venue's recorded fee schedule (30-day volume tiers). Venues tier by account volume,
    not by market, so a symbol missing from the recorded markets uses another recorded market
    of the same venue; None when the venue has no recorded markets."""
    from lyra.execution.markets import load_fee_schedule, load_markets

    try:
        return load_fee_schedule(instrument_id)
    except (ValidationError, KeyError, FileNotFoundError):
        pass
    try:
        markets = load_markets(venue)
    except (ValidationError, KeyError, FileNotFoundError):
        return None
    for sym in sorted(markets):
        try:
            return load_fee_schedule(f"{venue}:{sym}")
        except (ValidationError, KeyError):
            continue
    return None


def venue_tiers(venue: str, instrument_id: str) -> list[Any]:
    """30-day volume thresholds of the venue's recorded fee tiers (none recorded: empty)."""
    sched = venue_schedule(venue, instrument_id)
    return [] if sched is None else [t.min_volume for t in sched.tiers]


class FeesView(LiveView):
    """Fee breakdowns, cumulative fees by strategy, maker/taker split, charged and effective
    rates, and the venue's volume tiers (for reference)."""

    LISTEN = ("order.fill", "session.")

    def __init__(self, rm: Any = None, session_id: str | None = None, **params: Any) -> None:
        self.fees = pd.DataFrame()
        self.figures: dict[str, float] = {}
        self.charged: ChargedRates | None = None
        super().__init__(rm, session_id, **params)

    def _build(self) -> pn.viewable.Viewable:
        self._cards = {
            k: kpi_card(k, "–", name=f"kpi-{k}")
            for k in ("Fees (all)", "Fees (session)", "Taker rate charged", "Effective taker rate",
                      "Maker share", "Fees / gross PnL")
        }
        self._cards["Taker rate charged"].css_classes = ["lyra-kpi", "lyra-fee-rate"]
        self._cards["Effective taker rate"].css_classes = ["lyra-kpi", "lyra-fee-effective"]
        self._rates = pn.pane.Markdown("", name="fee-model", css_classes=["lyra-fee-model"],
                                       sizing_mode="stretch_width")
        self._fig = chart("Cumulative fees by strategy", height=280)
        self._lines: dict[str, Any] = {}
        self._split = empty_source("liquidity", "fee")
        self._fs = chart("Maker / taker split", datetime=False, x_range=["maker", "taker"], height=280)
        self._fs.vbar("liquidity", top="fee", width=0.6, source=self._split, color="#4f8cc9")
        self._tier = pn.pane.Markdown("", name="tier-progress", css_classes=["lyra-fee-tier"])
        self._bar = pn.indicators.Progress(value=0, max=100, width=300, bar_color="info")
        tables = {
            k: pn.widgets.Tabulator(
                pd.DataFrame(), formatters=_FMT, css_classes=["lyra-table", f"by-{k}"], **TABLE_OPTS
            )
            for k in ("venue", "symbol", "strategy")
        }
        self._tables = tables
        return pn.Column(
            pn.Row(*self._cards.values()),
            self._rates,
            pn.Row(pn.pane.Bokeh(self._fig, sizing_mode="stretch_width"), pn.pane.Bokeh(self._fs, width=360)),
            pn.Row(self._bar, self._tier),
            pn.Tabs(
                ("By venue", tables["venue"]),
                ("By instrument", tables["symbol"]),
                ("By strategy", tables["strategy"]),
                dynamic=True,
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )

    def clear(self) -> None:
        for t in self._tables.values():
            t.value = pd.DataFrame()
        self._rates.object = ""

    def update(self, full: bool = True) -> None:
        info = self.info
        assert info is not None
        self.fees = f = self.rm.fees()
        for k, t in self._tables.items():
            t.value = breakdown(f, k) if len(f) else pd.DataFrame()
        for i, (strategy, grp) in enumerate(f.groupby("strategy")):
            data = {"time": grp["time"], "fee": grp["fee"].cumsum()}
            if strategy in self._lines:
                self._lines[strategy].data_source.data = data
            else:
                self._lines[strategy] = self._fig.line(
                    "time",
                    "fee",
                    source=empty_source("time", "fee"),
                    color=_COLORS[i % len(_COLORS)],
                    line_width=2,
                    legend_label=str(strategy),
                )
                self._lines[strategy].data_source.data = data
        split = f.groupby("liquidity")["fee"].sum() if len(f) else pd.Series(dtype="float64")
        self._split.data = {
            "liquidity": ["maker", "taker"],
            "fee": [float(split.get("maker", 0.0)), float(split.get("taker", 0.0))],
        }
        mine = f[f["session_id"] == self.session_id]
        pos = self.rm.positions(self.session_id)
        gross = (
            float(pos["realized_pnl"].sum() + pos["unrealized_pnl"].fillna(0.0).sum()) if len(pos) else 0.0
        )
        paid = float(mine["fee"].sum())
        total = float(f["fee"].sum())
        now = int(mine["ts"].max()) if len(mine) else 0
        vol30 = float(mine.loc[mine["ts"] > now - THIRTY_DAYS_MS, "notional"].sum()) if len(mine) else 0.0
        self.charged = charged = charged_rates(info)
        eff = effective_rates(mine, info.quote)
        takers = {t for _m, t in charged.rates.values()}
        sched = venue_schedule(info.venue, info.instrument_ids[0]) if info.symbols else None
        tiers = [t.min_volume for t in sched.tiers] if sched is not None else []
        idx, progress, needed = fee_tier_progress(vol30, tiers) if tiers else (0, 1.0, None)
        self.figures = {
            "total": total,
            "session": paid,
            "gross_pnl": gross,
            "share_of_pnl": paid / gross if gross > 0 else float("nan"),
            "maker_share": float(split.get("maker", 0.0)) / total if total else float("nan"),
            "volume_30d": vol30,
            "tier": idx,
            "progress": progress,
            "taker_charged": takers.pop() if len(takers) == 1 else float("nan"),
            "taker_effective": eff["taker"],
            "maker_effective": eff["maker"],
        }
        q = info.quote
        c = self._cards
        c["Fees (all)"].object = kpi_html("Fees (all sessions)", fmt_money(total, q))
        c["Fees (session)"].object = kpi_html("Fees (this session)", fmt_money(paid, q))
        c["Taker rate charged"].object = kpi_html("Taker rate charged", charged.taker_text())
        eff_text = fmt_pct(eff["taker"], 3) if np.isfinite(eff["taker"]) else "no taker fills"
        c["Effective taker rate"].object = kpi_html("Effective taker rate", eff_text)
        c["Maker share"].object = kpi_html("Maker share", fmt_pct(self.figures["maker_share"]))
        c["Fees / gross PnL"].object = kpi_html(
            "Fees / gross PnL", fmt_pct(self.figures["share_of_pnl"]) if gross > 0 else "no gross profit"
        )
        self._rates.object = self._model_text(charged, eff)
        self._bar.value = int(np.clip(progress, 0, 1) * 100)
        self._bar.visible = sched is not None  # no recorded tiers: nothing to progress toward
        self._tier.object = self._tier_text(info, sched, vol30, idx, needed)

    @staticmethod
    def _model_text(charged: ChargedRates, eff: dict[str, float]) -> str:
        if charged.problem:
            return f"**Fee model:** not known: {md_literal(charged.problem)}."
        rates = (f"maker {charged.maker_text()}, taker {charged.taker_text()}" if charged.rates
                 else "the venue's own rates")
        got = ", ".join(f"{k} {fmt_pct(v, 3)}" for k, v in eff.items() if np.isfinite(v)) or "no fills yet"
        return (f"**Fee model:** {rates} ({md_literal(charged.source)}). "
                f"**Effective** (fees / notional of this session's fills): {got}.")

    @staticmethod
    def _tier_text(info: SessionInfo, sched: FeeSchedule | None, vol30: float, idx: int,
                   needed: float | None) -> str:
        q = info.quote
        head = f"30-day volume {fmt_money(vol30, q)}"
        if sched is None:
            return f"{head} · {md_literal(info.venue)} has no recorded fee schedule"
        tier = sched.tiers[idx]
        nxt = f"; {fmt_money(needed, q)} more to the next" if needed is not None else ""
        applied = ("the venue charges by it" if info.mode == "live"
                   else "not what this paper session is charged")
        return (f"{head} · what {md_literal(info.venue)}'s recorded schedule would give at this volume: "
                f"tier {idx + 1} of {len(sched.tiers)} (maker {fmt_pct(float(tier.maker))}, taker "
                f"{fmt_pct(float(tier.taker))}){nxt} · {applied}")


def create_app() -> pn.template.BootstrapTemplate:
    """A fresh fees page for one browser session."""
    rm, _jsonl = read_model()
    query = read_query(SESSION_PARAM)
    view = FeesView(rm, query.get("session"))
    view.show_problems(query)
    return page(TITLE, view, route=ROUTE)
