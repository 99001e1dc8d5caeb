"""Live risk: exposure by instrument and venue, the 1-day VaR/ES of the current positions next
to the usage of the session's VaR limit, trading states, circuit-breaker trips, kill-switch
requests, and the kill switch itself for roles allowed (with confirmation;
:func:`lyra.readside.pull_kill_switch` records who pulled it).

Two VaR figures, each with its method named on the page:

* **VaR / ES (1 day)**: the current positions re-priced on each of the last ``VAR_DAYS`` daily
  returns of their instruments (historical simulation, :func:`lyra.risk.var.historical_var`),
  at the page's confidence; the daily closes come from the market store, up to the data time
  of the session's last equity snapshot. No open positions: VaR 0, said in words.
* **VaR limit usage**: the figure the session's own pre-trade check compares with its
  ``max_var`` limit (normal VaR from :class:`lyra.session.var_model.SessionCovariance` with the
  risk config's confidence, horizon and lookback, :func:`lyra.risk.var.incremental_var`), over
  the limit. Shown only when the session's risk config sets ``max_var``.

Query parameters: ``?session=<id>``, ``?confidence=0.99`` (0.5..0.999).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets import NumberFormatter

from lyra.auth.permissions import Action, Principal
from lyra.core.errors import LyraError, ValidationError
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
    md_literal,
    page,
    read_model,
    read_query,
)
from lyra.readside import ReadModel, SessionInfo, fmt_money, fmt_pct, pull_kill_switch

ROUTE = "risk"
TITLE = "Live risk"
REQUIRES = "view_risk"

DAY_MS = 86_400_000
#: Daily returns behind the position VaR: the most recent ones before the data time.
VAR_DAYS = 250

_FMT = {c: NumberFormatter(format=NUMBER) for c in ("quantity", "mark", "market_value", "share")}


def _conf_text(confidence: float) -> str:
    return f"{confidence:.1%}".replace(".0%", "%")


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------- position VaR
@dataclass(frozen=True)
class PositionVaR:
    """1-day VaR and ES of the current positions (positive losses, in the quote currency).

    ``problem`` says why there is no figure (``var``/``es`` are NaN then); no open positions
    is not a problem: both are 0 and ``instruments`` is empty."""

    var: float
    es: float
    confidence: float
    days: int  #: daily returns (scenarios) behind the figure
    instruments: tuple[str, ...]
    values: tuple[float, ...]  #: signed exposures (quantity x mark), ordered like instruments
    as_of_ms: int  #: data time: the figures use daily returns that ended at or before it
    problem: str = ""

    @property
    def flat(self) -> bool:
        return not self.instruments and not self.problem

    def method(self) -> str:
        """The method in words, as the page states it."""
        return (f"historical simulation over {self.days} days of the instruments' daily returns, "
                f"{_conf_text(self.confidence)}")


def daily_closes(bars: pd.DataFrame, timeframe_ms: int, until_ms: int) -> pd.Series:
    """Closing price of each complete UTC day (index: day start, ms) from ``bars`` (ts = bar
    open, ms): the close of the day's last bar, for days that ended at or before ``until_ms``
    and only from bars that had ended by then (never a bar still to come)."""
    if bars.empty:
        return pd.Series(dtype="float64")
    ends = bars["ts"].to_numpy(dtype="int64") + timeframe_ms
    keep = ends <= until_ms
    ends, close = ends[keep], bars["close"].to_numpy(dtype="float64")[keep]
    day = (ends - 1) // DAY_MS * DAY_MS  # a bar ending at midnight closes the day before
    s = pd.Series(close, index=day).groupby(level=0).last()
    return s[s.index + DAY_MS <= until_ms]


def returns_matrix(closes: dict[str, pd.Series], days: int = VAR_DAYS) -> pd.DataFrame:
    """Simple daily returns (one column per instrument) on the days every instrument has a
    close, the last ``days`` of them. A gap in the data gives one return across the gap."""
    frame = pd.DataFrame(closes).dropna(how="any").sort_index()
    rets = frame / frame.shift(1) - 1.0
    return rets.iloc[1:].tail(days)


def position_var(exposures: dict[str, float], returns: pd.DataFrame, confidence: float,
                 as_of_ms: int) -> PositionVaR:
    """VaR/ES of ``exposures`` (instrument -> signed value) re-priced on ``returns`` (daily,
    columns = instruments) with :func:`lyra.risk.var.historical_var`."""
    from lyra.risk.var import historical_var

    held = {k: v for k, v in exposures.items() if v != 0 and np.isfinite(v)}
    if not held:
        return PositionVaR(0.0, 0.0, confidence, len(returns), (), (), as_of_ms)
    names = tuple(sorted(held))
    values = tuple(held[k] for k in names)
    missing = [k for k in names if k not in returns.columns]
    nan = float("nan")
    if missing:
        return PositionVaR(nan, nan, confidence, 0, names, values, as_of_ms,
                           f"no daily closes of {', '.join(missing)} in the market store")
    r = returns[list(names)].to_numpy(dtype="float64")
    try:
        res = historical_var(r, np.asarray(values), confidence=confidence, horizon=1)
    except ValidationError:
        need = int(np.ceil(1 / (1 - confidence) - 1e-9))
        return PositionVaR(nan, nan, confidence, len(r), names, values, as_of_ms,
                           f"only {len(r)} daily returns of the held instruments before {_day(as_of_ms)}: "
                           f"historical VaR at {_conf_text(confidence)} needs {need}")
    return PositionVaR(res.var, res.es, confidence, res.n_obs, names, values, as_of_ms)


# --------------------------------------------------------------------------- limit usage
@dataclass(frozen=True)
class LimitUsage:
    """The session's pre-trade VaR of the current book next to its ``max_var`` limit."""

    limit: float | None  #: None: the risk config sets no max_var
    var: float  #: the check's normal VaR of the book now (NaN: no model)
    confidence: float
    horizon: int  #: periods of the session's timeframe
    timeframe: str
    lookback: int  #: bars behind the covariance model
    problem: str = ""

    @property
    def usage(self) -> float:
        return self.var / self.limit if self.limit else float("nan")

    def method(self) -> str:
        return (f"the session's pre-trade check: normal VaR {_conf_text(self.confidence)} over "
                f"{self.horizon} × {self.timeframe} bar(s), covariance of {self.lookback} bars")


