"""Password hashing and policy: RFC 7914 vectors, format, rehash, timing-safe paths, policy."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from lyra.auth import passwords
from lyra.auth.passwords import (
    PBKDF2_ITERATIONS,
    PasswordPolicy,
    PasswordRejected,
    check_password_policy,
    common_passwords,
    dummy_verify,
    hash_password,
    needs_rehash,
    parse_hash,
    verify_and_update,
    verify_password,
)
from lyra.core.errors import IntegrityError, ValidationError

GOOD = "Velvet-Orbit-Lantern-42"
FAST = 1_000  # iterations for tests that do not measure the real cost


def test_pbkdf2_matches_rfc7914_vector() -> None:
    # RFC 7914 §11: PBKDF2-HMAC-SHA256, P="Password", S="NaCl", c=80000 (first 32 bytes of 64).
    expected = bytes.fromhex("4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56")
    assert passwords._pbkdf2("Password", b"NaCl", 80_000) == expected


def test_default_hash_format_and_independent_recompute() -> None:
    encoded = hash_password(GOOD)
    algorithm, iterations, salt_b64, digest_b64 = encoded.split("$")
    assert algorithm == "pbkdf2_sha256"
    assert int(iterations) == PBKDF2_ITERATIONS >= 600_000
    salt = base64.b64decode(salt_b64)
    assert len(salt) >= 16
    # Recompute with another implementation (cryptography's PBKDF2HMAC).
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=600_000)
    assert kdf.derive(GOOD.encode()) == base64.b64decode(digest_b64)
    assert verify_password(GOOD, encoded)
    assert not verify_password(GOOD + "x", encoded)
    assert GOOD not in encoded


def test_salt_is_per_hash() -> None:
    a, b = hash_password(GOOD, iterations=FAST), hash_password(GOOD, iterations=FAST)
    assert a != b
    assert parse_hash(a).salt != parse_hash(b).salt
    assert verify_password(GOOD, a)
    assert verify_password(GOOD, b)


def test_nfkc_normalisation_makes_equivalent_text_match() -> None:
    # Full-width digits and a decomposed accent normalise to the same text.
    encoded = hash_password("café-orbit-1234", iterations=FAST)
    assert verify_password("cafe\u0301-orbit-\uff11\uff12\uff13\uff14", encoded)


def test_needs_rehash_and_upgrade_on_login() -> None:
    old = hash_password(GOOD, iterations=FAST)
    assert needs_rehash(old)
    assert not needs_rehash(old, iterations=FAST)
    ok, new = verify_and_update(GOOD, old, iterations=2_000)
    assert ok
    assert new is not None
    assert parse_hash(new).iterations == 2_000
    assert verify_password(GOOD, new)
    # Wrong password: no new hash. Current parameters: no new hash.
    assert verify_and_update("wrong-password-here", old, iterations=2_000) == (False, None)
    assert verify_and_update(GOOD, new, iterations=2_000) == (True, None)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "pbkdf2_sha256$600000$abc",
        "md5$600000$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,
        "pbkdf2_sha256$lots$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,
        "pbkdf2_sha256$999999999$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,
        "pbkdf2_sha256$600000$!!notbase64!!$" + "A" * 44,
        "pbkdf2_sha256$600000$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
    ],
)
def test_malformed_stored_hash_is_integrity_error(bad: str) -> None:
    with pytest.raises(IntegrityError):
        verify_password(GOOD, bad)


def test_verify_refuses_impossible_passwords_without_raising() -> None:
    encoded = hash_password(GOOD, iterations=FAST)
    assert verify_password("x" * 5000, encoded) is False
    assert verify_password("abc\x00defghijklmn", encoded) is False


def test_dummy_verify_costs_about_as_much_as_a_real_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded = hash_password(GOOD)  # default cost
    dummy_verify("warm-up")  # first call builds the dummy hash (no PBKDF2 run)
    # The same work, exactly: one PBKDF2 run each, at the same cost, on the same input sizes.
    runs: list[tuple[int, int, int]] = []
    real_pbkdf2 = passwords._pbkdf2

    def counting(password: str, salt: bytes, iterations: int) -> bytes:
        runs.append((len(password), len(salt), iterations))
        return real_pbkdf2(password, salt, iterations)

    monkeypatch.setattr(passwords, "_pbkdf2", counting)
    # CPU time of this thread, not wall time: a busy machine (another process on every core)
    # stretches wall time of whichever call it interrupts, not the work the call does.
    t0 = time.thread_time()
    verify_password("not-the-password", encoded)
    real = time.thread_time() - t0
    t0 = time.thread_time()
    assert dummy_verify("not-the-password") is False
    dummy = time.thread_time() - t0
    assert runs == [(16, 16, PBKDF2_ITERATIONS)] * 2
    assert 0.5 < dummy / real < 2.0


def test_shipped_common_list_loads() -> None:
    common = common_passwords()
    assert len(common) > 19_000
    assert {"123456", "password", "qwerty123456", "correcthorsebatterystaple"} <= common
    assert "#1bitch" in common  # entries starting with '#' are passwords, not comments
    assert all(p == p.casefold() for p in list(common)[:1000])


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("short-pw1", "shorter than 12"),
        ("x" * 1025, "longer than 1024"),
        ("QWERTY123456", "commonly used"),  # on the list, case-insensitive
        ("CorrectHorseBatteryStaple", "commonly used"),
        ("aaaaaaaaaaaaabbbbb", "different characters"),
        ("            ", "only whitespace"),
        ("my-name-is-Alice-2024", "contains the username"),
        ("tab\there-is-bad-1", "control character"),
    ],
)
def test_policy_rejections_say_why_and_never_echo(password: str, fragment: str) -> None:
    with pytest.raises(PasswordRejected) as info:
        check_password_policy(password, username="alice")
    message = str(info.value)
    assert fragment in message
    assert password not in message
    assert info.value.field == "password"
    assert isinstance(info.value, ValidationError)


def test_policy_accepts_good_password_and_returns_normalised() -> None:
    assert check_password_policy(GOOD, username="alice") == GOOD
    assert check_password_policy("Ｖｅｌｖｅｔ-Orbit-42!", username="bob") == "Velvet-Orbit-42!"
    # Short usernames are not checked for containment (they occur everywhere).
    assert check_password_policy("bo-velvet-orbit-9", username="bo") == "bo-velvet-orbit-9"
    # Policy is configurable.
    assert PasswordPolicy(min_length=8, reject_common=False).check("qwerty12") == "qwerty12"
