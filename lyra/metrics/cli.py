"""``lyra metrics serve|targets``, and ``lyra serve`` with its metrics beside it.

``lyra.cli`` mounts :data:`metrics_app` and, for ``lyra serve``, :func:`serve_with_metrics`:
the auth proxy's own ``serve_command`` (unchanged) run inside :func:`serve_metrics`, with two
more options (``--metrics-port``, ``--metrics-targets``).
"""

from __future__ import annotations

import inspect
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

metrics_app = typer.Typer(help="Prometheus metrics: the database exporter and the targets file.",
                          no_args_is_help=True)

_PORT_HELP = "Loopback port of the database-backed /metrics (0: any free; recorded in the database)."
_TARGETS_HELP = "Prometheus file_sd targets file (default $LYRA_HOME/prometheus/targets.json)."


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


@metrics_app.command("serve")
def metrics_serve(
    port: Annotated[int, typer.Option(help=_PORT_HELP)] = 0,
    targets_file: Annotated[Path | None, typer.Option("--targets", help=_TARGETS_HELP)] = None,
    refresh: Annotated[float, typer.Option(help="Seconds between rewrites of the targets file.")] = 10.0,
    verify_every: Annotated[float, typer.Option(help="Seconds between full audit verifications (0: never).")
                            ] = 3600.0,
    seconds: Annotated[float, typer.Option(help="Stop after N seconds (0: until Ctrl-C).")] = 0.0,
) -> None:
    """Serve the database-backed metrics and keep the targets file current (without `lyra serve`)."""
    from lyra.metrics.serve import serve_metrics

    done = threading.Event()
    old = {s: signal.signal(s, lambda *_: done.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with serve_metrics(port=port, targets_file=targets_file, refresh_s=refresh,
                           verify_every_s=verify_every) as sm:
            if sm is None or not sm.endpoint.port:
                _fail("the metrics server could not start (see the warning above)")
                return
            typer.echo(f"lyra metrics: {sm.endpoint.url} (targets: {sm.targets_file})")
            done.wait(seconds or None)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@metrics_app.command("targets")
def metrics_targets(
    write: Annotated[Path | None, typer.Option(help="Write the file_sd file here instead of printing it.")
                     ] = None,
) -> None:
    """Print (or write) the Prometheus file_sd targets of this host's recorded endpoints."""
    import json

    from lyra.bootstrap import open_engine
    from lyra.metrics.serve import targets, write_targets

    _, engine = open_engine()
    try:
        if write is not None:
            try:
                n = write_targets(engine, write)
            except OSError as exc:
                _fail(f"cannot write {write}: {exc.strerror or exc}")
            typer.echo(f"{n} targets written to {write}")
        else:
            typer.echo(json.dumps(targets(engine), indent=2))
    finally:
        engine.dispose()


def commission_command(*, as_json: bool = False) -> None:
    """``lyra doctor --commission``: print the checklist (or JSON); exit 1 if anything failed."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from lyra.metrics.commission import FAIL, run_commission
    from lyra.metrics.commission import as_json as to_json
    from lyra.settings import load_settings

    try:
        settings = load_settings()
    except Exception as exc:
        _fail(f"settings: {exc}")
        return
    checks = run_commission(settings)
    if as_json:
        typer.echo(to_json(checks))
    else:
        colour = {"pass": "green", "warn": "yellow", "fail": "red"}
        t = Table(title="lyra doctor --commission")
        for col in ("component", "status", "detail", "fix"):
            t.add_column(col, overflow="fold")
        for c in checks:
            t.add_row(c.name, f"[{colour[c.status]}]{c.status.upper()}[/]", escape(c.detail), escape(c.fix))
        Console().print(t)
    if any(c.status == FAIL for c in checks):
        raise typer.Exit(1)


def _serve_with_metrics_factory() -> Any:
    """``lyra serve``'s command with ``--metrics-port``/``--metrics-targets`` added."""
    from lyra.auth.serve import serve_command

    def serve_with_metrics(**kwargs: Any) -> None:
        from lyra.metrics.serve import serve_metrics

        port = kwargs.pop("metrics_port")
        targets_file = kwargs.pop("metrics_targets")
        with serve_metrics(demo=bool(kwargs.get("demo")), port=port, targets_file=targets_file) as sm:
            if sm is not None:
                typer.echo(f"lyra serve: metrics on {sm.endpoint.url}, targets in {sm.targets_file}",
                           err=True)
            serve_command(**kwargs)

    sig = inspect.signature(serve_command, eval_str=True)
    extra = [
        inspect.Parameter("metrics_port", inspect.Parameter.KEYWORD_ONLY, default=0,
                          annotation=Annotated[int, typer.Option(help=_PORT_HELP)]),
        inspect.Parameter("metrics_targets", inspect.Parameter.KEYWORD_ONLY, default=None,
                          annotation=Annotated[Path | None, typer.Option(help=_TARGETS_HELP)]),
    ]
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()] + extra
    serve_with_metrics.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    serve_with_metrics.__annotations__ = {p.name: p.annotation for p in params}
    serve_with_metrics.__doc__ = serve_command.__doc__
    return serve_with_metrics


serve_with_metrics = _serve_with_metrics_factory()

__all__ = ["metrics_app", "serve_with_metrics"]
