"""``lyra tax``: import AUD rates, print or write the ATO capital gains report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lyra.core.errors import LyraError, ValidationError
from lyra.tax.rates import stored_rates_path

tax_app = typer.Typer(help="Australian (ATO) capital gains tax report.", no_args_is_help=True)
err = Console(stderr=True)


def _fail(msg: str) -> None:
    err.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(2)


@tax_app.command("import-rates")
def import_rates(
    path: Annotated[Path, typer.Argument(help="An RBA F11.1 CSV (f11.1-data.csv, or .csv.gz).")],
) -> None:
    """Check an RBA F11.1 exchange-rate file and store its AUD/USD rates for the report."""
    from lyra.settings import load_settings
    from lyra.tax.rates import load_rba_f11, write_rates_csv

    try:
        table = load_rba_f11(path)
        dest = stored_rates_path(load_settings().home)
        write_rates_csv(table, dest)
    except LyraError as exc:
        _fail(str(exc))
    err.print(f"[green]stored[/] {len(table)} AUD/USD rates {table.first_day} .. {table.last_day} in {dest}")


@tax_app.command("report")
def report_command(
    fy: Annotated[int, typer.Option(help="Financial year by its end: 2025 = 1 Jul 2024 - 30 Jun 2025.")],
    entity: Annotated[str, typer.Option(help="individual, trust, super (complying fund) or company.")]
    = "individual",
    losses_carried: Annotated[list[str] | None, typer.Option(
        "--losses-carried", help="Net capital loss from an earlier year, FY:AMOUNT (repeat).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
    session: Annotated[list[str] | None, typer.Option(help="Only these sessions (repeat).")] = None,
    lots: Annotated[Path | None, typer.Option(
        help="JSON {disposal fill key: [lot fill keys]} for specific identification.")] = None,
    personal_use: Annotated[list[str] | None, typer.Option(
        "--personal-use", help="A lot (fill key) that is a personal use asset (repeat).")] = None,
    trader: Annotated[bool, typer.Option(help="Holdings are trading stock (no CGT, no discount).")] = False,
    rates: Annotated[Path | None, typer.Option(help="An RBA F11.1 CSV instead of the stored rates.")] = None,
    allow_unmatched: Annotated[bool, typer.Option(
        help="Flag disposals larger than the holdings instead of stopping.")] = False,
    opening: Annotated[Path | None, typer.Option(
        help="CSV of parcels held before the ledger starts: asset,quantity,acquired,cost_base_aud[,lot].")]
    = None,
) -> None:
    """The capital gains schedule and summary of one financial year (nothing is written on error)."""
    try:
        text = _report_text(fy, entity, losses_carried or [], fmt, session, lots, personal_use or [],
                            trader, rates, allow_unmatched, opening)
    except LyraError as exc:
        _fail(str(exc))
    if output is None:
        sys.stdout.write(text)
        return
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(output)  # all or nothing
    err.print(f"[green]written[/] {output}")


def _report_text(fy: int, entity: str, losses_carried: list[str], fmt: str, session: list[str] | None,
                 lots: Path | None, personal_use: list[str], trader: bool, rates: Path | None,
                 allow_unmatched: bool, opening: Path | None = None) -> str:
    from lyra.bootstrap import open_engine
    from lyra.tax.report import entity_kind, parse_carried_losses
    from lyra.tax.service import report_text

    if fmt not in ("csv", "json"):
        raise ValidationError("format", fmt, "unknown format", "use csv or json")
    entity_kind(entity)  # refuse a bad entity before touching anything
    carried = parse_carried_losses(losses_carried)
    lot_map = _read_lots(lots) if lots is not None else None
    settings, engine = open_engine()
    try:
        return report_text(engine, settings.home, fmt=fmt, fy=fy, entity=entity, losses_carried=carried,
                           sessions=session, lots=lot_map, personal_use=personal_use, trader=trader,
                           rates=rates, allow_unmatched=allow_unmatched, opening=opening)
    finally:
        engine.dispose()


def _read_lots(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValidationError("lots", str(path), f"not a readable JSON file: {exc}") from None
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
            for k, v in data.items()):
        raise ValidationError("lots", str(path), "must map each disposal fill key to a list of lot fill keys")
    return data


#: lyra.tax.service.HISTORY_FORMATS, spelled out: importing it would slow every `lyra` start.
HISTORY_FORMATS = ("csv", "parquet", "xlsx", "koinly", "cointracking", "ctc")


@tax_app.command("history")
def history_command(
    output: Annotated[Path, typer.Option(help="The file to write.")],
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(HISTORY_FORMATS)}.")] = "csv",
    start: Annotated[str | None, typer.Option(help="ISO time (UTC), inclusive.")] = None,
    end: Annotated[str | None, typer.Option(help="ISO time (UTC), exclusive.")] = None,
    venue: Annotated[str | None, typer.Option(help="Only this venue.")] = None,
    instrument: Annotated[str | None, typer.Option(help="Only this instrument (venue:BASE/QUOTE).")] = None,
    strategy: Annotated[str | None, typer.Option(help="Only sessions running this strategy.")] = None,
    session: Annotated[str | None, typer.Option(help="Only this session.")] = None,
) -> None:
    """Export the trade history: every fill with its order, session, origin, fee and log hash."""
    from lyra.bootstrap import open_engine
    from lyra.core.timeutil import datetime_to_ms, parse_utc
    from lyra.tax.history import read_history
    from lyra.tax.service import write_history

    try:
        if fmt not in HISTORY_FORMATS:
            raise ValidationError("format", fmt, "unknown format",
                                  "use one of " + ", ".join(HISTORY_FORMATS))
        s = datetime_to_ms(parse_utc(start)) if start else None
        e = datetime_to_ms(parse_utc(end)) if end else None
        _, engine = open_engine()
        try:
            rows = read_history(engine, start_ts=s, end_ts=e, venue=venue, instrument=instrument,
                                strategy=strategy, session=session)
        finally:
            engine.dispose()
    except LyraError as exc:
        _fail(str(exc))
    try:
        write_history(rows, fmt, output)
    except LyraError as exc:
        _fail(str(exc))
    err.print(f"[green]written[/] {len(rows)} fills to {output}")
