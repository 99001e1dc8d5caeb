"""Audit log viewer: the latest event-log entries, filter by kind, chain verification, a
live head counter that updates over the websocket, and the audit downloads.

Served by ``lyra serve`` at ``/audit`` for roles with ``view_audit`` (admin, auditor). In a
notebook: ``AuditLogView(engine, jsonl_path)`` displays the same view without the page.

Downloads (:class:`AuditDownloads`), each shown only to a principal the permission table
allows, and each the very file the command line writes (the same functions make it):

- the ATO capital gains report (``download_tax_report``): FY and entity, CSV schedule then
  summary, as ``lyra tax report --fy N --entity E``;
- the trade history (``read_audit_log``): CSV, Parquet, Excel or a tax tool's import layout,
  filtered by dates, venue, instrument, strategy and session, as ``lyra tax history``;
- the tear sheet HTML (``read_audit_log``) of a session, a strategy or a venue, as
  ``lyra report tearsheet``.

Files are built in a worker thread (a million fills take seconds), so the server keeps
answering other users meanwhile; so is the chain verification.
"""

from __future__ import annotations

import asyncio
import functools
import io
from datetime import UTC, date, datetime, time
from pathlib import Path
from time import monotonic
from typing import Any

import pandas as pd
import panel as pn
import param
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.audit.verify import verify
from lyra.auth.permissions import Action, Principal
from lyra.backup.status import backup_rows
from lyra.core.errors import LyraError
from lyra.dashboards.base import md_literal, page
from lyra.store.tables import events
from lyra.tax.report import ENTITY_DISCOUNT

ROUTE = "audit"
TITLE = "Audit log"
REQUIRES = "view_audit"

ALL_KINDS = "(all kinds)"
BACKUPS_EVERY_S = 30.0  # the backups folder is re-read at most this often
BACKUP_COLUMNS = ["backup", "taken (UTC)", "age", "log head", "database", "size (MB)", "verification"]
_PAYLOAD_CHARS = 160