def risk_config(info: SessionInfo) -> Any:
    """The session's :class:`lyra.risk.RiskConfig` as its risk engine builds it (money limits
    in the first symbol's quote currency unless the config says otherwise)."""
    from lyra.risk.config import RiskConfig

    data = dict(info.config.get("risk") or {})
    data.setdefault("currency", info.quote or "USD")
    return RiskConfig.from_dict(data)


def limit_usage(info: SessionInfo, cfg: Any, covariance: Any, exposures: dict[str, float],
                as_of_ms: int) -> LimitUsage:
    """The figure the session's VaR check computes for the book now (no order), with
    ``covariance`` a :class:`~lyra.session.var_model.SessionCovariance` of the session."""
    from lyra.risk.var import incremental_var

    lim = cfg.resolve(info.session_id, "").get("max_var")
    base = dict(confidence=cfg.var_confidence, horizon=cfg.var_horizon, timeframe=info.timeframe,
                lookback=cfg.var_lookback)
    if lim is None:
        return LimitUsage(None, float("nan"), **base)
    model, cols = covariance.model_at(as_of_ms)
    if model is None:
        return LimitUsage(float(lim), float("nan"), **base,
                          problem="fewer than 2 returns before this day: the check has no model "
                          "(it refuses orders that add risk)")
    v = [float(exposures.get(c, 0.0)) for c in cols]
    iv = incremental_var(v, [0.0] * len(cols), model, confidence=cfg.var_confidence,
                         horizon=cfg.var_horizon, include_mean=cfg.var_include_mean)
    return LimitUsage(float(lim), float(iv.var_before), **base)


def session_covariance(rm: ReadModel, info: SessionInfo, cfg: Any) -> Any:
    """The covariance model the session's factory builds (same store, symbols, lookback)."""
    from lyra.session.var_model import SessionCovariance

    if rm.market_dir is None:
        raise ValidationError("market_dir", None, "no market store configured", "pass market_dir")
    return SessionCovariance(rm.market_dir, info.venue, info.symbols, info.timeframe,
                             lookback=cfg.var_lookback)


