"""TOTP second factor (RFC 6238, via pyotp) and one-time recovery codes.

Enrolment: :func:`generate_totp_secret`, show :func:`provisioning_uri` as a QR code
(:func:`qr_png` / :func:`qr_svg`), then confirm with a first :func:`verify_totp`.

Replay protection: a code is accepted once. :func:`verify_totp` takes the last accepted
time-step counter and returns the new one; the caller stores it with the user, and any code of
that step or an earlier one is refused afterwards.

Recovery codes are random, shown once, stored only as SHA-256 hashes (80 bits of entropy each,
so a fast hash is enough), and each one works once.
"""

from __future__ import annotations

import hmac
import io
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

import pyotp
import qrcode
import qrcode.constants
import qrcode.image.pil
import qrcode.image.svg

from lyra.auth._util import HIDDEN, aware, sha256_hex
from lyra.core.errors import ValidationError

TOTP_ISSUER = "Lyra"
TOTP_DIGITS = 6
TOTP_INTERVAL_SECONDS = 30
#: Steps accepted either side of now (RFC 6238 §5.2 suggests at most one for clock drift).
TOTP_WINDOW = 1
#: 32 base32 characters = 160 bits, the RFC 4226 recommended secret length.
SECRET_LENGTH = 32
_MIN_SECRET_LENGTH = 16
_BASE32 = re.compile(r"^[A-Z2-7]+=*$")
_CODE = re.compile(r"^[0-9]{6}$")

RECOVERY_CODE_COUNT = 10
#: Crockford's base32 alphabet: no i, l, o, u, so codes read back without confusion.
_RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_RECOVERY_GROUPS = 4
_RECOVERY_GROUP_LEN = 4


def generate_totp_secret() -> str:
    """A new random base32 TOTP secret (160 bits). Store it encrypted or at least privately."""
    return pyotp.random_base32(length=SECRET_LENGTH)


def _check_secret(secret: str) -> str:
    if not isinstance(secret, str) or len(secret) < _MIN_SECRET_LENGTH or not _BASE32.match(secret):
        raise ValidationError(
            "totp_secret",
            HIDDEN,
            f"not a base32 secret of at least {_MIN_SECRET_LENGTH} characters",
            "use generate_totp_secret()",
        )
    return secret


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(_check_secret(secret), digits=TOTP_DIGITS, interval=TOTP_INTERVAL_SECONDS)


def provisioning_uri(secret: str, account_name: str, *, issuer: str = TOTP_ISSUER) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app scans (issuer "Lyra" by default)."""
    if not account_name or ":" in account_name:
        raise ValidationError("account_name", account_name, "must be non-empty and contain no ':'")
    return _totp(secret).provisioning_uri(name=account_name, issuer_name=issuer)


def _qr(data: str) -> qrcode.QRCode[Any]:
    qr: qrcode.QRCode[Any] = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=4
    )
    qr.add_data(data)
    qr.make(fit=True)
    return qr


def qr_png(data: str) -> bytes:
    """``data`` (e.g. a provisioning URI) as a QR-code PNG image."""
    image = _qr(data).make_image(image_factory=qrcode.image.pil.PilImage)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()


def qr_svg(data: str) -> bytes:
    """``data`` as a QR-code SVG document (UTF-8 bytes), for embedding in a page."""
    image = _qr(data).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return cast(bytes, image.to_string(encoding="unicode").encode("utf-8"))


def totp_step(now: datetime) -> int:
    """The RFC 6238 time-step counter at ``now`` (seconds since the epoch // 30)."""
    return int(aware(now).timestamp()) // TOTP_INTERVAL_SECONDS


def totp_code(secret: str, now: datetime) -> str:
    """The code valid at ``now`` (what an authenticator app would show; for tests and demos)."""
    return _totp(secret).generate_otp(totp_step(now))


def verify_totp(
    secret: str,
    code: str,
    *,
    now: datetime,
    last_used_step: int | None = None,
    window: int = TOTP_WINDOW,
) -> int | None:
    """Check a 6-digit ``code``; return the accepted time step, or None if refused.

    A code is accepted when it matches a step within ``window`` of now **and** that step is
    later than ``last_used_step``; store the returned step as the user's new
    ``last_used_step`` so the same code (or an older one) can never be used again.
    Spaces in the code are ignored; anything but 6 digits is refused (None).
    """
    if not 0 <= window <= 2:
        raise ValidationError("window", window, "must be 0, 1 or 2 time steps")
    totp = _totp(secret)
    candidate = code.replace(" ", "") if isinstance(code, str) else ""
    if not _CODE.match(candidate):
        return None
    current = totp_step(now)
    accepted: int | None = None
    # Check every step in the window (no early exit) so timing says nothing about which matched.
    for step in range(current - window, current + window + 1):
        matches = hmac.compare_digest(totp.generate_otp(step).encode(), candidate.encode())
        fresh = last_used_step is None or step > last_used_step
        if matches and fresh:
            accepted = step
    return accepted


def _normalize_recovery(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "") if isinstance(code, str) else ""


def generate_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """``count`` new recovery codes like ``7kq2-9mzd-4c1x-ph0e`` (80 bits each). Show once."""
    if not 1 <= count <= 100:
        raise ValidationError("count", count, "must be between 1 and 100")
    codes = []
    for _ in range(count):
        chars = "".join(
            secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_GROUPS * _RECOVERY_GROUP_LEN)
        )
        groups = [chars[i : i + _RECOVERY_GROUP_LEN] for i in range(0, len(chars), _RECOVERY_GROUP_LEN)]
        codes.append("-".join(groups))
    return codes


def hash_recovery_code(code: str) -> str:
    """The stored form of a recovery code (SHA-256 hex of its normalised text)."""
    return sha256_hex(_normalize_recovery(code))


def hash_recovery_codes(codes: Iterable[str]) -> list[str]:
    """Hash a batch of codes from :func:`generate_recovery_codes` for storage."""
    return [hash_recovery_code(c) for c in codes]


def consume_recovery_code(code: str, stored_hashes: Sequence[str]) -> list[str] | None:
    """Use a recovery code once.

    Returns the hashes that remain (store them in place of the old list) when ``code`` matches
    one of ``stored_hashes``, or None when it matches none. Every stored hash is compared
    (constant time), so timing does not tell which one matched.
    """
    normalized = _normalize_recovery(code)
    expected_len = _RECOVERY_GROUPS * _RECOVERY_GROUP_LEN
    valid = len(normalized) == expected_len and all(c in _RECOVERY_ALPHABET for c in normalized)
    candidate = sha256_hex(normalized).encode()
    found = -1
    for i, stored in enumerate(stored_hashes):
        if hmac.compare_digest(candidate, stored.encode()) and found < 0:
            found = i
    if not valid or found < 0:
        return None
    return [h for i, h in enumerate(stored_hashes) if i != found]
