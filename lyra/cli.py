"""The ``lyra`` command."""

from __future__ import annotations

import contextlib
import errno
import importlib
import importlib.metadata
import json
import logging
import sys
import traceback
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
        self.commands[cmd_name] = loaded
        return loaded

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


class CommandUnavailable(LyraError):
    """A sub-command's module failed to import: the install is broken. Loud, never skipped."""


def _load(name: str, entry: _Lazy) -> Any:
    """Import ``entry``'s module and build its click command exactly as ``add_typer`` would.

    A module that fails to import raises :class:`CommandUnavailable` naming the command, the
    module and the cause: silently dropping ``lyra kill`` from a broken install would let an
    operator believe there is no such command when it matters most.
    """
    try:
        mod = importlib.import_module(entry.module)
    except Exception as exc:  # any failure at import: a missing package, a syntax error...
        raise CommandUnavailable(
            f"`lyra {name}` is unavailable: importing {entry.module} failed: "
            f"{type(exc).__name__}: {exc} (repair the install: `pip install -e .`; "
            "`lyra --debug ...` shows the traceback)") from exc
    sub = getattr(mod, entry.attr, None)
    holder = typer.Typer()
    holder.callback()(lambda: None)  # a callback makes typer build a group to pick from
    if isinstance(sub, typer.Typer):
        holder.add_typer(sub, name=name, help=entry.help_text)
    elif callable(sub):
        holder.command(name, help=entry.help_text)(sub)
    else:
        raise CommandUnavailable(f"`lyra {name}` is unavailable: {entry.module} has no {entry.attr}")
    group = typer.main.get_command(holder)
    assert isinstance(group, TyperGroup)
    return group.commands[name]


_HELP = "Lyra: research and paper-trading workbench for crypto markets."
app = typer.Typer(help=_HELP, no_args_is_help=True, pretty_exceptions_enable=False, cls=_LazyGroup)
audit_app = typer.Typer(help="The tamper-evident event log: verify, repair, replay.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("lyra")


def _fail(msg: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(code)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(importlib.metadata.version("lyra"))
        raise typer.Exit()


@app.callback(help=_HELP)
def _top(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the Lyra version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="On an error, show the full traceback.")] = False,
) -> None:
    # --debug is read by main() from the command line, before any command runs.
    pass


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
    from lyra.auth.tokens import ensure_signing_key_file
    from lyra.settings import load_settings

    settings = load_settings()
    key = settings.home / "secrets" / "jwt.key"
    if not settings.jwt_secret and ensure_signing_key_file(key):  # so `lyra serve` starts
        console.print(f"created the dashboards' signing key {key} (owner-only)")


@app.command()
def doctor(
    commission: Annotated[bool, typer.Option(help="Every component: pass/warn/fail, and the fix.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --commission: JSON output.")] = False,
) -> None:
    """Check Python, packages, the database and the data; exit 1 if anything is wrong."""
    if commission:  # lyra.metrics.commission: the components one by one, each failure with its fix
        from lyra.metrics.cli import commission_command

        commission_command(as_json=as_json)
        return
    from lyra.bootstrap import run_checks

    checks = run_checks()
    writable = _home_writable()
    if writable is not None:
        checks.append(writable)
    from lyra.backup.status import backup_check  # the age of the last verified backup
    from lyra.settings import load_settings

    with contextlib.suppress(LyraError):  # bad settings: the settings row above says so
        checks.append(backup_check(load_settings().home / "backups"))
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


