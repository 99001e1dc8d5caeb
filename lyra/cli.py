"""The ``lyra`` command."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from lyra.core.errors import LyraError


@dataclass(frozen=True)
class _Lazy:
    """A sub-command whose module is imported only when it is invoked."""

    module: str
    attr: str
    help_text: str
    is_group: bool


#: Sub-commands in other modules, by name, in the order ``lyra --help`` lists them.
_LAZY: dict[str, _Lazy] = {}


class _LazyGroup(TyperGroup):
    """The top-level group: ``lyra session ...`` imports ``lyra.session.cli`` and nothing else.

    Why: importing every sub-command module (risk pulls scipy, ops pulls papermill, feeds pulls
    pandas) cost each ``lyra`` process ~1.5 s before it did anything. ``lyra --help`` lists the
    lazy entries from their help text alone, without importing them either.
    """

    _listing = False  # True while help is being formatted: answer with placeholders

    def list_commands(self, ctx: Any) -> list[str]:  # ctx: typer's vendored click.Context
        own = super().list_commands(ctx)
        # Same order as eager mounting gave: commands, then groups, each in registration order.
        singles = [n for n in own if not isinstance(self.commands[n], TyperGroup)]
        groups = [n for n in own if isinstance(self.commands[n], TyperGroup)]
        lazy_singles = [n for n, e in _LAZY.items() if not e.is_group and n not in own]
        lazy_groups = [n for n, e in _LAZY.items() if e.is_group and n not in own]
        return singles + lazy_singles + groups + lazy_groups

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        entry = _LAZY.get(cmd_name)
        if cmd is not None or entry is None:
            return cmd
        if self._listing:
            return TyperCommand(cmd_name, help=entry.help_text)
        loaded = _load(cmd_name, entry)
        if loaded is not None:
            self.commands[cmd_name] = loaded
        return loaded

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _load(name: str, entry: _Lazy) -> Any:
    """Import ``entry``'s module and build its click command exactly as ``add_typer`` would."""
    try:
        mod = importlib.import_module(entry.module)
    except ImportError as exc:  # pragma: no cover - only in partial installs
        log.debug("lyra %s unavailable: %s", name, exc)
        return None
    sub = getattr(mod, entry.attr, None)
    holder = typer.Typer()
    holder.callback()(lambda: None)  # a callback makes typer build a group to pick from
    if isinstance(sub, typer.Typer):
        holder.add_typer(sub, name=name, help=entry.help_text)
    elif callable(sub):
        holder.command(name, help=entry.help_text)(sub)
    else:  # pragma: no cover - a module without the attribute
        return None
    group = typer.main.get_command(holder)
    assert isinstance(group, TyperGroup)
    return group.commands[name]


