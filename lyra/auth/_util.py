"""Small helpers shared by the auth modules (private: import from ``lyra.auth`` instead)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime

from lyra.core.errors import ValidationError

#: A clock returns the current time as an aware UTC datetime. Every auth component takes one
#: (or an explicit ``now``) so tests and replays are deterministic.
Clock = Callable[[], datetime]

#: What error messages show instead of a secret value.
HIDDEN = "<hidden>"


def utc_now() -> datetime:
    """The wall clock, as an aware UTC datetime (the default :data:`Clock`)."""
    return datetime.now(tz=UTC)


def aware(now: datetime, field: str = "now") -> datetime:
    """Return ``now`` in UTC; naive datetimes are refused (their zone would be a guess)."""
    if not isinstance(now, datetime):
        raise ValidationError(field, type(now).__name__, "not a datetime")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValidationError(field, now, "naive datetime", "pass a timezone-aware UTC datetime")
    return now.astimezone(UTC)


def sha256_hex(text: str) -> str:
    """SHA-256 of ``text`` (UTF-8) as lowercase hex: how high-entropy secrets are stored."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time string equality (ASCII/hex digests only)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
