"""Who runs an admin command: the CLI authenticates the *person*, never a typed role.

``lyra user ...``, ``lyra apikey ...`` and ``lyra risk rearm`` act as one of:

* ``--as-user NAME``: the account's password and a TOTP (or recovery) code, asked for hidden
  (or two lines on stdin with ``--credentials-stdin``); the role is the account's, from the
  database. The one-shot session is ended at once.
* ``LYRA_API_KEY`` in the environment: the key's owner, role (from the database) and scopes.
* ``--local-admin``: the local superuser, allowed only to the OS user who owns ``LYRA_HOME``
  (whoever can read the database and the key files can do anything anyway); recorded as
  ``local:<os user>``. This is how the first admin account is made.

Then the permission table decides (:meth:`Principal.require`), and the event log records the
authenticated subject as the actor.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from lyra.auth.apikeys import InvalidApiKey
from lyra.auth.permissions import Principal, Role
from lyra.auth.policy import LoginThrottled
from lyra.auth.service import AuthService, LoginFailed
from lyra.core.errors import LyraError

API_KEY_ENV = "LYRA_API_KEY"
LocalAdminOpt = Annotated[
    bool,
    typer.Option(
        "--local-admin",
        help="Act as the local superuser (only the OS user owning LYRA_HOME; recorded).",
    ),
]
AsUserOpt = Annotated[
    str | None, typer.Option("--as-user", help="Act as this account: asks its password and TOTP code.")
]
CredentialsStdinOpt = Annotated[
    bool,
    typer.Option("--credentials-stdin", help="Read --as-user's password and code as two lines on stdin."),
]


class OperatorRefused(LyraError):
    """The person running the command could not be authenticated (exit code 3)."""


def os_user() -> str:
    """The OS user name running this process (``uid<N>`` without a passwd entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.geteuid()}"


def local_admin(home: Path) -> Principal:
    """The local superuser, if this process's OS user owns ``home``; else OperatorRefused."""
    try:
        owner = home.stat().st_uid
    except OSError as exc:
        raise OperatorRefused(f"--local-admin: cannot read {home}: {exc.strerror}") from None
    if owner != os.geteuid():
        raise OperatorRefused(f"--local-admin: only the OS user owning {home} may act as the local superuser")
    return Principal(subject=f"local:{os_user()}", role=Role.ADMIN, via="local_admin")


def login_person(service: AuthService, username: str, password: str, code: str) -> Principal:
    """Password then TOTP/recovery code, as at the login page; the session ends at once."""
    try:
        challenge = service.login_password(username, password, client="cli")
        pair = service.login_mfa(challenge.ticket, code, client="cli")
    except (LoginFailed, LoginThrottled) as exc:
        raise OperatorRefused(f"--as-user: {exc}") from None
    service.logout(pair.session_id, pair.subject, client="cli")
    return Principal(subject=pair.subject, role=pair.role, via="cli_login")


def resolve_operator(
    service: AuthService,
    home: Path,
    *,
    local_admin_flag: bool,
    as_user: str | None,
    credentials_stdin: bool,
) -> Principal:
    """The authenticated person behind a command (see the module docstring)."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    chosen = sum((local_admin_flag, as_user is not None, bool(key)))
    if chosen == 0:
        raise OperatorRefused(
            "say who you are: --as-user NAME (password + TOTP code), "
            f"{API_KEY_ENV}=<an API key>, or --local-admin (the OS user owning LYRA_HOME)"
        )
    if chosen > 1:
        raise OperatorRefused(f"use one of --as-user, {API_KEY_ENV} or --local-admin, not several")
    if local_admin_flag:
        return local_admin(home)
    if as_user is not None:
        if credentials_stdin:
            password = sys.stdin.readline().rstrip("\n")
            code = sys.stdin.readline().strip()
        else:
            password = getpass.getpass(f"Password of {as_user}: ")
            code = getpass.getpass("TOTP or recovery code: ")
        return login_person(service, as_user, password, code)
    try:
        return service.verify_api_key(key, client="cli", path="cli")
    except InvalidApiKey:
        raise OperatorRefused(f"{API_KEY_ENV}: the API key was not accepted") from None


__all__ = [
    "API_KEY_ENV",
    "AsUserOpt",
    "CredentialsStdinOpt",
    "LocalAdminOpt",
    "OperatorRefused",
    "local_admin",
    "login_person",
    "os_user",
    "resolve_operator",
]