#: ``lyra audit verify`` exit codes: 0 intact, 1 tampered or broken, 3 the mirror's tail is
#: only incomplete (a crash or a full disk: ``lyra audit repair`` completes it).
VERIFY_TAMPERED = 1
VERIFY_INCOMPLETE_TAIL = 3


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the whole hash chain and the JSON-lines mirror; name the first bad entry.

    Exit 0: intact. Exit 1: tampered or broken. Exit 3: only the mirror's tail is incomplete
    (what a crash or a full disk leaves): run `lyra audit repair`.
    """
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
    if report.incomplete_tail:
        err_console.print(f"[bold yellow]INCOMPLETE TAIL[/] (not tampering): {report.first_bad}",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(VERIFY_INCOMPLETE_TAIL)
    err_console.print(f"[bold red]TAMPERED or BROKEN[/]: first bad {report.first_bad}",
                      highlight=False, soft_wrap=True)
    for p in report.problems[1:]:
        err_console.print(f"  also: {p}", highlight=False, soft_wrap=True)
    raise typer.Exit(VERIFY_TAMPERED)


@audit_app.command("repair")
def audit_repair() -> None:
    """Complete the mirror's incomplete tail from the database (never the other way).

    Refuses, exit 1, if the log shows tampering or damage.
    """
    from lyra.audit.verify import repair
    from lyra.bootstrap import open_engine
    from lyra.core.errors import IntegrityError

    try:
        settings, engine = open_engine()
        res = repair(engine, settings.audit_dir / "events.jsonl")
    except IntegrityError as exc:
        _fail(str(exc), VERIFY_TAMPERED)
    except LyraError as exc:
        _fail(str(exc))
    if res.appended == 0 and not res.torn_line_cut:
        console.print(f"[green]ok[/]: nothing to repair ({res.entries} entries, file matches)")
        return
    cut = "cut a torn last line, " if res.torn_line_cut else ""
    console.print(f"[green]repaired[/]: {cut}appended {res.appended} entries from the database; "
                  f"{res.entries} entries, chain intact, file matches")


@audit_app.command("replay")
def audit_replay(
    until: Annotated[str | None, typer.Option(help="ISO time (UTC); state as of this moment.")] = None,
    session: Annotated[str | None, typer.Option(help="Only this session.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Rebuild orders and positions from the event log alone, as of a moment."""
    from lyra.audit import EventLog, replay, state_as_rows
    from lyra.bootstrap import open_engine
    from lyra.core.errors import ValidationError
    from lyra.core.timeutil import datetime_to_ms, parse_utc

    try:
        try:
            until_ms = datetime_to_ms(parse_utc(until)) if until else None
        except ValidationError as exc:
            raise ValidationError("--until", until, exc.problem, exc.hint) from None
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


def _home_writable() -> tuple[str, bool, str] | None:
    """Can Lyra write in LYRA_HOME? Tried with a real file: a read-only mount or a folder of
    another user passes ``is_dir()`` but fails every command that records anything."""
    import tempfile

    from lyra.settings import load_settings

    try:
        home = load_settings().home
    except LyraError:
        return None  # the settings check already failed and says why
    if not home.is_dir():
        return None  # the home check says to run `lyra init`
    try:
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
    except OSError as exc:
        return ("home writable", False, f"{home}: {exc.strerror or exc} (fix the permissions or "
                "set LYRA_HOME to a writable folder)")
    return ("home writable", True, str(home))


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
_mount_optional("session", "lyra.session.cli", "session_app",
                "Sessions: start, status, stop, resume, standby.")
_mount_optional("run", "lyra.ops.cli", "run_command", "Execute a notebook with papermill, recorded as a run.",
                group=False)
_mount_optional("runs", "lyra.ops.cli", "runs_app", "Notebook runs: list, show.")
_mount_optional("report", "lyra.reports.cli", "report_app", "Reports: offline HTML tear sheets.")
_mount_optional("schedule", "lyra.ops.cli", "schedule_app", "Scheduled notebook runs.")
_mount_optional("user", "lyra.auth.cli", "user_app", "Users: add, list, set-role, reset-mfa, lock.")
_mount_optional("apikey", "lyra.auth.cli", "apikey_app", "API keys: create, rotate, revoke.")
# `lyra serve` runs the auth proxy's command with the database-backed metrics beside it.
_mount_optional("serve", "lyra.metrics.cli", "serve_with_metrics",
                "Serve the dashboards behind the auth proxy.", group=False)
_mount_optional("metrics", "lyra.metrics.cli", "metrics_app", "Prometheus metrics: exporter, targets file.")
_mount_optional("risk", "lyra.risk.cli", "risk_app", "Risk: trading state, limits, breakers, re-arm.")
_mount_optional("tax", "lyra.tax.cli", "tax_app", "Australian capital gains tax report, AUD rates.")
_mount_optional("kill", "lyra.risk.cli", "kill_command", "Pull the kill switch: cancel, flatten, halt.",
                group=False)
_mount_optional("backup", "lyra.backup.cli", "backup_app", "Backups: create, list, verify, prune.")
_mount_optional("restore", "lyra.backup.cli", "restore_command",
                "Restore a backup into a new home, replaying the log up to a time.", group=False)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _os_error(exc: OSError) -> str:
    """One line naming the file and the fix for the OS errors a user can meet."""
    where = f"{exc.filename}: " if exc.filename else ""
    what = exc.strerror or _one_line(exc) or type(exc).__name__
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"{where}{what} (the folder is read-only or not yours: fix its permissions, or "
                "set LYRA_HOME to a writable folder)")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{where}{what}: the disk is full (free some space, then run the command again)"
    if exc.errno == errno.EADDRINUSE:
        return f"{what}: the port is already in use (stop the other server or pass another --port)"
    if exc.errno == errno.ENOENT:
        return f"{where}no such file or folder"
    return f"{where}{what}"


