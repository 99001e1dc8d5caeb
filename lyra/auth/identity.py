"""How the auth proxy tells the Panel server who is asking, without the access token.

The proxy never forwards the browser's cookies to Panel (Bokeh copies request headers and
cookies into the session token it embeds in the page, where a script could read them).
Instead it adds one header, :data:`IDENTITY_HEADER`, to each forwarded request: a JWT signed
with a key derived from the installation's signing key (label ``panel-identity``), valid for
:data:`IDENTITY_TTL`, with its own ``typ`` and audience, so it is useless anywhere else: the
proxy does not accept it, and an access token is not accepted in its place. The Panel server
verifies it (:class:`IdentityVerifier`) and keeps the header out of the page
(``include_headers`` in :func:`lyra.auth.panel_auth.run_panel_server`).

>>> from datetime import UTC, datetime
>>> from lyra.auth.permissions import Role
>>> key = b"k" * 32
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> token = IdentitySigner(key).sign("alice", Role.TRADER, "s1", now=now)
>>> claims = IdentityVerifier(key).verify(token, now=now)
>>> claims.subject, claims.role.value, claims.session_id
('alice', 'trader', 's1')
>>> IdentityVerifier(b"x" * 32).verify(token, now=now) is None
True
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta

import jwt

from lyra.auth.permissions import Role
from lyra.auth.tokens import AccessClaims

IDENTITY_HEADER = "X-Lyra-Identity"
#: Long enough for one request (and its websocket upgrade); a copy is stale a minute later.
IDENTITY_TTL = timedelta(seconds=60)
_TYP = "lyra-id+jwt"
_AUD = "lyra-panel"
_MAX_CHARS = 2048


def _derived(key: bytes) -> bytes:
    return hmac.new(key, b"lyra-derive:panel-identity", "sha256").digest()


class IdentitySigner:
    """The proxy side: signs the identity of one forwarded request."""

    def __init__(self, signing_key: bytes) -> None:
        self._key = _derived(signing_key)

    def sign(
        self,
        subject: str,
        role: Role,
        session_id: str,
        *,
        now: datetime | None = None,
        reauth_at: datetime | None = None,
    ) -> str:
        """A short-lived identity token for ``subject`` in session ``session_id`` (with the
        session's last re-authentication time, if any: claim ``rat``)."""
        at = now or datetime.now(UTC)
        payload: dict[str, object] = {
            "sub": subject,
            "role": role.value,
            "sid": session_id,
            "aud": _AUD,
            "iat": int(at.timestamp()),
            "exp": int((at + IDENTITY_TTL).timestamp()),
            "jti": secrets.token_urlsafe(9),
        }
        if reauth_at is not None:
            payload["rat"] = int(reauth_at.timestamp())
        return jwt.encode(payload, self._key, algorithm="HS256", headers={"typ": _TYP})


class IdentityVerifier:
    """The Panel side: the claims of a valid identity header, else None."""

    def __init__(self, signing_key: bytes) -> None:
        self._key = _derived(signing_key)

    def verify(self, token: str | None, *, now: datetime | None = None) -> AccessClaims | None:
        """Signature, ``typ``, audience and times checked; anything else is None."""
        if not token or not isinstance(token, str) or len(token) > _MAX_CHARS:
            return None
        at = now or datetime.now(UTC)
        try:
            decoded = jwt.api_jwt.decode_complete(
                token,
                self._key,
                algorithms=["HS256"],
                audience=_AUD,
                options={"require": ["sub", "role", "sid", "exp", "iat", "aud"], "verify_exp": False},
            )
            header, p = decoded["header"], decoded["payload"]
            if header.get("typ") != _TYP or int(p["exp"]) <= at.timestamp():
                return None
            if int(p["iat"]) > at.timestamp() + 5:  # from the future: a clock we do not share
                return None
            rat = p.get("rat")
            return AccessClaims(
                subject=str(p["sub"]),
                role=Role(p["role"]),
                session_id=str(p["sid"]),
                jti=str(p.get("jti", "")),
                issued_at=datetime.fromtimestamp(int(p["iat"]), UTC),
                expires_at=datetime.fromtimestamp(int(p["exp"]), UTC),
                reauth_at=datetime.fromtimestamp(int(rat), UTC) if rat is not None else None,
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            return None


__all__ = ["IDENTITY_HEADER", "IDENTITY_TTL", "IdentitySigner", "IdentityVerifier"]
