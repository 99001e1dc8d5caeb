"""The admin page's control centre: ``lyra doctor --commission``'s checklist and the health of
every running process (sessions, schedulers, ``lyra serve``), computed in a worker thread on
demand — a probe of a hung process must not block the server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import panel as pn

from lyra.metrics.commission import FAIL, WARN, run_commission
from lyra.metrics.health import process_health

CHECK_COLUMNS = ["check", "status", "detail", "fix"]
PROCESS_COLUMNS = ["kind", "name", "host", "pid", "status", "heartbeat age", "metrics", "started"]
_TEXT_ONLY = {"html": False, "linkify": False}


def _table(columns: list[str], name: str) -> pn.widgets.Tabulator:
    return pn.widgets.Tabulator(
        pd.DataFrame(columns=columns), disabled=True, show_index=False, sizing_mode="stretch_width",
        css_classes=[f"lyra-health-{name}"], formatters={c: {"type": "plaintext"} for c in columns})


class HealthPanel(pn.viewable.Viewer):
    """Commissioning checks and process health for ``settings``' home ("Run checks")."""

    def __init__(self, settings: Any, engine: Any, *, now_ms: Callable[[], int] | None = None) -> None:
        super().__init__()
        self.settings, self.engine, self.now_ms = settings, engine, now_ms
        self.checks = _table(CHECK_COLUMNS, "checks")
        self.processes = _table(PROCESS_COLUMNS, "processes")
        self.status = pn.pane.Markdown("Not checked yet: press **Run checks**.", renderer_options=_TEXT_ONLY,
                                       css_classes=["lyra-health-status"])
        self.button = pn.widgets.Button(label="Run checks", color="primary", width=160,
                                        css_classes=["lyra-health-run"])
        self.button.on_click(self.run)
        self._running = False

    def collect(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The checklist and the process table (blocking: probes, database reads)."""
        checks = run_commission(self.settings, now_ms=self.now_ms)
        frame = pd.DataFrame([{"check": c.name, "status": c.status, "detail": c.detail, "fix": c.fix}
                              for c in checks], columns=CHECK_COLUMNS)
        now = self.now_ms() if self.now_ms else None
        procs = pd.DataFrame(process_health(self.engine, now_ms=now), columns=PROCESS_COLUMNS)
        return frame, procs

    async def run(self, _event: object = None) -> None:
        """Run the checks in a worker thread and show them."""
        if self._running:
            return  # a second click while one runs
        self._running, self.button.disabled = True, True
        self.status.object = f"⏳ checking (started {datetime.now(UTC):%H:%M:%S} UTC)…"
        try:
            checks, procs = await asyncio.to_thread(self.collect)
        except Exception as exc:  # the database went away: say so, keep the page alive
            self.status.object = f"❌ could not check: {type(exc).__name__}"
            return
        finally:
            self._running, self.button.disabled = False, False
        self.checks.value, self.processes.value = checks, procs
        failed = int((checks["status"] == FAIL).sum())
        warned = int((checks["status"] == WARN).sum())
        mark = "❌" if failed else "⚠️" if warned else "✅"
        verdict = f"{mark} all pass" if not failed and not warned else f"{mark} {failed} fail, {warned} warn"
        self.status.object = f"{verdict}; {len(procs)} processes ({datetime.now(UTC):%H:%M:%S} UTC)"

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Markdown("### Control centre (`lyra doctor --commission`)"),
            pn.Row(self.button, self.status),
            self.checks,
            pn.pane.Markdown("#### Running processes"),
            self.processes,
            sizing_mode="stretch_width",
        )
