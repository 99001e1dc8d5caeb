"""``lyra report tearsheet [SESSION_ID] [--strategy NAME] [--venue NAME] -o FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

report_app = typer.Typer(help="Reports: offline HTML tear sheets.", no_args_is_help=True)


@report_app.command("tearsheet")
def tearsheet(
    out: Annotated[Path, typer.Option("-o", "--out", help="HTML file to write.")],
    session_id: Annotated[str | None, typer.Argument(help="One session.")] = None,
    strategy: Annotated[str | None, typer.Option(help="Every session running this strategy.")] = None,
    venue: Annotated[str | None, typer.Option(help="Every session trading on this venue.")] = None,
) -> None:
    """Write a tear sheet (Bokeh inlined: opens offline) of SESSION_ID, or of every session
    matching --strategy and/or --venue taken as one book."""
    from lyra.bootstrap import open_engine
    from lyra.core.errors import ValidationError
    from lyra.reports.tearsheet import write_tearsheet

    settings, engine = open_engine()
    try:
        write_tearsheet(engine, out, settings.market_dir, session=session_id, strategy=strategy, venue=venue)
    except ValidationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    typer.echo(str(out))
