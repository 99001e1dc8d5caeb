"""TOTP (RFC 6238 Appendix B vectors), replay protection, QR codes, recovery codes."""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from PIL import Image

from lyra.auth.totp import (
    consume_recovery_code,
    generate_recovery_codes,
    generate_totp_secret,
    hash_recovery_code,
    hash_recovery_codes,
    provisioning_uri,
    qr_png,
    qr_svg,
    totp_code,
    totp_step,
    verify_totp,
)
from lyra.core.errors import ValidationError

# RFC 6238 Appendix B, SHA-1 seed "12345678901234567890"; 6-digit codes are the last 6 digits.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [
    (59, "287082"),
    (1111111109, "081804"),
    (1111111111, "050471"),
    (1234567890, "005924"),
    (2000000000, "279037"),
    (20000000000, "353130"),
]


def at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


@pytest.mark.parametrize(("ts", "code"), RFC_VECTORS)
def test_rfc6238_vectors(ts: int, code: str) -> None:
    assert totp_code(RFC_SECRET, at(ts)) == code
    assert verify_totp(RFC_SECRET, code, now=at(ts)) == ts // 30


def test_window_is_one_step_either_side() -> None:
    now = at(1234567890)
    code = totp_code(RFC_SECRET, now)
    step = totp_step(now)
    assert verify_totp(RFC_SECRET, code, now=now + timedelta(seconds=30)) == step
    assert verify_totp(RFC_SECRET, code, now=now - timedelta(seconds=30)) == step
    assert verify_totp(RFC_SECRET, code, now=now + timedelta(seconds=61)) is None
    assert verify_totp(RFC_SECRET, code, now=now + timedelta(seconds=30), window=0) is None


def test_replayed_code_is_refused() -> None:
    now = at(1234567890)
    code = totp_code(RFC_SECRET, now)
    last = verify_totp(RFC_SECRET, code, now=now, last_used_step=None)
    assert last == totp_step(now)
    # Same code again, same time or within the window later: refused.
    assert verify_totp(RFC_SECRET, code, now=now, last_used_step=last) is None
    assert verify_totp(RFC_SECRET, code, now=now + timedelta(seconds=25), last_used_step=last) is None
    # An older (previous-step) code is refused too once a later step was used.
    previous = totp_code(RFC_SECRET, now - timedelta(seconds=30))
    assert verify_totp(RFC_SECRET, previous, now=now, last_used_step=last) is None
    # The next step's code is accepted and advances the counter.
    nxt = now + timedelta(seconds=30)
    assert verify_totp(RFC_SECRET, totp_code(RFC_SECRET, nxt), now=nxt, last_used_step=last) == last + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x", "١٢٣٤٥٦"])
def test_malformed_codes_are_refused(code: str) -> None:
    assert verify_totp(RFC_SECRET, code, now=at(59)) is None


def test_spaces_in_code_are_ignored() -> None:
    assert verify_totp(RFC_SECRET, "287 082", now=at(59)) == 1


def test_secret_generation_and_validation() -> None:
    secret = generate_totp_secret()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert secret != generate_totp_secret()
    with pytest.raises(ValidationError) as info:
        verify_totp("short", "123456", now=at(59))
    assert "short" not in str(info.value)


def test_provisioning_uri_fields() -> None:
    secret = generate_totp_secret()
    uri = provisioning_uri(secret, "alice")
    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth"
    assert parsed.netloc == "totp"
    assert unquote(parsed.path) == "/Lyra:alice"
    query = parse_qs(parsed.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["Lyra"]
    with pytest.raises(ValidationError):
        provisioning_uri(secret, "bad:name")


def test_qr_png_and_svg_are_real_images() -> None:
    uri = provisioning_uri(generate_totp_secret(), "alice")
    png = qr_png(uri)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.size[0] == image.size[1] > 100
    svg = qr_svg(uri)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert b"<path" in svg


def test_recovery_codes_are_one_time() -> None:
    codes = generate_recovery_codes(10)
    assert len(set(codes)) == 10
    assert all(re.fullmatch(r"[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){3}", c) for c in codes)
    stored = hash_recovery_codes(codes)
    assert not any(c in h for c in codes for h in stored)
    remaining = consume_recovery_code(codes[3].upper().replace("-", " "), stored)
    assert remaining is not None
    assert len(remaining) == 9
    assert hash_recovery_code(codes[3]) not in remaining
    # Used once: refused the second time, against the remaining list.
    assert consume_recovery_code(codes[3], remaining) is None
    assert consume_recovery_code("0000-0000-0000-0000", remaining) is None
    assert consume_recovery_code("not a code", remaining) is None
    with pytest.raises(ValidationError):
        generate_recovery_codes(0)