class AuditLogView(pn.viewable.Viewer):
    """Latest entries of the event log with a kind filter and a chain-verify button."""

    kind = param.Selector(default=ALL_KINDS, objects=[ALL_KINDS], doc="Show only this kind.")
    limit = param.Integer(default=200, bounds=(10, 5000), doc="How many latest entries.")
    head_seq = param.Integer(default=0, doc="Sequence number of the last entry (live).")
    status = param.String(default="chain not verified yet", doc="Result of the last verify.")
    refresh_ms = param.Integer(default=2000, bounds=(250, 60_000), doc="Live update period.")

    def __init__(self, engine: Engine, jsonl_path: Path | None = None, *, principal: Principal | None = None,
                 home: Path | None = None, live: bool = True, **params: object) -> None:
        super().__init__(**params)
        self.engine = engine
        self.jsonl_path = jsonl_path
        self._verifying = False
        self._button = pn.widgets.Button(label="Verify chain", color="primary", width=160)
        self._button.on_click(self.verify_chain)
        #: the downloads this principal may have (None: none at all, e.g. a notebook or a viewer)
        may = home is not None and principal is not None and AuditDownloads.allowed(principal)
        self.downloads = AuditDownloads(engine, home, principal) if may else None  # type: ignore[arg-type]
        self._table = pn.widgets.Tabulator(
            self._frame(),
            disabled=True,
            pagination="local",
            page_size=25,
            sizing_mode="stretch_width",
            show_index=False,
            label="entries",
        )
        self._refresh_kinds()
        #: the home's backups ($LYRA_HOME/backups, as `lyra backup list`) and their verification
        self.backups_dir = home / "backups" if home is not None else None
        self._backups_read = 0.0
        rows = pd.DataFrame(self._backup_rows(), columns=BACKUP_COLUMNS)
        self._backups = pn.widgets.Tabulator(
            rows, disabled=True, show_index=False, pagination="local", page_size=10,
            sizing_mode="stretch_width", css_classes=["lyra-backups"],
            formatters={c: {"type": "plaintext"} for c in BACKUP_COLUMNS})  # text, never HTML
        self.param.watch(lambda _e: self.refresh(), ["kind", "limit"])
        # live=False (tests, a notebook cell that polls by hand): no timer
        self._callback = pn.state.add_periodic_callback(self.refresh, period=self.refresh_ms) \
            if live else None

    def _frame(self) -> pd.DataFrame:
        q = sa.select(events.c.seq, events.c.ts, events.c.actor, events.c.kind, events.c.payload)
        if self.kind != ALL_KINDS:
            q = q.where(events.c.kind == self.kind)
        q = q.order_by(events.c.seq.desc()).limit(self.limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            head = conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))).scalar_one()
        self.head_seq = int(head)
        frame = pd.DataFrame(rows, columns=["seq", "ts", "actor", "kind", "payload"])
        frame["time (UTC)"] = pd.to_datetime(frame["ts"], unit="ms").dt.strftime("%Y-%m-%d %H:%M:%S")
        frame["payload"] = [
            p if len(p) <= _PAYLOAD_CHARS else p[:_PAYLOAD_CHARS] + "…" for p in frame["payload"]
        ]
        return frame[["seq", "time (UTC)", "actor", "kind", "payload"]]

    def _refresh_kinds(self) -> None:
        with self.engine.connect() as conn:
            kinds = sorted(conn.execute(sa.select(events.c.kind).distinct()).scalars())
        self.param.kind.objects = [ALL_KINDS, *kinds]

    def _backup_rows(self) -> list[dict[str, object]]:
        self._backups_read = monotonic()
        if self.backups_dir is None:
            return []
        return backup_rows(self.backups_dir)

    def refresh(self) -> None:
        """Reload the table (and the kind list) from the database; the backups every 30 s."""
        if self.backups_dir is not None and monotonic() - self._backups_read >= BACKUPS_EVERY_S:
            self._backups.value = pd.DataFrame(self._backup_rows(), columns=BACKUP_COLUMNS)
        before = self.head_seq
        frame = self._frame()
        if self.head_seq != before or len(frame) != len(self._table.value):
            self._table.value = frame
            self._refresh_kinds()

    async def verify_chain(self, _event: object = None) -> None:
        """Check the whole hash chain (and the JSON-lines mirror when there is one) in a worker
        thread: a long log takes a while, and the server keeps serving meanwhile."""
        if self._verifying:
            return  # a second click while one runs
        self._verifying = True
        self._button.disabled = True
        started = datetime.now(UTC).strftime("%H:%M:%S")
        self.status = f"⏳ verifying the chain (started {started} UTC; up to {self.head_seq:,} entries)…"
        try:
            report = await asyncio.to_thread(verify, self.engine, self.jsonl_path)
        except Exception as exc:  # the database went away: say so, keep the page alive
            self.status = f"❌ could not verify: {type(exc).__name__}"
            return
        finally:
            self._verifying = False
            self._button.disabled = False
        if report.ok:
            self.status = f"✅ chain intact: {report.entries} entries"
        else:
            self.status = f"❌ TAMPERED or BROKEN: first bad {report.first_bad}"

    def __panel__(self) -> pn.viewable.Viewable:
        button = self._button
        head = pn.widgets.IntInput.from_param(
            self.param.head_seq,
            label="Last entry (live)",
            disabled=True,
            width=160,
            css_classes=["lyra-head-seq"],
        )
        return pn.Column(
            pn.Row(
                pn.widgets.Select.from_param(self.param.kind, label="Kind", width=220),
                pn.widgets.IntInput.from_param(self.param.limit, label="Latest", width=120),
                head,
                button,
            ),
            pn.pane.Markdown(self.param.status, name="verify-status"),
            self._table,
            *([self.downloads] if self.downloads is not None else []),
            *([pn.pane.Markdown("**Backups** (`lyra backup list`; verify with `lyra backup verify`)"),
               self._backups] if self.backups_dir is not None else []),
            sizing_mode="stretch_width",
        )


ALL = "(all)"
SHEET_SCOPES = ("session", "strategy", "venue")


def australian_fy(ts_ms: int) -> int:
    """The Australian financial year (by its end) of a UTC ms time, on Sydney's calendar."""
    from zoneinfo import ZoneInfo

    d = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(ZoneInfo("Australia/Sydney")).date()
    return d.year + 1 if d.month >= 7 else d.year


