"""Live risk: exposure by instrument and venue, VaR/ES with limit usage, trading states,
circuit-breaker trips, kill-switch requests, and the kill switch itself for roles allowed
(with confirmation; :func:`lyra.readside.pull_kill_switch` records who pulled it).

Query parameters: ``?session=<id>``, ``?confidence=0.95`` (0.5..0.999).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
import param
from bokeh.models.widgets import NumberFormatter

from lyra.auth.permissions import Action, Principal
from lyra.core.errors import LyraError
from lyra.dashboards.actions import RiskActions
from lyra.dashboards.base import (
    NUMBER,
    SESSION_PARAM,
    TABLE_OPTS,
    LiveView,
    chart,
    empty_source,
    float_param,
    kpi_card,
    kpi_html,
    page,
    read_model,
    read_query,
)
from lyra.readside import ReadModel, fmt_money, fmt_pct, pull_kill_switch, returns, var_es

ROUTE = "risk"
TITLE = "Live risk"
REQUIRES = "view_risk"

_FMT = {c: NumberFormatter(format=NUMBER) for c in ("quantity", "mark", "market_value", "share")}


class RiskView(LiveView):
    """Exposure, VaR/ES and limit usage, states, trips, kill requests; the kill switch."""

    confidence = param.Number(default=0.95, bounds=(0.5, 0.999), doc="VaR/ES confidence.")
    LISTEN = ("order.fill", "session.equity", "risk.", "session.")

    def __init__(
        self,
        rm: ReadModel,
        session_id: str | None = None,
        *,
        principal: Principal | None = None,
        jsonl_path: Any = None,
        **params: Any,
    ) -> None:
        self.principal = principal
        self.jsonl_path = jsonl_path
        self.figures: dict[str, float] = {}
        self.exposure = pd.DataFrame()
        self.actions = RiskActions(rm, principal, jsonl_path=jsonl_path)  # cancel, re-arm
        super().__init__(rm, session_id, **params)
        self.param.watch(lambda _e: self.reload(), ["confidence"])

    def _build(self) -> pn.viewable.Viewable:
        self._cards = {
            k: kpi_card(k, "–", name=f"kpi-{k}")
            for k in ("Trading state", "Gross exposure", "Net exposure", "VaR", "ES", "VaR limit usage")
        }
        self._src = empty_source("instrument", "value")
        fig = chart("Exposure by instrument", datetime=False, x_range=[""], height=240)
        fig.vbar("instrument", top="value", width=0.6, source=self._src, color="#4f8cc9")
        self._fig = fig
        self._exposure = pn.widgets.Tabulator(
            pd.DataFrame(), formatters=_FMT, css_classes=["lyra-table", "exposure"], **TABLE_OPTS
        )
        self._venues = pn.widgets.Tabulator(
            pd.DataFrame(), formatters=_FMT, css_classes=["lyra-table", "by-venue"], **TABLE_OPTS
        )
        self._scopes = pn.widgets.Tabulator(
            pd.DataFrame(), css_classes=["lyra-table", "states"], **TABLE_OPTS
        )
        self._trips = pn.widgets.Tabulator(pd.DataFrame(), css_classes=["lyra-table", "trips"], **TABLE_OPTS)
        self._kills = pn.widgets.Tabulator(pd.DataFrame(), css_classes=["lyra-table", "kills"], **TABLE_OPTS)
        return pn.Column(
            pn.Row(*self._cards.values()),
            pn.Row(
                pn.pane.Bokeh(fig, sizing_mode="stretch_width"),
                pn.Column(*self._kill_switch(), self.actions, width=340),
            ),
            pn.Tabs(
                ("Exposure by instrument", self._exposure),
                ("By venue", self._venues),
                ("Trading states", self._scopes),
                ("Breaker trips", self._trips),
                ("Kill-switch requests", self._kills),
                dynamic=True,
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )

    def _kill_switch(self) -> list[pn.viewable.Viewable]:
        p = self.principal
        if p is None or not p.can(Action.PULL_KILL_SWITCH):
            return [pn.pane.Markdown("_Your role may not pull the kill switch._", name="no-kill-switch")]
        self._k_scope = pn.widgets.RadioButtonGroup(
            options=["this session", "everything"], value="this session"
        )
        self._k_flatten = pn.widgets.Checkbox(label="also flatten every position")
        self._k_reason = pn.widgets.TextInput(label="Reason (required)", placeholder="why")
        arm = pn.widgets.Button(label="Pull kill switch…", color="danger", css_classes=["lyra-kill"])
        self._k_confirm = pn.widgets.Button(
            label="Confirm: HALT trading", color="danger", visible=False, css_classes=["lyra-kill-confirm"]
        )
        self._k_out = pn.pane.Markdown("", name="kill-result", css_classes=["lyra-kill-result"])
        arm.on_click(self._arm)
        self._k_confirm.on_click(self._pull)
        return [
            pn.Column(
                pn.pane.Markdown("### Kill switch"),
                self._k_scope,
                self._k_flatten,
                self._k_reason,
                arm,
                self._k_confirm,
                self._k_out,
                name="kill-switch",
                css_classes=["lyra-kill-switch"],
            )
        ]

    def _arm(self, _e: Any = None) -> None:
        if not (self._k_reason.value or "").strip():
            self._k_out.object = "Not done: Give a reason first."
            return
        what = (
            "**every session**" if self._k_scope.value == "everything" else f"session **{self.session_id}**"
        )
        flat = " and flatten all positions" if self._k_flatten.value else ""
        self._k_out.object = f"Halt {what}, cancel its open orders{flat}? Re-arming needs a risk manager."
        self._k_confirm.visible = True

    def _pull(self, _e: Any = None) -> None:
        self._k_confirm.visible = False
        assert self.principal is not None
        refused = self.actions.gate.refusal(Action.PULL_KILL_SWITCH)  # fresh re-auth under serve
        if refused:
            self._k_out.object = refused
            return
        sid = None if self._k_scope.value == "everything" else (self.session_id or None)
        try:
            req = pull_kill_switch(
                self.rm.engine,
                self.principal,
                session_id=sid,
                flatten=bool(self._k_flatten.value),
                reason=self._k_reason.value or "",
                jsonl_path=self.jsonl_path,
            )
        except LyraError as exc:
            self._k_out.object = f"Not done: {exc}"
            return
        self._k_out.object = f"Kill switch pulled (request {req.id}, {req.scope}) by {req.actor}."
        self._safe_update(True)

    def clear(self) -> None:
        for t in (self._exposure, self._venues, self._trips, self._kills):
            t.value = pd.DataFrame()

    def update(self, full: bool = True) -> None:
        info = self.info
        assert info is not None
        self.actions.refresh(self.session_id)
        pos = self.rm.positions(self.session_id)
        pos = pos[pos["quantity"] != 0]
        exp = pos[["venue", "symbol", "instrument_id", "quantity", "mark", "market_value"]].copy()
        self.exposure = exp
        self._exposure.value = exp
        self._venues.value = exp.groupby("venue", as_index=False)["market_value"].sum()
        self._src.data = {"instrument": list(exp["symbol"]), "value": list(exp["market_value"])}
        self._fig.x_range.factors = list(exp["symbol"]) or ["(flat)"]
        curve = self.rm.equity_curve(self.session_id)
        eq = float(curve["equity"].iloc[-1]) if len(curve) else float("nan")
        var, es = var_es(returns(curve["equity"]), self.confidence) if len(curve) > 1 else (float("nan"),) * 2
        limit = info.config.get("risk", {}).get("defaults", {}).get("max_var")
        q = info.quote
        rs = self.rm.risk_state()
        state = rs.state_of(self.session_id)
        self.figures = {
            "gross": float(exp["market_value"].abs().sum()),
            "net": float(exp["market_value"].sum()),
            "var": var * eq,
            "es": es * eq,
            "equity": eq,
        }
        usage = self.figures["var"] / float(limit) if limit else float("nan")
        c = self._cards
        c["Trading state"].object = kpi_html("Trading state", state.upper())
        c["Gross exposure"].object = kpi_html("Gross exposure", fmt_money(self.figures["gross"], q))
        c["Net exposure"].object = kpi_html("Net exposure", fmt_money(self.figures["net"], q))
        conf = f"{self.confidence:.1%}".replace(".0%", "%")
        c["VaR"].object = kpi_html(f"VaR {conf} (1 snapshot)", fmt_money(self.figures["var"], q))
        c["ES"].object = kpi_html(f"ES {conf}", fmt_money(self.figures["es"], q))
        c["VaR limit usage"].object = kpi_html("VaR limit usage", fmt_pct(usage) if limit else "no limit set")
        self._scopes.value = rs.scopes[["scope", "state", "reason", "actor", "time", "rearms"]]
        self._trips.value = rs.trips[["time", "account_id", "breaker", "instrument_id", "action", "reason"]]
        self._kills.value = rs.kills[["id", "time", "scope", "flatten", "actor", "reason", "open"]]


def create_app() -> pn.template.BootstrapTemplate:
    """A fresh risk page for one browser session."""
    from lyra.auth.panel_auth import current_principal

    rm, jsonl = read_model()
    lo, hi = RiskView.param.confidence.bounds
    query = read_query(SESSION_PARAM, float_param("confidence", lo, hi))
    view = RiskView(rm, query.get("session"), principal=current_principal(), jsonl_path=jsonl)
    if query.get("confidence") is not None:
        view.confidence = query.get("confidence")
    view.show_problems(query)
    return page(TITLE, view, route=ROUTE)
