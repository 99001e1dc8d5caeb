"""``lyra kill`` and ``lyra risk status|rearm``.

``lyra kill --all --local-admin --reason "exchange outage" [--flatten]`` halts every session
sharing the database; ``--session S1`` halts one; like re-arming, it authenticates the person.
``lyra risk rearm --all --as-user bob`` lifts it: bob's password and TOTP code are asked, and
his role (from the database, never from a flag) must be allowed to re-arm; ``LYRA_API_KEY`` or
``--local-admin`` (the OS owner of LYRA_HOME) work too (:mod:`lyra.auth.operator`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from lyra.auth.operator import (
    AsUserOpt,
    CredentialsStdinOpt,
    LocalAdminOpt,
    OperatorRefused,
    resolve_operator,
)
from lyra.core.errors import LyraError

risk_app = typer.Typer(help="Risk: trading state, limits, breakers, re-arm.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _fail(msg: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(code)


def _open() -> Any:
    """(settings, TradingStateStore, KillSwitch) on the configured database."""
    from lyra.audit import EventLog
    from lyra.bootstrap import open_engine
    from lyra.risk.killswitch import KillSwitch
    from lyra.risk.state import TradingStateStore

    settings, engine = open_engine()
    store = TradingStateStore(EventLog(engine, settings.audit_dir / "events.jsonl"))
    return settings, store, KillSwitch(store)


def _require_session(engine: Any, session_id: str) -> None:
    """Refuse to halt a session that does not exist (a typo would halt nothing real)."""
    from lyra.core.errors import ValidationError
    from lyra.session.registry import SessionRegistry

    if SessionRegistry(engine).get(session_id) is None:
        raise ValidationError("--session", session_id, "no such session: nothing was halted",
                              "`lyra session status` lists them; --all halts every session")


def _which(session: str | None, all_: bool) -> str | None:
    if (session is None) == (not all_):
        _fail("say which: --session ID (one session) or --all (every session sharing the database)")
    return session


def _operator(settings: Any, engine: Any, action: Any, path: str, *, local_admin: bool,
              as_user: str | None, credentials_stdin: bool) -> Any:
    """The authenticated person at the terminal, allowed ``action`` (a refusal is recorded)."""
    from lyra.auth.service import AuthService

    svc = AuthService.from_settings(settings, engine=engine, need_signing_key=False)
    try:
        who = resolve_operator(svc, settings.home, local_admin_flag=local_admin, as_user=as_user,
                               credentials_stdin=credentials_stdin)
        svc.authorize(who, action, path=path)
    finally:
        svc.flush_failures()
    return who


def kill_command(
    session: Annotated[str | None, typer.Option("--session", help="Halt this session (its account).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Halt every session sharing the database.")] = False,
    flatten: Annotated[bool, typer.Option("--flatten", help="Also close every position.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
    local_admin: LocalAdminOpt = False,
    as_user: AsUserOpt = None,
    credentials_stdin: CredentialsStdinOpt = False,
    actor: Annotated[str | None, typer.Option("--actor", hidden=True)] = None,
) -> None:
    """Pull the kill switch: halt, cancel every open order, optionally flatten — as an
    authenticated person whose role may pull it (--local-admin: the OS user owning LYRA_HOME,
    the quickest in an emergency; --as-user NAME with password + TOTP; or LYRA_API_KEY)."""
    from lyra.auth.permissions import Action, PermissionDenied

    if actor is not None:
        _fail("--actor is not accepted: a typed name proves nothing. Say who you are with --local-admin "
              "(the OS user owning LYRA_HOME), --as-user NAME (password + TOTP) or LYRA_API_KEY", code=3)
    target = _which(session, all_)
    store: Any = None
    try:
        settings, store, ks = _open()
        if target is not None:
            _require_session(store.engine, target)
        who = _operator(settings, store.engine, Action.PULL_KILL_SWITCH, "cli:kill",
                        local_admin=local_admin, as_user=as_user, credentials_stdin=credentials_stdin)
        req = ks.pull(session_id=target, flatten=flatten, actor=f"{who.subject} ({who.role.value})",
                      reason=reason)
    except (PermissionDenied, OperatorRefused) as exc:
        _fail(str(exc), code=3)
    except LyraError as exc:
        _fail(str(exc))
    finally:
        if store is not None:  # closed on the error paths too, not left to the garbage collector
            store.engine.dispose()
    console.print(f"[bold red]HALTED[/] {req.scope} (kill request {req.id}, "
                  f"{'cancel + flatten' if req.flatten else 'cancel open orders'}) by {req.actor}")


@risk_app.command("rearm")
def rearm_command(
    session: Annotated[str | None, typer.Option("--session", help="Re-arm this session.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Re-arm the global switch.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
    local_admin: LocalAdminOpt = False,
    as_user: AsUserOpt = None,
    credentials_stdin: CredentialsStdinOpt = False,
    role: Annotated[str | None, typer.Option("--role", hidden=True)] = None,
    actor: Annotated[str | None, typer.Option("--actor", hidden=True)] = None,
) -> None:
    """Lift a halt (kill switch or breaker) as an authenticated person whose role may re-arm
    (--as-user NAME with password + TOTP, LYRA_API_KEY, or --local-admin)."""
    from lyra.auth.permissions import Action, PermissionDenied

    if role is not None or actor is not None:
        _fail("--role/--actor are not accepted: say who you are with --as-user NAME (password + TOTP), "
              "LYRA_API_KEY or --local-admin; the role comes from your account", code=3)
    target = _which(session, all_)
    store: Any = None
    try:
        settings, store, ks = _open()
        who = _operator(settings, store.engine, Action.REARM_KILL_SWITCH, "cli:risk rearm",
                        local_admin=local_admin, as_user=as_user, credentials_stdin=credentials_stdin)
        st = ks.rearm(session_id=target, actor=who.subject, role=who.role, reason=reason)
    except (PermissionDenied, OperatorRefused) as exc:
        _fail(str(exc), code=3)
    except LyraError as exc:
        _fail(str(exc))
    finally:
        if store is not None:  # a refused re-arm must close its connections too
            store.engine.dispose()
    console.print(f"[green]re-armed[/] {st.scope} by {who.subject} ({who.role.value}); "
                  f"state {st.state.value}")


@risk_app.command("status")
def status_command(
    config: Annotated[Path | None, typer.Option("--config", help="Risk config TOML: show usage.")] = None,
    limit: Annotated[int, typer.Option(help="How many trips and kill requests to show.")] = 10,
) -> None:
    """Trading states, kill requests, breaker trips and (with --config) position-limit usage."""
    from lyra.risk.config import RiskConfig

    store: Any = None
    try:
        cfg = RiskConfig.from_toml(config) if config else None
        _, store, ks = _open()
        states = store.read_all()
        requests = ks.requests(limit)
        trips = store.recent_trips(limit)
    except LyraError as exc:
        if store is not None:
            store.engine.dispose()
        _fail(str(exc))
    t = Table(title="trading state")
    for c in ("scope", "state", "since (UTC)", "by", "reason", "version"):
        t.add_column(c)
    if not any(s.scope == "global" for s in states):
        t.add_row("global", "active", "-", "-", "never set", "0")
    for s in states:
        colour = {"active": "green", "reducing": "yellow", "halted": "red"}[s.state.value]
        t.add_row(s.scope, f"[{colour}]{s.state.value}[/]", _fmt_ms(s.ts), s.actor, s.reason, str(s.version))
    console.print(t)
    t = Table(title="kill requests")
    for c in ("id", "scope", "flatten", "by", "reason", "open", "acks"):
        t.add_column(c)
    for req, is_open, acks in requests:
        t.add_row(str(req.id), req.scope, str(req.flatten), req.actor, req.reason, str(is_open), str(acks))
    console.print(t if requests else "kill requests: none")
    t = Table(title="breaker trips (latest first)")
    for c in ("account", "breaker", "instrument", "action", "at", "until", "reason"):
        t.add_column(c)
    for tr in trips:
        t.add_row(tr.account_id, tr.breaker, tr.instrument_id, tr.action.value, _fmt_ms(tr.ts),
                  "re-arm" if tr.until_ts is None else _fmt_ms(tr.until_ts), tr.reason)
    console.print(t if trips else "breaker trips: none")
    try:
        if cfg is not None:
            _print_usage(store.engine, cfg)
    finally:
        store.engine.dispose()


def _fmt_ms(ms: int | None) -> str:
    """Epoch milliseconds as ISO-8601 UTC (``2026-12-07T15:53:03Z``); ``-`` for none."""
    from datetime import UTC, datetime

    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_usage(engine: sa.Engine, cfg: Any) -> None:
    """Each projected position against its max_position_qty limit."""
    from lyra.store.tables import positions

    t = Table(title="position limits (projected positions vs max_position_qty)")
    for c in ("session", "instrument", "quantity", "max_position_qty", "usage"):
        t.add_column(c)
    with engine.connect() as conn:
        q = sa.select(positions).order_by(positions.c.session_id, positions.c.instrument_id)
        rows = conn.execute(q).all()
    for r in rows:
        lim = cfg.resolve(r.session_id, r.instrument_id).get("max_position_qty")
        usage = "-" if lim is None else f"{abs(r.quantity) * 100 / lim:.1f}%"
        t.add_row(r.session_id, r.instrument_id, str(r.quantity), "-" if lim is None else str(lim), usage)
    console.print(t if rows else "positions: none")
