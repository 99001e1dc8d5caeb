"""``lyra report tearsheet SESSION_ID -o FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

report_app = typer.Typer(help="Reports: offline HTML tear sheets.", no_args_is_help=True)


@report_app.command("tearsheet")
def tearsheet(
    session_id: str,
    out: Annotated[Path, typer.Option("-o", "--out", help="HTML file to write.")],
) -> None:
    """Write SESSION_ID's tear sheet (Bokeh inlined: opens offline)."""
    from lyra.bootstrap import open_engine
    from lyra.core.errors import ValidationError
    from lyra.reports.tearsheet import write_session_tearsheet

    settings, engine = open_engine()
    try:
        write_session_tearsheet(engine, session_id, out, settings.market_dir)
    except ValidationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    typer.echo(str(out))
