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
        from rich.markup import escape

        _console(stderr=True).print(f"[red]error: {escape(str(exc))}[/red]", markup=True,
                                    highlight=False, soft_wrap=True)
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
        console = _console()
        console.print(res.to_rich(title=title))
        if res.ok:
            console.print(f"{title}: clean (no bad rows; {len(res.gaps):,} gaps)", highlight=False)
        else:
            console.print(f"[red]{title}: NOT clean: {res.bad_rows:,} bad rows[/red] "
                          "(reasons in the table)", highlight=False)

    _run(body)


@data_app.command("download")
def download_cmd(
    exchange: Annotated[str, typer.Option("--exchange", help="venue, e.g. binance")],
    symbol: Annotated[str, typer.Option("--symbol", help="unified symbol, e.g. BTC/USDT")],
    since: Annotated[str, typer.Option("--since", help="UTC start, e.g. 2024-01-01")],
    timeframe: Annotated[str, typer.Option("--timeframe", help="candle size, or 'trades'")] = "1m",
    until: Annotated[str | None, typer.Option("--until", help="UTC end (exclusive); default now")] = None,
    api_url: Annotated[str | None, typer.Option(
        "--api-url", help="the venue's REST host, e.g. a mirror or a local fake "
                          "(http://127.0.0.1:8081); default: the venue's own")] = None,
    retry_delay: Annotated[float, typer.Option(
        "--retry-delay",
        help="first pause before retrying an unreachable venue, in seconds (doubles, 5 tries)")] = 0.5,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="progress bar (default: when stderr is a terminal)")] = None,
) -> None:
    """Download history from a venue through ccxt, page by page, into the local store.

    Resumable: a second run starts after the last stored candle (or trade) and fetches only
    what is missing, so an interrupted download is simply run again.
    """
    import math
    import sys

    def body() -> None:
        import ccxt

        from lyra.core.errors import TemporaryError
        from lyra.feeds.download import download_ohlcv, download_trades, make_exchange, spot_markets_only

        if not (math.isfinite(retry_delay) and 0 <= retry_delay <= 60):
            raise LyraError(f"--retry-delay={retry_delay!r}: must be a finite number of seconds "
                            "between 0 and 60")
        ex = make_exchange(exchange, api_url=api_url)
        if ":" not in symbol:  # a spot symbol: derivatives markets need not be loaded
            spot_markets_only(ex)
        where = api_url or (ex.urls.get("www") if isinstance(ex.urls, dict) else None) or exchange
        show = sys.stderr.isatty() if progress is None else progress
        try:
            if timeframe == "trades":
                res = download_trades(ex, symbol, since, until, _store(), progress=show,
                                      retry_delay=retry_delay)
            else:
                res = download_ohlcv(ex, symbol, timeframe, since, until, _store(), progress=show,
                                     retry_delay=retry_delay)
        except TemporaryError as exc:
            first = str(exc).splitlines()[0][:200]
            raise LyraError(f"cannot reach {exchange} at {where}: {first} (check the network, "
                            "the venue's status or --api-url; run the same command again to "
                            "resume)") from None
        except ccxt.BaseError as exc:
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise LyraError(f"{exchange} refused the request: {type(exc).__name__}: {first}") from None
        resumed = ""
        if res.resumed_from is not None:
            resumed = f" (resumed after {_fmt_time(pd.Timestamp(res.resumed_from, unit='ms'))} UTC)"
        span = ""
        if res.first_ts is not None and res.last_ts is not None:
            span = (f", {_fmt_time(pd.Timestamp(res.first_ts, unit='ms'))} → "
                    f"{_fmt_time(pd.Timestamp(res.last_ts, unit='ms'))} UTC")
        _console().print(f"{res.exchange} {res.symbol} {res.timeframe}: {res.fetched:,} rows "
                         f"fetched, {res.written:,} written in {res.requests} requests"
                         f"{span}{resumed}", highlight=False)

    _run(body)