def _database_error(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = _one_line(str(orig).splitlines()[0] if str(orig) else type(orig).__name__)
    low = text.lower()
    if "readonly" in low or "read-only" in low or "unable to open database file" in low:
        return (f"database: {text} (the database file or its folder is read-only: set LYRA_HOME "
                "to a writable folder or fix the permissions)")
    if "disk is full" in low or "no space" in low:
        return f"database: {text} (the disk is full: free some space, then run the command again)"
    return f"database: {text} (check LYRA_DATABASE_URL; `lyra doctor` checks the connection)"


def _pydantic_error(exc: BaseException) -> str:
    errors = exc.errors()  # type: ignore[attr-defined]
    if not errors:
        return _one_line(exc)
    err = errors[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "value"
    value = err.get("input")
    shown = value if isinstance(value, str | int | float | bool) or value is None else type(value).__name__
    return f"{field}={shown!r}: {str(err.get('msg', '')).removeprefix('Value error, ')}"


def explain_error(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message with the fix) for an error no command handled itself.

    Expected failures (bad input, a read-only or full disk, a busy port, a database that
    refuses) exit 2; anything else is a bug and exits 1, still without a traceback unless
    ``--debug``.
    """
    if isinstance(exc, CommandUnavailable):
        return 1, _one_line(exc)
    if isinstance(exc, LyraError):
        return 2, _one_line(exc)
    if isinstance(exc, OSError):
        return 2, _os_error(exc)
    mod = type(exc).__module__
    if mod.startswith("sqlalchemy") and type(exc).__name__ in (
            "OperationalError", "ProgrammingError", "DatabaseError", "InterfaceError"):
        return 2, _database_error(exc)
    if mod.startswith("pydantic") and hasattr(exc, "errors"):
        return 2, _pydantic_error(exc)
    if isinstance(exc, UnicodeDecodeError):
        return 2, f"not a text file ({exc.reason} at byte {exc.start}): pass a UTF-8 text file"
    if isinstance(exc, ValueError | OverflowError):
        return 2, f"invalid value: {_one_line(exc)}"
    if isinstance(exc, MemoryError):
        return 2, "out of memory: use a smaller date range or window"
    return 1, (f"unexpected {type(exc).__name__}: {_one_line(exc)} (a bug: rerun with "
               "`lyra --debug ...` for the traceback and report it)")


def main() -> None:
    """Entry point of the ``lyra`` console script: one place turns every error a command did
    not handle into one red line (the traceback only with ``lyra --debug``)."""
    if sys.argv[1:] == ["--version"]:  # the cheapest answer: no command tree to build
        print(importlib.metadata.version("lyra"))
        return
    debug = "--debug" in sys.argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration step is noise
    try:
        # Not standalone: click's own errors come back here, to be printed as one line too.
        rv = app(standalone_mode=False)
    except KeyboardInterrupt:
        err_console.print("[bold red]error:[/] interrupted", highlight=False)
        sys.exit(130)
    except Exception as exc:
        if isinstance(exc, BrokenPipeError):  # `lyra data list | head`: the reader left
            sys.exit(0)
        if _is_click_error(exc):
            sys.exit(_usage_error(exc))
        if debug:
            traceback.print_exc()
        code, message = explain_error(exc)
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        sys.exit(code)
    sys.exit(rv if isinstance(rv, int) else 0)


def _is_click_error(exc: BaseException) -> bool:
    # Typer runs on its own copy of Click (typer._click) or on Click itself.
    return type(exc).__module__.startswith(("typer._click", "click"))


def _given_value(param: Any) -> str | None:
    """What the user typed for ``param`` (Click's errors name the option, not the value)."""
    opts = [o for o in getattr(param, "opts", []) or [] if o.startswith("-")]
    args = sys.argv[1:]
    for i, a in enumerate(args):
        for o in opts:
            if a == o and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(o + "="):
                return a[len(o) + 1:]
    return None


def _usage_error(exc: Any) -> int:
    """Print a Click error (a bad option value, a missing argument...) as one line; the code."""
    from rich.markup import escape

    name = type(exc).__name__
    if name == "NoArgsIsHelpError":  # `lyra` or `lyra data` alone: the help, as before
        exc.show()
        return int(exc.exit_code)
    if name == "Abort":
        err_console.print("[bold red]error:[/] aborted (a prompt got no answer: run it in a terminal "
                          "or pipe the answer on stdin)", highlight=False, soft_wrap=True)
        return 1
    message = _one_line(exc.format_message()) if hasattr(exc, "format_message") else _one_line(exc)
    given = _given_value(getattr(exc, "param", None))
    if given is not None:
        message += f" (given: {given!r})"
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    err_console.print(f"[bold red]error:[/] {escape(message)}{where}", highlight=False, soft_wrap=True)
    return int(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
