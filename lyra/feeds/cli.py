"""``lyra data ...``: look at, import into and check the local market-data store.

The store lives under ``lyra.settings.load_settings().market_dir`` (``$LYRA_HOME/market``).
Errors print one red line naming the problem and exit with code 2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from lyra.core.errors import LyraError
from lyra.feeds.importer import import_file
from lyra.feeds.store import MarketStore
from lyra.feeds.validation import ValidationConfig, validate_bars, validate_trades

data_app = typer.Typer(help="Market data: list, import and check stored datasets.",
                       no_args_is_help=True)

T = TypeVar("T")


def _store() -> MarketStore:
    from lyra.settings import load_settings

    return MarketStore(load_settings().market_dir)


def _console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, width=160, soft_wrap=False)


def _run(fn: Callable[[], T]) -> T:
    """Run a command body; a LyraError becomes one red line and exit code 2."""
    try:
        return fn()
    except LyraError as exc:
        _console(stderr=True).print(f"[red]error: {exc}[/red]", markup=True, highlight=False)
        raise typer.Exit(code=2) from None


def _fmt_time(t: object) -> str:
    return "" if t is None or pd.isna(t) else pd.Timestamp(t).strftime("%Y-%m-%d %H:%M")


@data_app.command("list")
def list_cmd() -> None:
    """Table of stored datasets: range, rows, gaps."""

    def body() -> None:
        df = _store().list_datasets()
        console = _console()
        if df.empty:
            console.print("no datasets yet: import one with `lyra data import FILE`")
            return
        table = Table(title="market data store")
        for col in ("exchange", "symbol", "timeframe", "first", "last", "rows", "parts", "gaps",
                    "status"):
            table.add_column(col, justify="right" if col in ("rows", "parts", "gaps") else "left")
        for r in df.itertuples():
            gaps = "" if pd.isna(r.gaps) else f"{int(r.gaps):,}"
            style = None if r.status == "ok" else "red"
            table.add_row(r.exchange, r.symbol, r.timeframe, _fmt_time(r.first),
                          _fmt_time(r.last), f"{int(r.rows):,}", str(r.parts), gaps,
                          str(r.status), style=style)
        console.print(table)

    _run(body)


@data_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="uniform CSV(.gz) or Parquet file")],
    exchange: Annotated[str | None, typer.Option(help="default: from the file name")] = None,
    symbol: Annotated[str | None, typer.Option(help="default: from the file name")] = None,
    timeframe: Annotated[str | None, typer.Option(help="default: from the file name")] = None,
    reject: Annotated[bool, typer.Option(help="refuse the file if any row is bad")] = False,
) -> None:
    """Import a file into the store (bad rows are quarantined and listed)."""

    def body() -> None:
        cfg = ValidationConfig(policy="reject" if reject else "quarantine")
        res = import_file(file, exchange, symbol, timeframe, store=_store(), config=cfg)
        console = _console()
        console.print(
            f"{res.key}: read {res.rows_read:,} rows, added {res.rows_added:,}, "
            f"quarantined {res.rows_quarantined:,}, gaps {res.gaps:,} "
            f"({res.missing_bars:,} missing bars)", highlight=False)
        if not res.quarantine.empty:
            table = Table(title="quarantined rows")
            for col in ("time", "reason", "detail"):
                table.add_column(col)
            for q in res.quarantine.head(20).itertuples():
                table.add_row(_fmt_time(q.time), str(q.reason), str(q.detail))
            console.print(table)

    _run(body)


@data_app.command("quality")
def quality_cmd(
    exchange: Annotated[str, typer.Argument()],
    symbol: Annotated[str, typer.Argument()],
    timeframe: Annotated[str, typer.Argument(help="bar timeframe, or 'trades'")],
) -> None:
    """The quality report of one stored dataset."""

    def body() -> None:
        store = _store()
        title = f"{exchange} {symbol} {timeframe}"
        if timeframe == "trades":
            res = validate_trades(store.read_trades(exchange, symbol))
        else:
            res = validate_bars(store.read_bars(exchange, symbol, timeframe), timeframe)
            if res.rows == 0:
                raise LyraError(f"no stored bars for {title}; see `lyra data list`")
        _console().print(res.to_rich(title=title))

    _run(body)
