"""``lyra session start|status|stop|resume|standby``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lyra.core.errors import ConfigError, LyraError

session_app = typer.Typer(help="Paper/backtest/live sessions: start, status, stop, resume, standby.",
                          no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _fail(msg: str) -> None:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def run_session(config: Any, *, quiet: bool = False, lease: Any = None, engine: Any = None) -> Any:
    """Open (or resume) the session for ``config`` on the configured database and run it.
    ``lease``: a :class:`~lyra.session.lease.SessionLease` this process already holds (a
    standby's takeover), handed to the session so that nobody can slip in between."""

    from lyra.bootstrap import open_engine

    settings, own = open_engine()
    try:
        return _run(config, engine or own, settings, quiet, lease)
    finally:
        own.dispose()


def _run(config: Any, engine: Any, settings: Any, quiet: bool, lease: Any = None) -> Any:
    from tqdm import tqdm

    from lyra.session.factory import open_session
    from lyra.session.standby import LeaseRenewer, adopt_lease, exit_when_lost

    renewer = LeaseRenewer(lease) if lease is not None else None
    try:
        session = open_session(config, engine=engine, market_dir=settings.market_dir,
                               jsonl_path=settings.audit_dir / "events.jsonl")
        if lease is not None:
            adopt_lease(session, lease)  # already ours: the run does not acquire it again
    finally:
        if renewer is not None:
            renewer.stop()  # the session's own control plane renews it from here on
    # Fenced out by another owner: say so and make sure this process exits (lyra.session.standby).
    session.control.lease.on_lost = exit_when_lost(config.session_id, say=_say)
    feed: Any = session.feed
    total = len(feed) if hasattr(feed, "__len__") else None
    if session.recorder.resuming:
        console.print(f"resuming {config.session_id}: re-verifying {len(session.recorder.expected)} "
                      "logged entries, then continuing")
    with tqdm(total=total, unit="ev", desc=config.session_id, disable=quiet) as bar:
        last = [0]

        def progress(n: int) -> None:
            bar.update(n - last[0])
            last[0] = n

        from lyra.metrics.session import session_metrics

        # /metrics on loopback while it runs (metrics never stop the run)
        with session_metrics(session, settings=settings):
            result = session.run(on_progress=progress)
        bar.update(result.events - last[0])
    return result


def _print_result(r: Any) -> None:
    t = Table(title=f"session {r.session_id}")
    t.add_column("what")
    t.add_column("value", justify="right")
    rows = [("events", f"{r.events:,}"), ("orders", f"{r.orders:,}"), ("denied by risk", f"{r.denied:,}"),
            ("fills", f"{r.fills:,}"), ("fees", f"{r.fees:,.2f}"), ("final equity", f"{r.equity:,.2f}"),
            ("re-verified from log", f"{r.replayed_entries:,}"),
            ("status", "stopped" if r.stopped else "finished"), ("seconds", f"{r.seconds:.2f}")]
    for k, v in rows:
        t.add_row(k, v)
    for asset, amount in r.balances.items():
        t.add_row(f"balance {asset}", f"{amount:,.8f}".rstrip("0").rstrip("."))
    for iid, q in r.positions.items():
        t.add_row(f"position {iid}", str(q))
    console.print(t)


@session_app.command("start")
def start(
    config: Annotated[Path | None, typer.Option(help="Session config (TOML).")] = None,
    session_id: Annotated[str | None, typer.Option("--id", help="Session id (overrides the config).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override: key=value (JSON value).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Start a session from a config file and run it to the end of its data."""
    from lyra.session.config import check_data_range, load_session_config
    from lyra.settings import load_settings

    overrides: dict[str, Any] = {}
    for item in set_ or []:
        key, sep, raw = item.partition("=")
        if not sep:
            _fail(f"--set {item!r}: use key=value")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    if session_id:
        overrides["session_id"] = session_id
    try:
        cfg = load_session_config(config if config else {}, **overrides)
        check_data_range(cfg, load_settings().market_dir)  # before anything is written
        from lyra.session.lease import SessionLease
        from lyra.session.registry import SessionRegistry

        with _database() as engine:
            existing = SessionRegistry(engine).get(cfg.session_id)
            if existing is not None:
                SessionLease(engine, cfg.session_id).check_free()  # alive: say who owns it
                st = _status_of(engine, existing)
                raise ConfigError("session_id", cfg.session_id, f"already exists ({st})",
                                  f"use `lyra session resume {cfg.session_id}` or another id")
        result = run_session(cfg, quiet=quiet)
    except LyraError as exc:
        _fail(str(exc))
    _print_result(result)


@session_app.command("resume")
def resume(session_id: str, quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False) -> None:
    """Resume a session after a crash or stop: re-verify its log, then continue."""
    from lyra.session.config import SessionConfig
    from lyra.session.lease import SessionLease
    from lyra.session.registry import SessionRegistry

    try:
        with _database() as engine:
            row = SessionRegistry(engine).get(session_id)
            if row is None:
                raise ConfigError("session_id", session_id, "no such session", "see `lyra session status`")
            cfg = SessionConfig(**json.loads(row["config"]))
            SessionLease(engine, session_id).check_free()  # refused at once, before reading its log
        result = run_session(cfg, quiet=quiet)
    except LyraError as exc:
        _fail(str(exc))
    _print_result(result)


@session_app.command("standby")
def standby(
    session_id: str,
    ttl: Annotated[float | None, typer.Option(
        "--ttl", help="Lease seconds once this process owns the session (default: the session's lease_s).")
    ] = None,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between two looks at the owner's lease.")
                    ] = 0.25,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Give up after this many seconds (default: wait for ever).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Wait on a running session's lease; when its owner dies (or its lease expires), take it
    over with a new epoch, record session.failover, and resume it from its log."""
    from lyra.session import standby as sb

    if ttl is not None and not 1.0 <= ttl <= 3600.0:
        _fail(f"--ttl={ttl!r}: a lease lasts 1 to 3600 seconds")
    if not poll > 0:
        _fail(f"--poll={poll!r}: must be a positive number of seconds")
    try:
        from lyra.bootstrap import open_engine

        settings, engine = open_engine()
        try:
            cfg = sb.check_standby(engine, session_id)  # refused before anything is written
            sb.warm_up()
            say = _say
            say(f"standby for {session_id}: watching its lease every {poll:g} s")
            got = sb.wait_for_takeover(engine, session_id, poll_s=poll, lease_s=ttl, timeout_s=timeout,
                                       jsonl_path=settings.audit_dir / "events.jsonl", say=say)
            if got is None:
                say(f"standby for {session_id}: its owner was still alive after {timeout:g} s; giving up")
                raise typer.Exit(1)
            if isinstance(got, sb.StoodDown):
                why = f": {got.error}" if got.error else ""
                say(f"standby for {session_id}: the session ended ({got.status}{why}); nothing to take over")
                raise typer.Exit(0 if got.status in ("finished", "stopped") else 1)
            old = got.old
            was = "no owner" if old is None else f"pid {old.pid} on host {old.host} (epoch {old.epoch})"
            new = got.lease
            say(f"failover of {session_id}: {was}: {got.reason}; took over as pid {new.pid} on host "
                f"{new.host} (epoch {new.epoch}) after {got.waited_s:.2f} s; resuming from its log")
            if ttl is not None:
                cfg = cfg.model_copy(update={"lease_s": ttl})
            result = run_session(cfg, quiet=quiet, lease=got.lease)
        finally:
            engine.dispose()
    except LyraError as exc:
        _fail(str(exc))
    _print_result(result)


def _say(text: str) -> None:
    err.print(text, highlight=False, soft_wrap=True, markup=False)


@session_app.command("stop")
def stop(session_id: str) -> None:
    """Ask a running session to stop (it finishes its current step and records the stop)."""
    from lyra.session.registry import SessionRegistry

    try:
        with _database() as engine:
            reg = SessionRegistry(engine)
            row = reg.get(session_id)
            if row is None:
                raise ConfigError("session_id", session_id, "no such session", "see `lyra session status`")
            _require_running(engine, row, "nothing to stop")
            reg.request_stop(session_id)
    except LyraError as exc:
        _fail(str(exc))
    console.print(f"stop requested for {session_id}")


@session_app.command("status")
def status(session_id: Annotated[str | None, typer.Argument()] = None) -> None:
    """List sessions, or show one."""
    from datetime import UTC, datetime

    from lyra.session.lease import read_leases, session_statuses
    from lyra.session.registry import SessionRegistry

    try:
        with _database() as engine:
            reg = SessionRegistry(engine)
            rows = [reg.get(session_id)] if session_id else reg.list()
            found = [r for r in rows if r is not None]
            statuses = session_statuses(engine, found)
            leases = read_leases(engine)
    except LyraError as exc:
        _fail(str(exc))
    if session_id and not found:
        _fail(f"no session {session_id!r}")
    t = Table(title="sessions")
    for c in ("session", "mode", "status", "events", "data time", "heartbeat", "owner", "error"):
        t.add_column(c)

    def fmt(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else ""

    for r in found:
        lease = leases.get(r["session_id"])
        owner = str(r["pid"] or "")
        if lease is not None and lease.epoch > 0:
            owner = f"pid {lease.pid}@{lease.host} epoch {lease.epoch} until {fmt(lease.expires_ts)}"
        t.add_row(r["session_id"], r["mode"], statuses[r["session_id"]], f"{r['events_processed']:,}",
                  fmt(r["data_ts"]), fmt(r["heartbeat_ts"]), owner, r["error"][:80])
    console.print(t)


@contextmanager
def _database() -> Iterator[Any]:
    """The configured database's engine, disposed however the command ends."""
    from lyra.bootstrap import open_engine

    _, engine = open_engine()
    try:
        yield engine
    finally:
        engine.dispose()


def _status_of(engine: Any, row: dict[str, Any]) -> str:
    from lyra.session.lease import session_statuses

    return session_statuses(engine, [row])[row["session_id"]]


def _require_running(engine: Any, row: dict[str, Any], what: str) -> None:
    """Refuse (naming the session and what to do) unless ``row``'s session is really running."""
    from lyra.session.lease import read_lease, stale_reason

    sid = row["session_id"]
    st = _status_of(engine, row)
    if st == "stale":
        why = stale_reason(read_lease(engine, sid), int(row["heartbeat_ts"]), time.time_ns() // 1_000_000)
        raise ConfigError("session_id", sid, f"is stale: {why}; {what}",
                          f"`lyra session resume {sid}` to run it again")
    if st != "running":
        raise ConfigError("session_id", sid, f"is {st}, not running: {what}",
                          f"`lyra session resume {sid}` to run it again")
