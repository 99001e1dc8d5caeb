"""``lyra user ...`` and ``lyra apikey ...``: manage accounts and API keys from the shell.

Secrets (the TOTP seed, recovery codes, an API key) are printed once, to the terminal, and
never logged. The password of ``lyra user add`` is asked for interactively (hidden, typed
twice) unless ``--password-stdin`` reads it from standard input (for scripts).

Every command authenticates the person running it (:mod:`lyra.auth.operator`: ``--as-user``
with password + TOTP, ``LYRA_API_KEY``, or ``--local-admin`` for the OS owner of LYRA_HOME);
the role comes from the database and the permission table decides (``manage_users``;
``manage_api_keys`` for one's own keys). Every change is an auth event in the event log, with
the authenticated subject as its actor. A refused operator exits with code 3.
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

from lyra.auth.operator import (
    AsUserOpt,
    CredentialsStdinOpt,
    LocalAdminOpt,
    OperatorRefused,
    resolve_operator,
)
from lyra.auth.permissions import Action, PermissionDenied, Principal
from lyra.auth.service import AuthService, Enrolment
from lyra.core.errors import LyraError

user_app = typer.Typer(help="Users: add, list, set-role, reset-mfa, lock, unlock.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys: create, rotate, revoke, list.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


@contextmanager
def _service(
    action: Action, command: str, operator: tuple[bool, str | None, bool]
) -> Iterator[tuple[AuthService, Principal]]:
    """The auth service on the configured database and the authenticated operator, checked
    for ``action``; the engine is disposed on the way out."""
    from lyra.bootstrap import open_engine

    settings, engine = open_engine()
    svc: AuthService | None = None
    try:
        settings.ensure_home()
        svc = AuthService.from_settings(settings, engine=engine, create_totp_key=True, need_signing_key=False)
        local_admin, as_user, credentials_stdin = operator
        who = resolve_operator(
            svc,
            settings.home,
            local_admin_flag=local_admin,
            as_user=as_user,
            credentials_stdin=credentials_stdin,
        )
        try:
            svc.authorize(who, action, path=f"cli:{command}")  # recorded when refused
        except PermissionDenied as exc:
            raise OperatorRefused(str(exc)) from None
        yield svc, who
    finally:
        if svc is not None:
            svc.flush_failures()  # a one-shot process: no failure count may stay in memory
        engine.dispose()  # on errors too: a refused command must not leave connections open


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(3 if isinstance(exc, OperatorRefused) else 2)


def _own_keys_only(svc: AuthService, who: Principal, owner: str) -> None:
    """Without ``manage_users`` a person manages only their own API keys."""
    if owner != who.subject and not who.can(Action.MANAGE_USERS):
        raise OperatorRefused(f"{who.subject} ({who.role.value}) may manage only your own API keys")


def _key_owner(svc: AuthService, key_id: str) -> str:
    from lyra.core.errors import ValidationError

    rec = svc.keys_repo.get(key_id)
    if rec is None:
        raise ValidationError("key_id", key_id, "no such API key")
    return rec.owner


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
    local_admin: LocalAdminOpt = False,
    as_user: AsUserOpt = None,
    credentials_stdin: CredentialsStdinOpt = False,
) -> None:
    """Add a user with a password and a TOTP second factor (shown once)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            _fail(LyraError("the passwords differ"))
    try:
        with _service(Action.MANAGE_USERS, "user add", (local_admin, as_user, credentials_stdin)) as (
            svc,
            who,
        ):
            enrol = svc.add_user(username, password, role, actor=who.subject)
    except LyraError as exc:
        _fail(exc)
    _show_enrolment(enrol)


@user_app.command("list")
def user_list(
    local_admin: LocalAdminOpt = False,
    as_user: AsUserOpt = None,
    credentials_stdin: CredentialsStdinOpt = False,
) -> None:
    """List accounts (no secrets)."""
    try:
        with _service(Action.MANAGE_USERS, "user list", (local_admin, as_user, credentials_stdin)) as (
            svc,
            _who,
        ):
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
def user_set_role(
    username: str,
    role: str,
    local_admin: LocalAdminOpt = False,
    as_user: AsUserOpt = None,
    credentials_stdin: CredentialsStdinOpt = False,
) -> None:
    """Change a user's role (their sessions end at once)."""
    try:
        with _service(Action.MANAGE_USERS, "user set-role", (local_admin, as_user, credentials_stdin)) as (
            svc,
            who,
        ):
            svc.set_role(username, role, actor=who.subject)
    except LyraError as exc:
        _fail(exc)
    console.print(f"[green]ok[/]: {username} is now {role}")


