"""The audit page's downloads, headless (the FileDownload callbacks called as the server would,
no browser): each file is byte for byte what the command line writes (`lyra tax report`,
`lyra tax history`) or shows the same figures (`lyra report tearsheet`); a role without the
permission gets no download at all; chain verification runs off the event loop."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import date, timedelta
from decimal import Decimal as D
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from lyra.auth.permissions import PermissionDenied, Principal, Role
from lyra.cli import app
from lyra.readside.analytics import session_metrics
from lyra.reports.tearsheet import _fmt
from lyra.tax.history import read_parquet

# Panel's Tabulator and Bokeh's ColumnDataSource call reset_index(inplace=True), deprecated in pandas 3.1.
pytestmark = [pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:panel.widgets.tables"),
              pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")]

AUDITOR = Principal("audrey", Role.AUDITOR)
RISK = Principal("rick", Role.RISK_MANAGER)
VIEWER = Principal("vic", Role.VIEWER)


def _cli(*args: str) -> bytes:
    res = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout_bytes


def _rate_file(path: Path, start: date, end: date) -> Path:
    rows = ["F11.1  EXCHANGE RATES ,,", "Title,A$1=USD,Trade-weighted Index May 1970 = 100",
            "Units,USD,Index", ",,", "Series ID,FXRUSD,FXRTWI"]
    d = start
    while d <= end:
        if d.weekday() < 5:
            rows.append(f"{d.strftime('%d-%b-%Y')},0.7700,60.0")
        d += timedelta(days=1)
    path.write_text("\n".join(rows) + "\n")
    return path


def _download(widget) -> bytes:  # type: ignore[no-untyped-def]
    return asyncio.run(widget.callback()).read()


def _shown(text: str) -> dict[str, str]:
    return dict(re.findall(r"data-metric='([a-z_]+)'&gt;([^&]*)&lt;", text))


@pytest.fixture
def home(dash, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    settings, rm = dash
    monkeypatch.setenv("LYRA_HOME", str(settings.home))
    monkeypatch.delenv("LYRA_DATABASE_URL", raising=False)
    _cli("tax", "import-rates", str(_rate_file(tmp_path / "f11.1-data.csv", date(2017, 6, 1), date(2018, 1, 31))))
    return settings, rm


def test_auditor_downloads_are_what_the_command_line_writes(home, tmp_path: Path) -> None:
    from lyra.dashboards import audit_log

    settings, rm = home
    view = audit_log.AuditLogView(rm.engine, settings.audit_dir / "events.jsonl", principal=AUDITOR,
                                  home=settings.home, live=False)
    d = view.downloads
    assert d is not None and d.tax_download and d.history_download and d.sheet_download
    assert d.fy == 2018  # the financial year of the session's latest data (July-November 2017)

    # ATO report: FY and entity from the selectors; the CSV `lyra tax report` writes.
    d.entity = "super"
    data = _download(d.tax_download)
    assert d.tax_download.filename == "lyra-tax-FY2018-super.csv"
    _cli("tax", "report", "--fy", "2018", "--entity", "super", "--output", str(tmp_path / "r.csv"))
    assert data == (tmp_path / "r.csv").read_bytes()
    schedule = data.decode().split("\n\n")[0].splitlines()[1:]
    fills = rm.fills("dash")
    assert len(schedule) == int((fills["side"] == "sell").sum()) > 0  # one CGT event per sale
    assert "✅" in d.message and d.tax_download.filename in d.message

    # Trade history with filters, as Parquet: the bytes of `lyra tax history`.
    d.history_format, d.start, d.end, d.venue, d.session = "parquet", date(2017, 8, 1), date(2017, 9, 30), \
        "coinbase", "dash"
    data = _download(d.history_download)
    out = tmp_path / "h.parquet"
    _cli("tax", "history", "--format", "parquet", "--start", "2017-08-01T00:00:00Z", "--end",
         "2017-10-01T00:00:00Z", "--venue", "coinbase", "--session", "dash", "--output", str(out))
    assert data == out.read_bytes()
    back = read_parquet(out)
    t0, t1 = 1_501_545_600_000, 1_506_816_000_000  # 2017-08-01 and 2017-10-01, 00:00 UTC
    inside = fills[(fills["ts"] >= t0) & (fills["ts"] < t1)]
    assert [r.fill_id for r in back] == inside["fill_id"].tolist() and 0 < len(back) < len(fills)
    assert [r.quantity for r in back] == [D(str(q)) for q in inside["quantity_exact"]]

    # Excel: the same cells as the command line's workbook (the file embeds its save time).
    d.history_format = "xlsx"
    data = _download(d.history_download)
    assert d.history_download.filename == "lyra-trade-history.xlsx"
    _cli("tax", "history", "--format", "xlsx", "--start", "2017-08-01T00:00:00Z", "--end",
         "2017-10-01T00:00:00Z", "--venue", "coinbase", "--session", "dash", "--output", str(tmp_path / "h.xlsx"))
    cells = [list(r) for r in openpyxl.load_workbook(io.BytesIO(data))["fills"].iter_rows(values_only=True)]
    ref = [list(r) for r in openpyxl.load_workbook(tmp_path / "h.xlsx")["fills"].iter_rows(values_only=True)]
    assert cells == ref and len(cells) == len(back) + 1

    # Tear sheets of the session and of its strategy (one session: the same figures).
    m = session_metrics(rm.equity_curve("dash"), fills)
    for scope, name in (("session", "dash"), ("strategy", rm.session("dash").strategy)):
        d.sheet_scope = scope
        d.sheet_of = name
        text = _download(d.sheet_download).decode()
        shown = _shown(text)
        assert {k: shown[k] for k in m} == {k: _fmt(v) for k, v in m.items()}
        assert "<script src" not in text and d.sheet_download.filename.endswith(".html")
    _cli("report", "tearsheet", "dash", "-o", str(tmp_path / "s.html"))
    assert _shown((tmp_path / "s.html").read_text()) == shown

    # A year without fills: a clear message, no file.
    d.fy = 2020
    with pytest.raises(Exception, match="2020"):
        _download(d.tax_download)
    assert d.message.startswith("❌") and "2020" in d.message


def test_roles_without_the_permission_get_no_download(home) -> None:
    from lyra.dashboards import audit_log

    settings, rm = home
    viewer = audit_log.AuditLogView(rm.engine, None, principal=VIEWER, home=settings.home, live=False)
    assert viewer.downloads is None
    assert "Downloads" not in repr(viewer.__panel__())
    # No principal (a notebook): no downloads either (lyra.tax is there to call directly).
    assert audit_log.AuditLogView(rm.engine, None, home=settings.home, live=False).downloads is None
    # The table: a risk manager may read the audit log (history, tear sheet) but not the tax report.
    risk = audit_log.AuditDownloads(rm.engine, settings.home, RISK)
    assert risk.tax_download is None and risk.history_download is not None and risk.sheet_download is not None
    with pytest.raises(PermissionDenied, match="download_tax_report"):
        risk.tax_report_bytes()
    v = audit_log.AuditDownloads(rm.engine, settings.home, VIEWER)
    assert (v.tax_download, v.history_download, v.sheet_download) == (None, None, None)
    for produce in (v.tax_report_bytes, v.history_bytes, v.tearsheet_bytes):
        with pytest.raises(PermissionDenied):
            produce()


def test_verify_chain_runs_off_the_event_loop(home) -> None:
    from lyra.dashboards import audit_log

    settings, rm = home
    view = audit_log.AuditLogView(rm.engine, settings.audit_dir / "events.jsonl", principal=AUDITOR,
                                  home=settings.home, live=False)

    async def click() -> tuple[str, bool]:
        task = asyncio.create_task(view.verify_chain())
        await asyncio.sleep(0)  # the task ran up to its first await: the worker thread
        during = view.status, view._button.disabled
        await task
        return during

    status, disabled = asyncio.run(click())
    # A blocking verify would have finished before the loop got control back.
    assert status.startswith("⏳ verifying") and disabled
    assert view.status == f"✅ chain intact: {rm.head_seq()} entries" and not view._button.disabled
