"""``lyra user ...`` and ``lyra apikey ...``: manage accounts and API keys from the shell.

Secrets (the TOTP seed, recovery codes, an API key) are printed once, to the terminal, and
never logged. The password of ``lyra user add`` is asked for interactively (hidden, typed
twice) unless ``--password-stdin`` reads it from standard input (for scripts).
Every change is an auth event in the event log, with ``--actor`` (default: the OS user).
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lyra.auth.service import AuthService, Enrolment
from lyra.core.errors import LyraError

user_app = typer.Typer(help="Users: add, list, set-role, reset-mfa, lock, unlock.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys: create, rotate, revoke, list.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

ActorOpt = Annotated[str | None, typer.Option(help="Who makes the change (recorded); default: OS user.")]


@contextmanager
def _service() -> Iterator[AuthService]:
    """The auth service on the configured database; its engine is disposed on the way out."""
    from lyra.bootstrap import open_engine

    settings, engine = open_engine()
    try:
        settings.ensure_home()
        yield AuthService.from_settings(settings, engine=engine, create_totp_key=True, need_signing_key=False)
    finally:
        engine.dispose()  # on errors too: a refused command must not leave connections open


def _actor(actor: str | None) -> str:
    try:
        return actor or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "cli"


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)


def _show_enrolment(e: Enrolment) -> None:
    console.print(f"[bold]{e.username}[/] ({e.role.value}): add this to an authenticator app (shown once):")
    console.print(f"  TOTP secret: {e.totp_secret}")
    console.print(f"  URI:         {e.provisioning_uri}")
    try:
        import qrcode

        qr = qrcode.QRCode(border=1)
        qr.add_data(e.provisioning_uri)
        qr.print_ascii(out=sys.stdout, invert=True)
    except Exception:  # noqa: S110 - the URI above is enough; the QR is a convenience
        pass
    console.print("  Recovery codes (each works once; keep them offline):")
    for code in e.recovery_codes:
        console.print(f"    {code}")


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="admin, risk_manager, trader, analyst, auditor or viewer.")],
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
    actor: ActorOpt = None,
) -> None:
    """Add a user with a password and a TOTP second factor (shown once)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            _fail(LyraError("the passwords differ"))
    try:
        with _service() as svc:
            enrol = svc.add_user(username, password, role, actor=_actor(actor))
    except LyraError as exc:
        _fail(exc)
    _show_enrolment(enrol)


@user_app.command("list")
def user_list() -> None:
    """List accounts (no secrets)."""
    try:
        with _service() as svc:
            users = svc.list_users()
    except LyraError as exc:
        _fail(exc)
    table = Table(title="users")
    for col in ("username", "role", "mfa", "locked", "failed logins", "created (UTC)"):
        table.add_column(col)
    for u in users:
        table.add_row(
            u.username,
            u.role.value,
            "yes" if u.mfa_enrolled else "no",
            "yes" if u.locked else "",
            str(u.failed_attempts),
            u.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@user_app.command("set-role")
def user_set_role(username: str, role: str, actor: ActorOpt = None) -> None:
    """Change a user's role (their sessions end at once)."""
    try:
        with _service() as svc:
            svc.set_role(username, role, actor=_actor(actor))
    except LyraError as exc:
        _fail(exc)
    console.print(f"[green]ok[/]: {username} is now {role}")


@user_app.command("reset-mfa")
def user_reset_mfa(username: str, actor: ActorOpt = None) -> None:
    """Give a user a new TOTP secret and recovery codes (shown once); their sessions end."""
    try:
        with _service() as svc:
            enrol = svc.reset_mfa(username, actor=_actor(actor))
    except LyraError as exc:
        _fail(exc)
    _show_enrolment(enrol)


@user_app.command("lock")
def user_lock(username: str, actor: ActorOpt = None) -> None:
    """Lock an account (no login until unlocked; sessions end)."""
    try:
        with _service() as svc:
            svc.lock(username, actor=_actor(actor))
    except LyraError as exc:
        _fail(exc)
    console.print(f"[green]ok[/]: {username} locked")


@user_app.command("unlock")
def user_unlock(username: str, actor: ActorOpt = None) -> None:
    """Unlock an account (admin lock and failed-login lock)."""
    try:
        with _service() as svc:
            svc.unlock(username, actor=_actor(actor))
    except LyraError as exc:
        _fail(exc)
    console.print(f"[green]ok[/]: {username} unlocked")


@apikey_app.command("create")
def apikey_create(
    owner: str,
    scope: Annotated[list[str], typer.Option(help="An action the key may do (repeat).")],
    name: Annotated[str, typer.Option(help="A label, e.g. the bot using it.")] = "",
    days: Annotated[int, typer.Option(help="Days until it expires.")] = 90,
    actor: ActorOpt = None,
) -> None:
    """Create an API key (printed once; only its hash is stored)."""
    try:
        with _service() as svc:
            new = svc.create_api_key(owner, scope, name=name, ttl=timedelta(days=days), actor=_actor(actor))
    except LyraError as exc:
        _fail(exc)
    console.print(f"key id {new.record.key_id}, expires {new.record.expires_at:%Y-%m-%d} (shown once):")
    typer.echo(new.key)


@apikey_app.command("rotate")
def apikey_rotate(
    key_id: str,
    grace_days: Annotated[int, typer.Option(help="Days the old key keeps working.")] = 7,
    actor: ActorOpt = None,
) -> None:
    """Issue a successor key; the old one works for the grace period, then expires."""
    try:
        with _service() as svc:
            new = svc.rotate_api_key(key_id, actor=_actor(actor), grace=timedelta(days=grace_days))
    except LyraError as exc:
        _fail(exc)
    console.print(f"new key id {new.record.key_id} replaces {key_id} (shown once):")
    typer.echo(new.key)


@apikey_app.command("revoke")
def apikey_revoke(key_id: str, actor: ActorOpt = None) -> None:
    """Revoke a key at once."""
    try:
        with _service() as svc:
            svc.revoke_api_key(key_id, actor=_actor(actor))
    except LyraError as exc:
        _fail(exc)
    console.print(f"[green]ok[/]: {key_id} revoked")


@apikey_app.command("list")
def apikey_list(owner: Annotated[str | None, typer.Option(help="Only this user's keys.")] = None) -> None:
    """List keys: id, owner, scopes, status, expiry, last use (never the key)."""
    try:
        with _service() as svc:
            keys = svc.list_api_keys(owner)
            now = svc.now()
    except LyraError as exc:
        _fail(exc)
    table = Table(title="API keys")
    for col in ("key id", "owner", "name", "scopes", "status", "expires", "last used", "replaced by"):
        table.add_column(col)
    for k in keys:
        table.add_row(
            k.key_id,
            k.owner,
            k.name,
            ",".join(sorted(k.scopes)),
            k.status(now).value,
            f"{k.expires_at:%Y-%m-%d}",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "",
            k.replaced_by or "",
        )
    console.print(table)