@user_app.command("reset-mfa")
def user_reset_mfa(
    username: str,
    local_admin: LocalAdminOpt = False,
    as_user: AsUserOpt = None,
    credentials_stdin: CredentialsStdinOpt = False,
) -> None:
    """Give a user a new TOTP secret and recovery codes (shown once); their sessions end."""
    try:
        with _service(Action.MANAGE_USERS, "user reset-mfa", (local_admin, as_user, credentials_stdin)) as (
            svc,
            who,
        ):
            enrol = svc.reset_mfa(username, actor=who.subject)
    except LyraError as exc:
        _fail(exc)
    _show_enrolment(enrol)


@user_app.command("lock")
def user_lock(
    username: str,
    local_admin: LocalAdminOpt = False,
    as_user: AsUserOpt = None,
    credentials_stdin: CredentialsStdinOpt = False,
) -> None:
    """Lock an account (no login until unlocked; sessions end)."""
    try:
        with _service(Action.MANAGE_USERS, "user lock", (local_admin, as_user, credentials_stdin)) as (
            svc,
            who,
        ):
            svc.lock(username, actor=who.subject)
    except LyraError as exc:
        _fail(exc)
    console.print(f"[green]ok[/]: {username} locked")


@user_app.command("unlock")
def user_unlock(
    username: str,
    local_admin: LocalAdminOpt = False,
    as_user: AsUserOpt = None,
    credentials_stdin: CredentialsStdinOpt = False,
) -> None:
    """Unlock an account (admin lock and failed-login lock)."""
    try:
        with _service(Action.MANAGE_USERS, "user unlock", (local_admin, as_user, credentials_stdin)) as (
            svc,
            who,
        ):
            svc.unlock(username, actor=who.subject)
    except LyraError as exc:
        _fail(exc)
    console.print(f"[green]ok[/]: {username} unlocked")


@apikey_app.command("create")
def apikey_create(
    owner: str,
    scope: Annotated[list[str], typer.Option(help="An action the key may do (repeat).")],
    name: Annotated[str, typer.Option(help="A label, e.g. the bot using it.")] = "",
    days: Annotated[int, typer.Option(help="Days until it expires.")] = 90,
    local_admin: LocalAdminOpt = False,
    as_user: AsUserOpt = None,
    credentials_stdin: CredentialsStdinOpt = False,
) -> None:
    """Create an API key (printed once; only its hash is stored)."""
    try:
        with _service(Action.MANAGE_API_KEYS, "apikey create", (local_admin, as_user, credentials_stdin)) as (
            svc,
            who,
        ):
            _own_keys_only(svc, who, owner)
            new = svc.create_api_key(owner, scope, name=name, ttl=timedelta(days=days), actor=who.subject)
    except LyraError as exc:
        _fail(exc)
    console.print(f"key id {new.record.key_id}, expires {new.record.expires_at:%Y-%m-%d} (shown once):")
    typer.echo(new.key)


@apikey_app.command("rotate")
def apikey_rotate(
    key_id: str,
    grace_days: Annotated[int, typer.Option(help="Days the old key keeps working.")] = 7,
    local_admin: LocalAdminOpt = False,
    as_user: AsUserOpt = None,
    credentials_stdin: CredentialsStdinOpt = False,
) -> None:
    """Issue a successor key; the old one works for the grace period, then expires."""
    try:
        with _service(Action.MANAGE_API_KEYS, "apikey rotate", (local_admin, as_user, credentials_stdin)) as (
            svc,
            who,
        ):
            _own_keys_only(svc, who, _key_owner(svc, key_id))
            new = svc.rotate_api_key(key_id, actor=who.subject, grace=timedelta(days=grace_days))
    except LyraError as exc:
        _fail(exc)
    console.print(f"new key id {new.record.key_id} replaces {key_id} (shown once):")
    typer.echo(new.key)


@apikey_app.command("revoke")
def apikey_revoke(
    key_id: str,
    local_admin: LocalAdminOpt = False,
    as_user: AsUserOpt = None,
    credentials_stdin: CredentialsStdinOpt = False,
) -> None:
    """Revoke a key at once."""
    try:
        with _service(Action.MANAGE_API_KEYS, "apikey revoke", (local_admin, as_user, credentials_stdin)) as (
            svc,
            who,
        ):
            _own_keys_only(svc, who, _key_owner(svc, key_id))
            svc.revoke_api_key(key_id, actor=who.subject)
    except LyraError as exc:
        _fail(exc)
    console.print(f"[green]ok[/]: {key_id} revoked")


@apikey_app.command("list")
def apikey_list(
    owner: Annotated[str | None, typer.Option(help="Only this user's keys.")] = None,
    local_admin: LocalAdminOpt = False,
    as_user: AsUserOpt = None,
    credentials_stdin: CredentialsStdinOpt = False,
) -> None:
    """List keys: id, owner, scopes, status, expiry, last use (never the key)."""
    try:
        with _service(Action.MANAGE_API_KEYS, "apikey list", (local_admin, as_user, credentials_stdin)) as (
            svc,
            who,
        ):
            if not who.can(Action.MANAGE_USERS):
                owner = who.subject  # one's own keys only
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