app = typer.Typer(help="Lyra: research and paper-trading workbench for crypto markets.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=_LazyGroup)
audit_app = typer.Typer(help="The tamper-evident event log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("lyra")


def _fail(msg: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(code)


def _mount_optional(name: str, module: str, attr: str, help_text: str, *, group: bool = True) -> None:
    """Mount ``module.attr`` as ``lyra <name>``: a ``typer.Typer`` group, or (``group=False``)
    a single command function. Nothing is imported here: the module loads when the
    sub-command runs (see _LazyGroup), and a module missing from a partial install is skipped.
    """
    _LAZY[name] = _Lazy(module, attr, help_text, group)


@app.command()
def init(
    load_samples: Annotated[bool, typer.Option(help="Load the shipped sample market data.")] = True,
) -> None:
    """Create LYRA_HOME, migrate the database to the latest schema, load sample data."""
    from lyra.bootstrap import initialise

    try:
        summary = initialise(load_samples=load_samples, console=console)
    except LyraError as exc:
        _fail(str(exc))
    console.print(f"[green]ready[/]: home {summary['home']}, database {summary['database']} "
                  f"at {summary['revision']}, {summary['datasets']} sample datasets")


@app.command()
def doctor() -> None:
    """Check Python, packages, the database and the data; exit 1 if anything is wrong."""
    from lyra.bootstrap import run_checks

    checks = run_checks()
    table = Table(title="lyra doctor")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    ok = True
    for name, passed, detail in checks:
        ok &= passed
        table.add_row(name, "[green]ok[/]" if passed else "[red]FAIL[/]", detail)
    console.print(table)
    if not ok:
        raise typer.Exit(1)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the whole hash chain and the JSON-lines mirror; name the first bad entry."""
    from lyra.audit.verify import verify
    from lyra.bootstrap import open_engine

    try:
        settings, engine = open_engine()
    except LyraError as exc:
        _fail(str(exc))
    report = verify(engine, settings.audit_dir / "events.jsonl")
    if report.ok:
        console.print(f"[green]ok[/]: {report.entries} entries, chain intact, file matches")
        return
    err_console.print(f"[bold red]TAMPERED or BROKEN[/]: first bad {report.first_bad}")
    for p in report.problems[1:]:
        err_console.print(f"  also: {p}")
    raise typer.Exit(1)


@audit_app.command("replay")
def audit_replay(
    until: Annotated[str | None, typer.Option(help="ISO time (UTC); state as of this moment.")] = None,
    session: Annotated[str | None, typer.Option(help="Only this session.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Rebuild orders and positions from the event log alone, as of a moment."""
    from lyra.audit import EventLog, replay, state_as_rows
    from lyra.bootstrap import open_engine
    from lyra.core.timeutil import datetime_to_ms, parse_utc

    try:
        until_ms = datetime_to_ms(parse_utc(until)) if until else None
        _, engine = open_engine()
    except LyraError as exc:
        _fail(str(exc))
    state = replay(EventLog(engine).read(until_ts=until_ms, session_id=session))
    rows = state_as_rows(state)
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    _print_rows(f"positions (as of entry {state.last_seq})", rows["positions"])
    _print_rows("orders", rows["orders"])


def _print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=title)
    if not rows:
        console.print(f"{title}: none")
        return
    for k in rows[0]:
        table.add_column(k)
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r.values()))
    console.print(table)


@app.command()
def demo(
    serve: Annotated[bool, typer.Option(help="Serve the dashboards behind login at the end.")] = True,
    serve_seconds: Annotated[float, typer.Option(help="Stop serving after N seconds (0: until Ctrl-C).")] = 0,
    port: Annotated[int, typer.Option(help="Port of the login proxy.")] = 8080,
) -> None:
    """The main job: a paper session on the shipped data, the audit check, the dashboards."""
    from lyra.demo import run_demo

    try:
        out = run_demo(console, serve=serve, serve_seconds=serve_seconds, port=port)
    except LyraError as exc:
        _fail(str(exc))
    if not out["audit_ok"]:
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the Lyra version."""
    console.print(importlib.metadata.version("lyra"))


_mount_optional("data", "lyra.feeds.cli", "data_app", "Market data: download, import, list, quality.")
_mount_optional("session", "lyra.session.cli", "session_app", "Sessions: start, status, stop, resume.")
_mount_optional("run", "lyra.ops.cli", "run_command", "Execute a notebook with papermill, recorded as a run.",
                group=False)
_mount_optional("runs", "lyra.ops.cli", "runs_app", "Notebook runs: list, show.")
_mount_optional("schedule", "lyra.ops.cli", "schedule_app", "Scheduled notebook runs.")
_mount_optional("user", "lyra.auth.cli", "user_app", "Users: add, list, set-role, reset-mfa, lock.")
_mount_optional("apikey", "lyra.auth.cli", "apikey_app", "API keys: create, rotate, revoke.")
_mount_optional("serve", "lyra.auth.serve", "serve_command", "Serve the dashboards behind the auth proxy.",
                group=False)
_mount_optional("risk", "lyra.risk.cli", "risk_app", "Risk: trading state, limits, breakers, re-arm.")
_mount_optional("kill", "lyra.risk.cli", "kill_command", "Pull the kill switch: cancel, flatten, halt.",
                group=False)


def main() -> None:
    """Entry point of the ``lyra`` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration step is noise
    try:
        app()
    except LyraError as exc:  # anything a command did not handle itself
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()


