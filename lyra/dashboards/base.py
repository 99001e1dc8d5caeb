"""The pieces every Lyra dashboard shares: the dark page whose navigation lists only the apps
the signed-in user's role may open (:func:`page`), the live view base (:class:`LiveView`), the
query-string validator (:func:`read_query`) and small widgets. Pages call :func:`page` from
their ``create_app()``; see ``apps/README.md``.

The template loads nothing from the internet (no web fonts, no CDN), so it renders offline and
under the proxy's Content-Security-Policy.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import urllib.parse
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import panel as pn
import param
from panel.io.state import set_curdoc

from lyra.auth.panel_auth import current_principal, served_apps
from lyra.core.errors import LyraError
from lyra.dashboards.live_store import LiveStore, StatementCounter, is_live_source, live_store
from lyra.dashboards.theme import TABLE_CSS, TABLE_THEME, dark_tables
from lyra.readside import ReadModel, SessionInfo

ACCENT = "#4f8cc9"


def nav_links(current_route: str = "") -> str:
    """Markdown links to the apps the current user may open (none outside ``lyra serve``)."""
    who = current_principal()
    if who is None:
        return ""
    lines = []
    for spec in served_apps():
        if who.can(spec.requires):
            marker = "**" if spec.route == current_route else ""
            lines.append(f"- {marker}[{spec.title}](/{spec.route}){marker}")
    return "\n".join(lines) or "_No dashboards for your role._"


def page(title: str, main: Any, *, route: str) -> pn.template.BootstrapTemplate:
    """Wrap ``main`` in the shared dark template with role-aware navigation."""
    who = current_principal()
    user_line = f"Signed in as **{md_literal(who.subject)}** ({who.role.value})" if who else "Not signed in"
    sidebar = [
        pn.pane.Markdown("### Dashboards", margin=(0, 10)),
        pn.pane.Markdown(nav_links(route), name="nav", css_classes=["lyra-nav"], margin=(0, 10)),
        pn.layout.Divider(),
        pn.pane.Markdown(user_line, margin=(0, 10)),
        pn.pane.HTML('<a href="/auth/logout" id="lyra-logout">Sign out</a>', margin=(0, 10)),
    ]
    template = pn.template.BootstrapTemplate(
        title=f"Lyra · {title}",
        theme="dark",
        header_background="#1b1f24",
        sidebar=sidebar,
        sidebar_width=240,
    )
    dark_tables(main)  # tables built without TABLE_OPTS (admin, audit log, health) are dark too
    template.main.append(main)  # type: ignore[union-attr]
    return template


# --------------------------------------------------------------------------- live dashboards
# The pieces the trading/risk/... apps share: a read model per process, a base view that polls
# the event log's head and re-queries only when it moved, empty states and messages.


NO_SESSION = ("**No session yet.** Start one with `lyra session start --config my_session.toml`, "
              "or run `make demo` (a paper session on the shipped data), then come back: this page "
              "updates by itself.")
NUMBER = "0,0.00"
#: Every dashboard table: read-only, paged in the browser, filterable, dark (the midnight theme
#: from Panel's own bundle, no CDN, plus :data:`lyra.dashboards.theme.TABLE_CSS`).
TABLE_OPTS: dict[str, Any] = {"disabled": True, "pagination": "local", "page_size": 15, "show_index": False,
                              "sizing_mode": "stretch_width", "header_filters": True,
                              "theme": TABLE_THEME, "stylesheets": [TABLE_CSS]}


@functools.cache
def read_model() -> tuple[Any, Path]:
    """One engine (connection pool) and read model per server process, shared by sessions
    (and by the process's :func:`~lyra.dashboards.live_store.live_store`): the database's
    sessions plus the research backtests saved under ``$LYRA_HOME/research/`` (read once per
    process; see :mod:`lyra.dashboards.combined`).

    With ``LYRA_TEST_COUNT_SQL=<file>`` in the environment, the engine's SQL statements are counted
    into that file (``benchmarks/bench_dashboards.py`` reads the server's database load so)."""
    from lyra.bootstrap import open_engine

    settings, engine = open_engine()
    count_to = os.environ.get("LYRA_TEST_COUNT_SQL")
    if count_to:
        StatementCounter(engine, Path(count_to))  # kept alive by the engine's event listener
    from lyra.dashboards.combined import CombinedSource, research_results

    source = CombinedSource(ReadModel(engine, settings.market_dir), research_results(settings.home))
    return source, settings.audit_dir / "events.jsonl"


# --------------------------------------------------------------------------- query parameters
# Every query parameter goes through :func:`read_query`: a value is either parsed into its type
# and range, or dropped with a *fixed* message written here (never the value itself: a link's
# text must not reach the page, where Markdown would render HTML).

_MAX_QUERY_VALUE = 256
_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
_PAIR = r"[A-Za-z0-9:/._-]{1,64}=[0-9.]{1,12}"
_TARGETS = re.compile(rf"{_PAIR}(?:[,;] ?{_PAIR}){{0,49}}")


@dataclass(frozen=True)
class QuerySpec:
    """One accepted query parameter: its name, type and range, and the fixed message shown
    when the link holds anything else."""

    name: str
    kind: str  # "int" | "float" | "choice" | "id" | "pattern"
    lo: float = 0
    hi: float = 0
    choices: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    message: str = ""

    def parse(self, raw: str) -> Any:
        """The typed value, or ValueError (the caller shows :attr:`message`, not the value)."""
        if len(raw) > _MAX_QUERY_VALUE or not raw.isascii() or not raw.isprintable():
            raise ValueError(self.name)
        if self.kind == "int":
            if not re.fullmatch(r"-?[0-9]{1,9}", raw) or not self.lo <= int(raw) <= self.hi:
                raise ValueError(self.name)
            return int(raw)
        if self.kind == "float":
            if not re.fullmatch(r"[0-9]{0,3}\.?[0-9]{1,6}", raw) or not self.lo <= float(raw) <= self.hi:
                raise ValueError(self.name)
            return float(raw)
        if self.kind == "choice":
            if raw not in self.choices:
                raise ValueError(self.name)
            return raw
        pattern = _ID if self.kind == "id" else self.pattern
        if pattern is None or not pattern.fullmatch(raw):
            raise ValueError(self.name)
        return raw


def int_param(name: str, lo: int, hi: int, message: str = "") -> QuerySpec:
    """A whole number in ``lo..hi``."""
    return QuerySpec(name, "int", lo, hi, message=message or
                     f"`{name}` in the link must be a whole number in {lo:,}..{hi:,}; it was ignored.")


def float_param(name: str, lo: float, hi: float, message: str = "") -> QuerySpec:
    """A decimal number in ``lo..hi``."""
    return QuerySpec(name, "float", lo, hi, message=message or
                     f"`{name}` in the link must be a number in {lo}..{hi}; it was ignored.")


def choice_param(name: str, choices: tuple[str, ...], message: str = "") -> QuerySpec:
    """One of ``choices``."""
    return QuerySpec(name, "choice", choices=choices, message=message or
                     f"`{name}` in the link must be one of {', '.join(choices)}; it was ignored.")


#: ``?session=``: a session id (1-40 letters, digits, '-' or '_').
SESSION_PARAM = QuerySpec("session", "id", message=(
    "`session` in the link is not a session id (1-40 letters, digits, '-' or '_'); "
    "showing the latest session instead."))
#: ``?targets=instrument=weight,...`` (rebalancing).
TARGETS_PARAM = QuerySpec("targets", "pattern", pattern=_TARGETS, message=(
    "`targets` in the link must be instrument=weight pairs with weights in 0..1; "
    "showing equal weights."))


@dataclass
class Query:
    """What :func:`read_query` made of the page's query string."""

    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def get(self, name: str, default: Any = None) -> Any:
        """The parsed value of ``name`` (``default`` when absent or refused)."""
        return self.values.get(name, default)


def read_query(*specs: QuerySpec, search: str | None = None) -> Query:
    """Parse the page's query string (or ``search``, e.g. ``"?bars=500"``) against ``specs``:
    typed values for the good ones, the fixed messages of the bad ones. Unknown parameters are
    ignored; a parameter given twice is refused."""
    if search is None:
        loc = pn.state.location
        search = (loc.search or "") if loc is not None else ""
    # The raw string, not Location.query_params: that one guesses types (JSON, literal_eval).
    raw_params = urllib.parse.parse_qs(search.removeprefix("?"), errors="replace", max_num_fields=100)
    out = Query()
    for spec in specs:
        raws = raw_params.get(spec.name)
        if not raws or raws == [""]:
            continue
        try:
            if len(raws) != 1:
                raise ValueError(spec.name)
            out.values[spec.name] = spec.parse(raws[0])
        except ValueError:
            out.problems.append(spec.message)
    return out


def md_literal(value: object) -> str:
    """``value`` as literal text inside a one-line Markdown message: the marks that could open
    a tag, a link, an image, emphasis or code are backslash-escaped (CommonMark), newlines
    become spaces; ordinary punctuation stays readable."""
    text = " ".join(str(value)[:300].split())
    return re.sub(r"([\\`*_\[\]()<>!#|~&{}+])", r"\\\1", text)


#: How a view's message starts when the database cannot be read (a poll or a query failed).
DB_TROUBLE = "Could not read the database"


class LiveView(pn.viewable.Viewer):
    """Base of the live dashboards: a session picker, a message line, live updates.

    Subclasses build their widgets in ``_build()`` (returning the body) and fill them in
    ``update(full)``; ``full`` is False when only new log entries of kinds the view listens
    to (``LISTEN``) arrived.

    Where the data comes from: ``rm``/``source`` (any object with ReadModel's read methods;
    neither: the default home's :func:`read_model`). Live views over a database share the
    process's :class:`~lyra.dashboards.live_store.LiveStore` (or ``store``): its one poller
    follows the log for every open page and its cache answers the same question once, so the
    page's own timer (``refresh_ms``) only reads memory. ``live=False`` (tests, notebooks)
    reads the source directly and never polls by itself: call :meth:`tick`. A static source
    (a research result: ``live = False``) never starts a poller.

    In a notebook: ``TradingView(session="demo")``.
    """

    session_id = param.String(default="", doc="The session shown.")
    refresh_ms = param.Integer(default=1000, bounds=(250, 60_000),
                               doc="How often the page checks the shared store (memory only).")
    message = param.String(default="", doc="Empty state / error shown above the body.")
    head_seq = param.Integer(default=0, doc="Last event-log entry seen.")

    LISTEN: tuple[str, ...] = ("order.", "session.", "risk.")

    def __init__(self, rm: Any = None, session_id: str | None = None, *, session: str | None = None,
                 source: Any = None, live: bool = True, store: LiveStore | None = None,
                 **params: Any) -> None:
        super().__init__(**params)
        if session is not None and session_id is not None and session != session_id:
            raise ValueError("give the session as `session` or `session_id`, not two different ones")
        if rm is not None and source is not None and rm is not source:
            raise ValueError("give the data as `rm` or `source`, not both")
        wanted = session_id if session_id is not None else session
        picked = source if source is not None else rm
        if picked is None:
            picked = store.source if store is not None else read_model()[0]
        #: where the data comes from (a ReadModel, a research source, ...)
        self.source: Any = picked
        self.live = live and is_live_source(picked)
        #: the shared store this view follows (None: manual ``tick()`` or a static source)
        self.store: LiveStore | None = (store or live_store(picked)) if self.live else None
        #: what the view reads through: the store's cache when live, else the source itself
        self.rm: Any = self.store.reader if self.store is not None else picked
        self.info: SessionInfo | None = None
        self._callback: Any = None
        if self.store is not None:
            self.store.subscribe(self)
        self._picker = pn.widgets.Select(label="Session", options=[], width=220)
        # html=False: markdown-it shows any HTML in a message as text (defence in depth).
        self._note = pn.pane.Alert("", alert_type="warning", visible=False, name="message",
                                   renderer_options={"html": False, "linkify": False},
                                   css_classes=["lyra-message"], sizing_mode="stretch_width")
        self._body = self._build()
        self._session_line = pn.pane.Markdown("", name="session-line", css_classes=["lyra-session"])
        self._layout = pn.Column(pn.Row(self._picker, self._session_line),
                                 self._note, self._body, sizing_mode="stretch_width")
        self._set_sessions(wanted)
        self._picker.param.watch(self._picked, "value")
        # The first load is a few small indexed queries (tens of ms): doing it here puts data in
        # the first paint instead of costing another browser round-trip after ``onload``.
        self._first_load()
        if self.store is not None:
            # Under the page's document lock, on the server's loop: reads the store's memory,
            # queries (through the cache) only when kinds this view shows arrived.
            self._callback = pn.state.add_periodic_callback(self.tick, period=self.refresh_ms)
            self._follow_served_page()

    def _follow_served_page(self) -> None:
        """Under ``lyra serve``: the store wakes this page when the log moved (no wait for the
        timer), and the view leaves the store when the browser session ends."""
        doc = pn.state.curdoc
        store = self.store
        if doc is None or doc.session_context is None or store is None:
            return
        # Weak references only: the store holds the wake, and must not keep the page alive.
        me, page_doc = weakref.ref(self), weakref.ref(doc)
        self._woken = False

        def ticked() -> None:  # on the page's loop, under its document lock
            view, d = me(), page_doc()
            if view is None or d is None:
                return
            view._woken = False
            with set_curdoc(d):
                view.tick()

        def wake() -> None:  # on the store's poller thread: only schedules, touches no model
            view, d = me(), page_doc()
            if view is None or d is None or view._woken:
                return
            view._woken = True
            d.add_next_tick_callback(ticked)  # the one Document method safe from another thread

        def session_ended(session_context: Any) -> None:
            view = me()
            if view is not None:
                store.unsubscribe(view)

        store.subscribe(self, wake)
        doc.on_session_destroyed(session_ended)

    def close(self) -> None:
        """Stop following the log: the page's timer stops and the view leaves the store (whose
        poller stops with its last view). For notebooks; a served page does this when its
        browser session ends."""
        if self._callback is not None:
            with contextlib.suppress(Exception):  # the document is already gone: nothing to stop
                self._callback.stop()
            self._callback = None
        if self.store is not None:
            self.store.unsubscribe(self)

    # -------------------------------------------------------------- subclass hooks
    def _build(self) -> pn.viewable.Viewable:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, full: bool = True) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -------------------------------------------------------------- machinery
    def _set_sessions(self, wanted: str | None) -> None:
        found = [s.session_id for s in self.rm.sessions()]
        self._picker.options = found
        if wanted and wanted not in found:
            self.warn(f"Session **{md_literal(wanted)}** does not exist; showing the latest one instead.")
            wanted = None
        sid = wanted or self.rm.default_session_id() or ""
        self.session_id = sid
        if sid:
            self._picker.value = sid

    def _picked(self, event: Any) -> None:
        if event.new and event.new != self.session_id:
            self.session_id = event.new
            self.message = ""
            self.reload()

    def warn(self, text: str, kind: Any = "warning") -> None:
        """Show a message above the body (empty states, bad input, vanished sessions).

        ``text`` is Markdown written by the app (the pane renders no raw HTML: it shows as
        text); values from outside go in through :func:`md_literal`."""
        self.message = text
        self._note.object = text
        self._note.alert_type = kind
        self._note.visible = bool(text)

    def _first_load(self) -> None:
        self.head_seq = self.rm.head_seq()
        self._safe_update(True)

    def reload(self) -> None:
        """A full reload with the loading indicator on (a new session, a new widget value)."""
        self._body.loading = True
        try:
            self._safe_update(True)
        finally:
            self._body.loading = False

    def _safe_update(self, full: bool) -> None:
        try:
            if not self.session_id:
                self._set_sessions(None)
            if not self.session_id:
                self.info = None
                self.warn(NO_SESSION, "info")
                self.clear()
                return
            info = self.rm.session(self.session_id)
            if info is None:
                gone = self.session_id
                self._set_sessions(None)
                self.warn(f"Session **{md_literal(gone)}** no longer exists (deleted or the database "
                          f"was reset); pick another one.", "danger")
                if not self.session_id:
                    self.clear()
                    return
                info = self.rm.session(self.session_id)
            self.info = info
            state = "responding" if info and info.responding() else (info.status if info else "")
            self._session_line.object = (f"**{info.strategy}** on {info.venue} "
                                         f"{', '.join(info.symbols)} {info.timeframe} · {info.mode} · "
                                         f"{state}") if info else ""
            if self.message.startswith((NO_SESSION[:10], DB_TROUBLE)):
                self.warn("")
            self.update(full)
        except (LyraError, ValueError, KeyError) as exc:
            self.warn(f"Could not show this: {md_literal(exc)}", "danger")
        except Exception as exc:  # the database went away, a file is missing...: keep the page alive
            logging.getLogger(__name__).exception("dashboard update failed")
            self.warn(f"{DB_TROUBLE} ({type(exc).__name__}); retrying.", "danger")

    def tick(self) -> None:
        """Look at the log head (live: the store's memory; otherwise the source: one query);
        re-query when entries of the kinds this view shows arrived."""
        try:
            if self.store is not None:
                failed = self.store.error
                if failed is not None:
                    raise failed
                ch = self.store.changes_since(self.head_seq)
            else:
                ch = self.rm.changes_since(self.head_seq)
        except Exception as exc:
            self.warn(f"{DB_TROUBLE} ({type(exc).__name__}); retrying.", "danger")
            return
        if self.message.startswith(DB_TROUBLE):
            self.warn("")  # the database answers again
        if not ch.any:
            if self.session_id and self.info is not None and self.rm.session(self.session_id) is None:
                self._safe_update(True)
            return
        self.head_seq = ch.head_seq
        if ch.touches("session.started") or not self.session_id:
            before = self.session_id
            self._set_sessions(self.session_id or None)
            if self.session_id != before:  # the first session appeared: show it whole
                self._safe_update(True)
                return
        if ch.touches(*self.LISTEN):
            self._safe_update(False)

    def show_problems(self, query: Query) -> None:
        """Show the fixed messages of refused query parameters (none: nothing changes)."""
        if query.problems:
            self.warn(" ".join(query.problems))

    def clear(self) -> None:
        """Empty the widgets (no session); subclasses override when they hold data."""

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def kpi_card(label: str, value: str, *, name: str = "") -> pn.pane.HTML:
    """A small KPI tile (label above, big value)."""
    return pn.pane.HTML(kpi_html(label, value), name=name or label, css_classes=["lyra-kpi"],
                        margin=(4, 8), width=170)


def kpi_html(label: str, value: str) -> str:
    return (f'<div style="background:#22272e;border-radius:6px;padding:8px 12px">'
            f'<div style="font-size:12px;color:#9aa4af">{label}</div>'
            f'<div style="font-size:20px;font-weight:600" class="lyra-kpi-value">{value}</div></div>')


def chart(title: str, *, height: int = 260, datetime: bool = True, **kw: Any) -> Any:
    """A Bokeh figure sized for the dashboards (the dark template themes it)."""
    from bokeh.plotting import figure

    opts: dict[str, Any] = {"height": height, "sizing_mode": "stretch_width", "title": title,
                            "tools": "pan,wheel_zoom,box_zoom,reset,hover" if kw.pop("hover", False)
                            else "pan,wheel_zoom,box_zoom,reset"}
    if datetime:
        opts["x_axis_type"] = "datetime"
    opts.update(kw)
    return figure(**opts)


def empty_source(*cols: str) -> Any:
    from bokeh.models import ColumnDataSource

    return ColumnDataSource({c: [] for c in cols})
