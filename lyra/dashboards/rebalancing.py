"""Rebalancing: target vs actual weights, drift, and the market orders that bring the session
back to its targets with a fee and slippage estimate; roles allowed to (``submit_rebalance``)
send them, after a confirmation, through risk to the manual desk (one ``risk.decision`` each).

Targets: ``instrument=weight`` pairs, e.g. ``coinbase:BTC/USD=0.5`` (weights 0..1, sum ≤ 1);
``?targets=`` in the URL sets them. The default is equal weights over the session's symbols.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import panel as pn
import param
from bokeh.models.widgets import NumberFormatter
from bokeh.transform import dodge

from lyra.auth.permissions import Action, Principal
from lyra.core.errors import LyraError, ValidationError
from lyra.dashboards.base import (
    NUMBER,
    SESSION_PARAM,
    TABLE_OPTS,
    TARGETS_PARAM,
    LiveView,
    chart,
    empty_source,
    kpi_card,
    kpi_html,
    page,
    read_model,
    read_query,
)
from lyra.readside import ManualDesk, fmt_money, rebalance_proposal

ROUTE = "rebalancing"
TITLE = "Rebalancing"
REQUIRES = "view_rebalancing"

_PCT = NumberFormatter(format="0.00%")
_FMT = {
    "mark": NumberFormatter(format=NUMBER),
    "quantity": NumberFormatter(format="0,0.00000000"),
    "notional": NumberFormatter(format=NUMBER),
    "est_fee": NumberFormatter(format=NUMBER),
    "est_slippage": NumberFormatter(format=NUMBER),
    "actual_weight": _PCT,
    "target_weight": _PCT,
    "drift": _PCT,
}


def parse_targets(text: str) -> dict[str, float]:
    """``"a=0.5, b=0.25"`` -> ``{"a": 0.5, "b": 0.25}``; ValidationError naming the bad pair."""
    out: dict[str, float] = {}
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        name, sep, value = part.rpartition("=")
        try:
            w = float(value)
        except ValueError:
            w = float("nan")
        if not sep or not name.strip() or not 0 <= w <= 1:
            raise ValidationError("targets", part.strip(), "use instrument=weight with a weight in 0..1")
        out[name.strip()] = w
    return out


class RebalancingView(LiveView):
    """Target vs actual, drift and proposed trades; submit through risk when allowed."""

    targets = param.String(default="", doc="instrument=weight pairs; empty: equal weights.")
    LISTEN = ("order.fill", "session.equity", "session.")

    def __init__(
        self,
        rm: Any = None,
        session_id: str | None = None,
        *,
        principal: Principal | None = None,
        desk: ManualDesk | None = None,
        fee_rate: float = 0.006,
        slippage_bps: float = 2.0,
        **params: Any,
    ) -> None:
        self.principal = principal
        self.desk = desk
        self.fee_rate = fee_rate
        self.slippage_bps = slippage_bps
        self.proposal = pd.DataFrame()
        self.marks: dict[str, float] = {}
        self.weights: dict[str, float] = {}  # the targets the proposal was made for
        super().__init__(rm, session_id, **params)
        self.param.watch(lambda _e: self.reload(), ["targets"])

    def _build(self) -> pn.viewable.Viewable:
        self._cards = {
            k: kpi_card(k, "–", name=f"kpi-{k}")
            for k in ("Equity", "Max drift", "Trade notional", "Est. costs")
        }
        self._src = empty_source("instrument", "actual", "target")
        self._fig = chart("Target vs actual weight", datetime=False, x_range=[""], height=260)
        self._fig.vbar(
            dodge("instrument", -0.15, range=self._fig.x_range),
            top="actual",
            width=0.28,
            source=self._src,
            color="#4f8cc9",
            legend_label="actual",
        )
        self._fig.vbar(
            dodge("instrument", 0.15, range=self._fig.x_range),
            top="target",
            width=0.28,
            source=self._src,
            color="#26a69a",
            legend_label="target",
        )
        self._table = pn.widgets.Tabulator(
            pd.DataFrame(), formatters=_FMT, css_classes=["lyra-table", "proposal"], **TABLE_OPTS
        )
        inp = pn.widgets.TextInput.from_param(
            self.param.targets, label="Targets (instrument=weight, …)", placeholder="equal weights", width=420
        )
        return pn.Column(
            pn.Row(*self._cards.values()),
            inp,
            pn.Row(
                pn.pane.Bokeh(self._fig, sizing_mode="stretch_width"),
                pn.Column(*self._submit_box(), width=320),
            ),
            pn.pane.Markdown("### Proposed trades"),
            self._table,
            sizing_mode="stretch_width",
        )

    def _submit_box(self) -> list[pn.viewable.Viewable]:
        p = self.principal
        if p is None or self.desk is None or not p.can(Action.SUBMIT_REBALANCE):
            return [pn.pane.Markdown("_Your role may not submit rebalances._", name="no-rebalance")]
        arm = pn.widgets.Button(label="Submit rebalance…", color="primary")
        self._confirm = pn.widgets.Button(label="Confirm: send through risk", color="danger", visible=False)
        self._out = pn.pane.Markdown("", name="rebalance-result")
        arm.on_click(self._arm)
        self._confirm.on_click(self._submit)
        return [pn.Column(arm, self._confirm, self._out, name="rebalance-submit")]

    def _trades(self) -> list[tuple[str, str, Decimal]]:
        p = self.proposal
        if p.empty:
            return []
        p = p[(p["side"] != "") & (p["quantity"] > 0)]
        return [
            (i, s, Decimal(repr(q)))
            for i, s, q in zip(p["instrument_id"], p["side"], p["quantity"], strict=True)
        ]

    def _arm(self, _e: Any = None) -> None:
        trades = self._trades()
        if not trades:
            self._out.object = "Nothing to trade: the portfolio is on target."
            return
        text = "; ".join(f"{s} {q} {i}" for i, s, q in trades)
        self._out.object = f"Send {len(trades)} market order(s) through risk: {text}?"
        self._confirm.visible = True

    def _submit(self, _e: Any = None) -> None:
        self._confirm.visible = False
        assert self.desk is not None
        assert self.principal is not None
        # The session executes it (a ``rebalance`` command): sized net of costs, through risk
        # with cash checked, by its broker; the answer names the orders and their status.
        weights: dict[str, Decimal | str | float] = {k: repr(v) for k, v in self.weights.items()}
        try:
            cmd = self.desk.rebalance(self.principal, weights, session_id=self.session_id)
            cmd = self.desk.commands.wait(cmd.id)
        except LyraError as exc:
            self._out.object = f"Not done: {exc}"
            return
        self._out.object = cmd.describe()

    def clear(self) -> None:
        self._table.value = pd.DataFrame()

    def update(self, full: bool = True) -> None:
        info = self.info
        assert info is not None
        curve = self.rm.equity_curve(self.session_id)
        if curve.empty:
            self.warn(
                "This session has no equity snapshot yet; the proposal appears with the first one.", "info"
            )
            return
        last = curve.iloc[-1]
        self.marks = dict(last["marks"])
        eq = float(last["equity"])
        targets = (
            parse_targets(self.targets)
            if self.targets.strip()
            else {iid: 1.0 / len(info.instrument_ids) for iid in info.instrument_ids}
        )
        self.weights = targets
        self.proposal = p = rebalance_proposal(
            dict(last["positions"]),
            self.marks,
            eq,
            targets,
            fee_rate=self.fee_rate,
            slippage_bps=self.slippage_bps,
        )
        self._table.value = p
        self._src.data = {
            "instrument": list(p["instrument_id"]),
            "actual": list(p["actual_weight"]),
            "target": list(p["target_weight"]),
        }
        self._fig.x_range.factors = list(p["instrument_id"]) or [""]
        q = info.quote
        self._cards["Equity"].object = kpi_html("Equity", fmt_money(eq, q))
        self._cards["Max drift"].object = kpi_html("Max drift", f"{p['drift'].abs().max() * 100:,.2f} %")
        self._cards["Trade notional"].object = kpi_html(
            "Trade notional", fmt_money(float(p["notional"].sum()), q)
        )
        self._cards["Est. costs"].object = kpi_html(
            "Est. fees + slippage", fmt_money(float(p["est_fee"].sum() + p["est_slippage"].sum()), q)
        )


def create_app() -> pn.template.BootstrapTemplate:
    """A fresh rebalancing page for one browser session."""
    from lyra.auth.panel_auth import current_principal
    from lyra.session.config import load_session_config
    from lyra.session.runtime import session_instruments

    rm, jsonl = read_model()
    who = current_principal()
    query = read_query(SESSION_PARAM, TARGETS_PARAM)
    sid = query.get("session") or rm.default_session_id()
    info = rm.session(sid) if sid else None
    desk = None
    fee, slip = 0.006, 2.0
    if info is not None:
        cfg = load_session_config(info.config)
        instruments = session_instruments(cfg)
        fee = float(next(iter(instruments.values())).taker_fee)
        slip = float(cfg.slippage_bps)
        if who is not None and who.can(Action.SUBMIT_REBALANCE):
            desk = ManualDesk(rm.engine, instruments, session_id=sid, jsonl_path=jsonl)
    view = RebalancingView(
        rm, query.get("session"), principal=who, desk=desk, fee_rate=fee, slippage_bps=slip
    )
    raw = query.get("targets")
    if raw is not None:
        try:
            parse_targets(raw)
            view.targets = raw
        except ValidationError:
            query.problems.append(TARGETS_PARAM.message)
    view.show_problems(query)
    return page(TITLE, view, route=ROUTE)