class AuditDownloads(pn.viewable.Viewer):
    """The audit downloads a principal may have: the ATO tax report (``download_tax_report``),
    the trade history and tear sheets (``read_audit_log``). Each ``*_bytes()`` method is the
    file the command line writes, and refuses a principal without the permission."""

    TAX = Action.DOWNLOAD_TAX_REPORT
    HISTORY = Action.READ_AUDIT_LOG

    fy = param.Integer(default=2025, bounds=(2000, 2100), doc="Financial year by its end (2025 = FY2024-25).")
    entity = param.Selector(default="individual", objects=list(ENTITY_DISCOUNT), doc="Who the return is for.")
    history_format = param.Selector(default="csv", objects=["csv"], doc="Trade-history file format.")
    start = param.Date(default=None, allow_None=True, doc="First day (UTC) of the trade history.")
    end = param.Date(default=None, allow_None=True, doc="Last day (UTC) of the trade history, inclusive.")
    venue = param.Selector(default=ALL, objects=[ALL], doc="Only this venue.")
    instrument = param.Selector(default=ALL, objects=[ALL], doc="Only this instrument.")
    strategy = param.Selector(default=ALL, objects=[ALL], doc="Only sessions of this strategy.")
    session = param.Selector(default=ALL, objects=[ALL], doc="Only this session.")
    sheet_scope = param.Selector(default="session", objects=list(SHEET_SCOPES), doc="Tear sheet of a ...")
    sheet_of = param.Selector(default="", objects=[""], doc="... this session, strategy or venue.")
    message = param.String(default="", doc="What the last download did.")

    @classmethod
    def allowed(cls, principal: Principal) -> bool:
        """True when ``principal`` may have at least one of the downloads."""
        return principal.can(cls.TAX) or principal.can(cls.HISTORY)

    def __init__(self, engine: Engine, home: Path, principal: Principal, **params: Any) -> None:
        from lyra.readside import ReadModel
        from lyra.tax.service import HISTORY_FORMATS

        super().__init__(**params)
        self.engine, self.home, self.principal = engine, home, principal
        self.param.history_format.objects = list(HISTORY_FORMATS)
        self._rm = ReadModel(engine, home / "market")
        infos = self._rm.sessions()
        # From the session registry, not a scan of the fills (a ledger may hold millions).
        last_ts = max((i.data_ts for i in infos if i.data_ts), default=None)
        instruments = sorted({x for i in infos for x in i.instrument_ids})
        self._choices = {
            "session": sorted(i.session_id for i in infos),
            "strategy": sorted({i.strategy for i in infos if i.strategy}),
            "venue": sorted({i.venue for i in infos if i.venue}),
        }
        self.param.venue.objects = [ALL, *sorted({x.rpartition(":")[0] for x in instruments})]
        self.param.instrument.objects = [ALL, *instruments]
        self.param.strategy.objects = [ALL, *self._choices["strategy"]]
        self.param.session.objects = [ALL, *self._choices["session"]]
        if last_ts is not None:  # the year of the latest data a session processed
            self.fy = australian_fy(int(last_ts))
        self._sheet_choices()
        self.param.watch(lambda _e: self._sheet_choices(), ["sheet_scope"])
        self.tax_download = self._button(self.TAX, "Tax report (CSV)", self._tax_cb, self.tax_filename())
        self.history_download = self._button(self.HISTORY, "Trade history", self._history_cb,
                                             self.history_filename())
        self.sheet_download = self._button(self.HISTORY, "Tear sheet (HTML)", self._sheet_cb,
                                           self.sheet_filename())

    def _button(self, action: Action, label: str, callback: Any,
                filename: str) -> pn.widgets.FileDownload | None:
        if not self.principal.can(action):
            return None  # not built at all: nothing on the page to click or to call
        return pn.widgets.FileDownload(callback=callback, filename=filename, label=label, embed=False,
                                       color="success", width=200)

    def _sheet_choices(self) -> None:
        options = self._choices[self.sheet_scope] or [""]
        self.param.sheet_of.objects = options
        self.sheet_of = options[0]

    # ------------------------------------------------------------------ the files
    def tax_filename(self) -> str:
        return f"lyra-tax-FY{self.fy}-{self.entity}.csv"

    def tax_report_bytes(self) -> bytes:
        """``lyra tax report --fy FY --entity ENTITY`` (CSV: schedule, blank line, summary)."""
        from lyra.tax.service import report_text

        self.principal.require(self.TAX)
        return report_text(self.engine, self.home, fmt="csv", fy=self.fy, entity=self.entity).encode()

    def history_filename(self) -> str:
        from lyra.tax.service import HISTORY_FORMATS

        ext = HISTORY_FORMATS[self.history_format][0]
        kind = "" if self.history_format in ("csv", "parquet", "xlsx") else f"-{self.history_format}"
        return f"lyra-trade-history{kind}.{ext}"

    def history_filters(self) -> dict[str, Any]:
        """The filters as ``lyra.tax.history.read_history`` keywords (days are UTC; the end
        day is included)."""
        def ms(d: date | None, days: int = 0) -> int | None:
            if d is None:
                return None
            return int(datetime.combine(d, time(), UTC).timestamp() * 1000) + days * 86_400_000

        pick = {k: (None if getattr(self, k) == ALL else getattr(self, k))
                for k in ("venue", "instrument", "strategy", "session")}
        return {"start_ts": ms(self.start), "end_ts": ms(self.end, 1), **pick}

    def history_bytes(self) -> bytes:
        """``lyra tax history --format FORMAT`` with the filters."""
        from lyra.tax.history import read_history
        from lyra.tax.service import history_bytes

        self.principal.require(self.HISTORY)
        return history_bytes(read_history(self.engine, **self.history_filters()), self.history_format)

    def sheet_filename(self) -> str:
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.sheet_of)[:60]
        return f"lyra-tearsheet-{self.sheet_scope}-{name}.html"

    def tearsheet_bytes(self) -> bytes:
        """``lyra report tearsheet`` of the chosen session, strategy or venue."""
        from lyra.reports.tearsheet import tearsheet_for

        self.principal.require(self.HISTORY)
        if not self.sheet_of:
            raise LyraError(f"no {self.sheet_scope} to show yet")
        _title, text = tearsheet_for(self.engine, self.home / "market", **{self.sheet_scope: self.sheet_of})
        return text.encode("utf-8")

    # ------------------------------------------------------------------ the buttons
    async def _deliver(self, what: str, widget: pn.widgets.FileDownload | None, filename: str,
                       build: Any) -> io.BytesIO:
        # Built in a worker thread: the event loop (every user's page) keeps running.
        assert widget is not None
        self.message = f"⏳ building the {what}…"
        try:
            data = await asyncio.to_thread(build)
        except LyraError as exc:
            self.message = f"❌ no {what}: {md_literal(exc)}"
            raise
        widget.filename = filename  # the download takes its name from the widget
        self.message = f"✅ {what}: {filename}, {len(data):,} bytes"
        return io.BytesIO(data)

    async def _tax_cb(self) -> io.BytesIO:
        return await self._deliver(f"FY{self.fy} tax report", self.tax_download, self.tax_filename(),
                                   self.tax_report_bytes)

    async def _history_cb(self) -> io.BytesIO:
        return await self._deliver("trade history", self.history_download, self.history_filename(),
                                   self.history_bytes)

    async def _sheet_cb(self) -> io.BytesIO:
        return await self._deliver("tear sheet", self.sheet_download, self.sheet_filename(),
                                   self.tearsheet_bytes)

    def __panel__(self) -> pn.viewable.Viewable:
        w = pn.widgets
        rows: list[Any] = []
        if self.tax_download is not None:
            rows += [pn.pane.Markdown("**ATO capital gains report** (as `lyra tax report`)"), pn.FlexBox(
                w.IntInput.from_param(self.param.fy, label="Financial year (ending 30 June)", width=200),
                w.Select.from_param(self.param.entity, label="Entity", width=160),
                self.tax_download)]
        if self.history_download is not None:
            rows += [pn.pane.Markdown("**Trade history** (as `lyra tax history`; days in UTC)"), pn.FlexBox(
                w.Select.from_param(self.param.history_format, label="Format", width=130),
                w.DatePicker.from_param(self.param.start, label="From", width=130),
                w.DatePicker.from_param(self.param.end, label="To (inclusive)", width=130),
                w.Select.from_param(self.param.venue, label="Venue", width=130),
                w.Select.from_param(self.param.instrument, label="Instrument", width=190),
                w.Select.from_param(self.param.strategy, label="Strategy", width=140),
                w.Select.from_param(self.param.session, label="Session", width=140),
                self.history_download)]
        if self.sheet_download is not None:
            rows += [pn.pane.Markdown("**Tear sheet** (as `lyra report tearsheet`, offline)"), pn.FlexBox(
                w.Select.from_param(self.param.sheet_scope, label="Of a", width=130),
                w.Select.from_param(self.param.sheet_of, label="Which", width=220),
                self.sheet_download)]
        return pn.Card(*rows, pn.pane.Markdown(self.param.message, name="download-status"),
                       title="Downloads", sizing_mode="stretch_width", collapsed=False)



@functools.cache
def _store() -> tuple[Engine, Path, Path]:
    # One engine (connection pool) per server process, shared by every session.
    from lyra.bootstrap import open_engine

    settings, engine = open_engine()
    return engine, settings.audit_dir / "events.jsonl", settings.home


def create_app() -> pn.template.BootstrapTemplate:
    """Build a fresh audit-log page for one browser session (called by the Panel server)."""
    from lyra.auth.panel_auth import current_principal

    engine, jsonl, home = _store()
    view = AuditLogView(engine, jsonl, principal=current_principal(), home=home)
    return page(TITLE, view, route=ROUTE)
