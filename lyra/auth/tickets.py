"""MFA tickets: what a correct password earns, good for **one** completed second step.

A ticket is a short-lived JWT (5 minutes, its own key, ``typ`` and audience) naming the user.
It is single-use twice over:

* it carries a fingerprint of the user's second-factor state (the last TOTP step used, the
  recovery-code hashes, the encrypted seed). Every successful second step changes that state
  (the TOTP step is consumed atomically, a recovery code is removed), so a ticket that has
  completed a login no longer matches, in this process or any other sharing the database;
  an MFA reset kills every outstanding ticket the same way;
* the service also remembers the ticket ids it has spent (until they expire), so two
  concurrent second steps with one ticket and two different valid codes cannot both win.

A wrong code does not spend the ticket (a typo is retried on the same page); failures count
towards the account lockout as before.

>>> t = TicketIssuer(b"k" * 32)
>>> from datetime import UTC, datetime
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> ticket, _exp = t.issue("alice", "fp1", now)
>>> t.read(ticket, now)[:2]
('alice', 'fp1')
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

import jwt

MFA_TICKET_TTL = timedelta(minutes=5)
_TYP = "mfa+jwt"
_AUD = "lyra-mfa"
_MAX_CHARS = 1024


def factor_fingerprint(
    totp_last_step: int | None, recovery_hashes: Sequence[str], totp_secret_enc: str | bytes | None
) -> str:
    """A short digest of a user's second-factor state; it changes whenever a code is used."""
    enc = totp_secret_enc.decode() if isinstance(totp_secret_enc, bytes) else (totp_secret_enc or "")
    raw = f"{totp_last_step}|{','.join(recovery_hashes)}|{enc}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class TicketIssuer:
    """Issues, reads and spends MFA tickets (thread-safe)."""

    def __init__(self, key: bytes, ttl: timedelta = MFA_TICKET_TTL) -> None:
        self._key = key
        self.ttl = ttl
        self._lock = threading.Lock()
        self._spent: dict[str, float] = {}  # ticket id -> its expiry (epoch seconds)

    def issue(self, subject: str, fingerprint: str, at: datetime) -> tuple[str, datetime]:
        """(ticket, expiry) for ``subject`` whose factor state is ``fingerprint``."""
        exp = at + self.ttl
        ticket = jwt.encode(
            {
                "sub": subject,
                "aud": _AUD,
                "fs": fingerprint,
                "iat": int(at.timestamp()),
                "exp": int(exp.timestamp()),
                "jti": secrets.token_urlsafe(12),
            },
            self._key,
            algorithm="HS256",
            headers={"typ": _TYP},
        )
        return ticket, exp

    def read(self, ticket: object, at: datetime) -> tuple[str, str, str] | None:
        """(subject, fingerprint, ticket id) of a genuine, unexpired, unspent ticket; else None."""
        if not isinstance(ticket, str) or len(ticket) > _MAX_CHARS:
            return None
        try:
            decoded = jwt.api_jwt.decode_complete(
                ticket,
                self._key,
                algorithms=["HS256"],
                audience=_AUD,
                options={
                    "require": ["sub", "exp", "iat", "aud", "jti", "fs"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },  # times are checked below on the service clock
            )
        except jwt.PyJWTError:
            return None
        payload = decoded["payload"]
        if decoded["header"].get("typ") != _TYP or int(payload["exp"]) <= at.timestamp():
            return None
        sub, fs, jti = payload["sub"], payload["fs"], payload["jti"]
        if not all(isinstance(v, str) for v in (sub, fs, jti)):
            return None
        with self._lock:
            if jti in self._spent:
                return None
        return sub, fs, jti

    def spend(self, jti: str, at: datetime) -> bool:
        """Mark ticket ``jti`` spent; False when it already was (a concurrent second step)."""
        now = at.timestamp()
        with self._lock:
            if jti in self._spent:
                return False
            if len(self._spent) > 1000:  # forget the expired ones (memory stays bounded)
                for k, exp in list(self._spent.items()):
                    if exp <= now:
                        del self._spent[k]
            self._spent[jti] = now + self.ttl.total_seconds()
            return True


__all__ = ["MFA_TICKET_TTL", "TicketIssuer", "factor_fingerprint"]
