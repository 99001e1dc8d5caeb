"""Audit log viewer: the latest event-log entries, filter by kind, chain verification, and a
live head counter that updates over the websocket.

Served by ``lyra serve`` at ``/audit`` for roles with ``view_audit`` (admin, auditor). In a
notebook: ``AuditLogView(engine, jsonl_path)`` displays the same view without the page.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import panel as pn
import param
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.audit.verify import verify
from lyra.store.tables import events

try:  # served by lyra serve (the apps folder is on sys.path) or imported as a package
    from _template import page
except ImportError:  # pragma: no cover - notebook use
    from apps._template import page

ROUTE = "audit"
TITLE = "Audit log"
REQUIRES = "view_audit"

ALL_KINDS = "(all kinds)"
_PAYLOAD_CHARS = 160


class AuditLogView(pn.viewable.Viewer):
    """Latest entries of the event log with a kind filter and a chain-verify button."""

    kind = param.Selector(default=ALL_KINDS, objects=[ALL_KINDS], doc="Show only this kind.")
    limit = param.Integer(default=200, bounds=(10, 5000), doc="How many latest entries.")
    head_seq = param.Integer(default=0, doc="Sequence number of the last entry (live).")
    status = param.String(default="chain not verified yet", doc="Result of the last verify.")
    refresh_ms = param.Integer(default=2000, bounds=(250, 60_000), doc="Live update period.")

    def __init__(self, engine: Engine, jsonl_path: Path | None = None, **params: object) -> None:
        super().__init__(**params)
        self.engine = engine
        self.jsonl_path = jsonl_path
        self._table = pn.widgets.Tabulator(
            self._frame(),
            disabled=True,
            pagination="local",
            page_size=25,
            sizing_mode="stretch_width",
            show_index=False,
            name="entries",
        )
        self._refresh_kinds()
        self.param.watch(lambda _e: self.refresh(), ["kind", "limit"])
        self._callback = pn.state.add_periodic_callback(self.refresh, period=self.refresh_ms)

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

    def refresh(self) -> None:
        """Reload the table (and the kind list) from the database."""
        before = self.head_seq
        frame = self._frame()
        if self.head_seq != before or len(frame) != len(self._table.value):
            self._table.value = frame
            self._refresh_kinds()

    def verify_chain(self, _event: object = None) -> None:
        """Check the whole hash chain (and the JSON-lines mirror when there is one)."""
        report = verify(self.engine, self.jsonl_path) if self.jsonl_path else verify(self.engine, None)
        if report.ok:
            self.status = f"✅ chain intact: {report.entries} entries"
        else:
            self.status = f"❌ TAMPERED or BROKEN: first bad {report.first_bad}"

    def __panel__(self) -> pn.viewable.Viewable:
        button = pn.widgets.Button(name="Verify chain", button_type="primary", width=160)
        button.on_click(self.verify_chain)
        head = pn.widgets.IntInput.from_param(
            self.param.head_seq,
            name="Last entry (live)",
            disabled=True,
            width=160,
            css_classes=["lyra-head-seq"],
        )
        return pn.Column(
            pn.Row(
                pn.widgets.Select.from_param(self.param.kind, name="Kind", width=220),
                pn.widgets.IntInput.from_param(self.param.limit, name="Latest", width=120),
                head,
                button,
            ),
            pn.pane.Markdown(self.param.status, name="verify-status"),
            self._table,
            sizing_mode="stretch_width",
        )


@functools.cache
def _store() -> tuple[Engine, Path]:
    # One engine (connection pool) per server process, shared by every session.
    from lyra.bootstrap import open_engine

    settings, engine = open_engine()
    return engine, settings.audit_dir / "events.jsonl"


def create_app() -> pn.viewable.Viewable:
    """Build a fresh audit-log page for one browser session (called by the Panel server)."""
    engine, jsonl = _store()
    view = AuditLogView(engine, jsonl)
    return page(TITLE, view, route=ROUTE)