# --------------------------------------------------------------------------- the view
class RiskView(LiveView):
    """Exposure, VaR/ES of the positions and VaR limit usage, states, trips, kill requests;
    the kill switch."""

    confidence = param.Number(default=0.99, bounds=(0.5, 0.999), doc="VaR/ES confidence.")
    LISTEN = ("order.fill", "session.equity", "risk.", "session.")

    def __init__(
        self,
        rm: Any = None,
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
        self.pvar: PositionVaR | None = None
        self.limit: LimitUsage | None = None
        # Market data read once per session (re-read only when the data time passes its end)
        # and the session's covariance model, built once like the session builds it.
        self._bars: dict[tuple[str, str], pd.DataFrame] = {}
        self._cov: tuple[str, Any] | None = None
        self.actions = RiskActions(rm, principal, jsonl_path=jsonl_path)  # cancel, re-arm
        super().__init__(rm, session_id, **params)
        self.param.watch(lambda _e: self.reload(), ["confidence"])

    def _build(self) -> pn.viewable.Viewable:
        self._cards = {
            k: kpi_card(k, "–", name=f"kpi-{k}")
            for k in ("Trading state", "Gross exposure", "Net exposure", "VaR", "ES", "VaR limit usage")
        }
        self._cards["VaR"].css_classes = ["lyra-kpi", "lyra-var"]
        self._cards["VaR limit usage"].css_classes = ["lyra-kpi", "lyra-var-limit"]
        self._method = pn.pane.Markdown("", name="var-method", css_classes=["lyra-var-method"],
                                        sizing_mode="stretch_width")
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
            self._method,
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
        self._method.object = ""

    # -------------------------------------------------------------- data
    def _as_of(self) -> tuple[int, float]:
        """Data time and equity of the session's last equity snapshot (0, NaN: none yet)."""
        from lyra.audit.events import EquitySnapshot

        last = self.rm.events(kinds=["session.equity"], session_id=self.session_id, limit=1)
        if last.empty:
            return 0, float("nan")
        return int(last["ts"].iloc[0]), float(EquitySnapshot.from_json(last["payload"].iloc[0]).equity)

    def _closes(self, info: SessionInfo, iid: str, until_ms: int) -> pd.Series:
        from lyra.core.timeutil import timeframe_to_ms

        tf_ms = timeframe_to_ms(info.timeframe)
        key = (info.session_id, iid)
        bars = self._bars.get(key)
        if bars is None or (len(bars) and int(bars["ts"].iloc[-1]) + tf_ms < until_ms):
            venue, _, symbol = iid.partition(":")
            bars = self._bars[key] = self.rm.bars(venue, symbol, info.timeframe)
        return daily_closes(bars, tf_ms, until_ms)

    def position_risk(self, info: SessionInfo, exposures: dict[str, float], as_of_ms: int) -> PositionVaR:
        """The 1-day historical VaR/ES of ``exposures`` at data time ``as_of_ms``."""
        from lyra.core.timeutil import timeframe_to_ms

        held = sorted(k for k, v in exposures.items() if v != 0 and np.isfinite(v))
        nan = float("nan")
        if held and timeframe_to_ms(info.timeframe) > DAY_MS:
            return PositionVaR(nan, nan, self.confidence, 0, tuple(held), (), as_of_ms,
                               f"{info.timeframe} bars give no daily returns")
        closes = {iid: self._closes(info, iid, as_of_ms) for iid in held}
        return position_var(exposures, returns_matrix(closes) if closes else pd.DataFrame(),
                            self.confidence, as_of_ms)

    def limit_usage(self, info: SessionInfo, exposures: dict[str, float], as_of_ms: int) -> LimitUsage:
        """The session's pre-trade VaR of the book now next to its ``max_var`` limit."""
        cfg = risk_config(info)
        if cfg.resolve(info.session_id, "").get("max_var") is None:
            return limit_usage(info, cfg, None, exposures, as_of_ms)
        if self._cov is None or self._cov[0] != info.session_id:
            self._cov = (info.session_id, session_covariance(self.rm, info, cfg))
        return limit_usage(info, cfg, self._cov[1], exposures, as_of_ms)

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
        as_of, equity = self._as_of()
        exposures = {str(i): float(v) for i, v in zip(exp["instrument_id"], exp["market_value"], strict=True)}
        try:
            self.pvar = pv = self.position_risk(info, exposures, as_of)
        except (LyraError, ValueError, FileNotFoundError) as exc:  # no market store, bad timeframe
            nan = float("nan")
            self.pvar = pv = PositionVaR(nan, nan, self.confidence, 0, tuple(sorted(exposures)), (), as_of,
                                         f"the market data: {exc}")
        try:
            self.limit = lu = self.limit_usage(info, exposures, as_of)
        except (LyraError, ValueError, FileNotFoundError) as exc:  # a bad risk config: say so, keep the rest
            self.limit = lu = LimitUsage(None, float("nan"), 0.99, 1, info.timeframe, 0,
                                         problem=f"the session's risk config: {exc}")
        rs = self.rm.risk_state()
        state = rs.state_of(self.session_id)
        self.figures = {
            "gross": float(exp["market_value"].abs().sum()),
            "net": float(exp["market_value"].sum()),
            "var": pv.var,
            "es": pv.es,
            "equity": equity,
            "limit": float("nan") if lu.limit is None else lu.limit,
            "check_var": lu.var,
            "usage": lu.usage,
        }
        q = info.quote
        c = self._cards
        conf = _conf_text(pv.confidence)
        c["Trading state"].object = kpi_html("Trading state", state.upper())
        c["Gross exposure"].object = kpi_html("Gross exposure", fmt_money(self.figures["gross"], q))
        c["Net exposure"].object = kpi_html("Net exposure", fmt_money(self.figures["net"], q))
        if pv.flat:  # a VaR of 0 said in words, never a stale number
            var_text = es_text = fmt_money(0.0, q, 0)
            flat = " · no open positions"
        else:
            var_text, es_text, flat = fmt_money(pv.var, q), fmt_money(pv.es, q), ""
        c["VaR"].object = kpi_html(f"VaR {conf} · 1 day{flat}", var_text)
        c["ES"].object = kpi_html(f"ES {conf} · 1 day{flat}", es_text)
        if lu.limit is None:
            usage_text = "–" if lu.problem else "no VaR limit set"
        elif lu.problem:
            usage_text = "no model yet"
        else:
            usage_text = f"{fmt_pct(lu.usage, 1)} of {fmt_money(lu.limit, q, 0)}"
        c["VaR limit usage"].object = kpi_html("VaR limit usage", usage_text)
        self._method.object = self._method_text(pv, lu, q)
        self._scopes.value = rs.scopes[["scope", "state", "reason", "actor", "time", "rearms"]]
        self._trips.value = rs.trips[["time", "account_id", "breaker", "instrument_id", "action", "reason"]]
        self._kills.value = rs.kills[["id", "time", "scope", "flatten", "actor", "reason", "open"]]

    @staticmethod
    def _method_text(pv: PositionVaR, lu: LimitUsage, q: str) -> str:
        """How the two VaR figures were made, in one or two lines of Markdown."""
        if pv.flat:
            when = f" at {_day(pv.as_of_ms)}" if pv.as_of_ms else ""
            head = f"**VaR:** no open positions{when}: VaR 0 and ES 0 (1 day)."
        elif pv.problem:
            head = f"**VaR:** not available: {md_literal(pv.problem)}."
        else:
            head = (f"**VaR / ES (1 day):** the current positions re-priced by {pv.method()} "
                    f"(data up to {_day(pv.as_of_ms)}).")
        if lu.limit is None:
            tail = (f"**Limit:** {md_literal(lu.problem)}." if lu.problem
                    else "**Limit:** the session's risk config sets no `max_var`.")
        elif lu.problem:
            tail = f"**Limit** {fmt_money(lu.limit, q)}: {md_literal(lu.problem)}."
        else:
            tail = (f"**Limit usage:** {fmt_money(lu.var, q)} by {lu.method()}, against `max_var` "
                    f"{fmt_money(lu.limit, q)}.")
        return f"{head}  \n{tail}"


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
