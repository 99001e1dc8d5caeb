"""Access/refresh tokens, including the attack cases of issue 6."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lyra.auth.permissions import Role
from lyra.auth.tokens import (
    InMemoryRefreshTokenStore,
    InvalidToken,
    RefreshTokenReused,
    TokenConfig,
    TokenService,
    generate_signing_key,
    load_signing_key,
    validate_signing_key,
)
from lyra.core.errors import ConfigError

KEY = "k3y-for-tests-" + "0123456789abcdefghijklmnopqrstuv"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def service(clock: FakeClock) -> TokenService:
    return TokenService(TokenConfig(KEY), InMemoryRefreshTokenStore(), clock=clock)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "iss": "lyra",
        "aud": "lyra-apps",
        "sub": "alice",
        "role": "admin",
        "sid": "s1",
        "jti": "j1",
        "iat": int(T0.timestamp()),
        "nbf": int(T0.timestamp()),
        "exp": int(T0.timestamp()) + 900,
    }
    base.update(over)
    return base


def hs256(payload: dict[str, object], key: bytes, header: dict[str, object] | None = None) -> str:
    head = header or {"alg": "HS256", "typ": "at+jwt"}
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(payload).encode())}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def refused(service: TokenService, token: str | None, reason: str, **kw: datetime) -> None:
    with pytest.raises(InvalidToken) as info:
        service.verify_access_token(token, **kw)
    assert reason in info.value.reason
    if token:
        assert token not in str(info.value)


# ---------------------------------------------------------------- the good path


def test_access_token_round_trip_and_claims(service: TokenService) -> None:
    pair = service.start_session("alice", Role.TRADER)
    got = service.verify_access_token(pair.access_token)
    assert (got.subject, got.role, got.session_id) == ("alice", Role.TRADER, pair.session_id)
    assert got.issued_at == T0
    assert got.expires_at == T0 + timedelta(minutes=15)
    header = jwt.get_unverified_header(pair.access_token)
    assert header == {"alg": "HS256", "typ": "at+jwt"}
    payload = jwt.decode(
        pair.access_token,
        KEY,
        algorithms=["HS256"],
        audience="lyra-apps",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert set(payload) == {"iss", "aud", "sub", "role", "sid", "jti", "iat", "nbf", "exp"}
    assert payload["exp"] - payload["iat"] == 900


def test_hand_signed_token_verifies(service: TokenService) -> None:
    # Independent construction (hmac + json) accepted: proves we implement plain RFC 7519.
    token = hs256(claims(), KEY.encode())
    assert service.verify_access_token(token).role is Role.ADMIN


def test_repr_of_pair_hides_tokens(service: TokenService) -> None:
    pair = service.start_session("alice", Role.VIEWER)
    text = repr(pair)
    assert pair.access_token not in text
    assert pair.refresh_token not in text
    assert KEY not in repr(service.config)


# ---------------------------------------------------------------- attacks


def test_no_token(service: TokenService) -> None:
    refused(service, None, "no token")
    refused(service, "", "no token")
    refused(service, "not.a.jwt", "malformed")
    refused(service, "x" * 5000, "too long")


def test_expired_token(service: TokenService, clock: FakeClock) -> None:
    token = service.start_session("alice", Role.TRADER).access_token
    clock.now = T0 + timedelta(minutes=15)  # exp == now: expired
    refused(service, token, "expired")
    assert service.verify_access_token(token, now=T0 + timedelta(minutes=14, seconds=59))


def test_tampered_payload(service: TokenService) -> None:
    token = service.start_session("alice", Role.VIEWER).access_token
    head, payload, sig = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["role"] = "admin"
    forged = f"{head}.{b64(json.dumps(data).encode())}.{sig}"
    refused(service, forged, "bad signature")


def test_alg_none(service: TokenService) -> None:
    head = b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    token = f"{head}.{b64(json.dumps(claims()).encode())}."
    refused(service, token, "algorithm not allowed")
    head = b64(json.dumps({"alg": "None", "typ": "at+jwt"}).encode())
    refused(service, f"{head}.{b64(json.dumps(claims()).encode())}.", "algorithm not allowed")


def test_hs_rs_confusion(service: TokenService) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # 1. A token really signed RS256.
    rs = jwt.encode(claims(), private, algorithm="RS256", headers={"typ": "at+jwt"})
    refused(service, rs, "algorithm not allowed")
    # 2. HS256 signed with the public key as the HMAC secret.
    refused(service, hs256(claims(), pem), "bad signature")
    # 3. And a public key can never be configured as the HMAC secret.
    with pytest.raises(ConfigError):
        TokenConfig(pem)
    with pytest.raises(ConfigError):
        TokenConfig(pem, demo=True)


def test_other_hmac_algorithms_refused(service: TokenService) -> None:
    token = jwt.encode(claims(), KEY * 2, algorithm="HS512", headers={"typ": "at+jwt"})
    refused(service, token, "algorithm not allowed")


def test_wrong_audience_issuer_type(service: TokenService) -> None:
    refused(service, hs256(claims(aud="other-app"), KEY.encode()), "wrong audience")
    refused(service, hs256(claims(aud=["lyra-apps", "x"]), KEY.encode()), "wrong audience")
    refused(service, hs256(claims(iss="evil"), KEY.encode()), "wrong issuer")
    refused(service, hs256(claims(), KEY.encode(), {"alg": "HS256", "typ": "JWT"}), "not an access")


def test_nbf_and_iat_in_future(service: TokenService) -> None:
    future = int(T0.timestamp()) + 60
    refused(service, hs256(claims(nbf=future), KEY.encode()), "not yet valid")
    refused(service, hs256(claims(iat=future), KEY.encode()), "issued in the future")


@pytest.mark.parametrize("missing", ["exp", "iat", "nbf", "iss", "aud", "jti", "sub", "role", "sid"])
def test_every_claim_is_required(service: TokenService, missing: str) -> None:
    payload = claims()
    del payload[missing]
    refused(service, hs256(payload, KEY.encode()), f"missing claim '{missing}'")


def test_bad_claim_values(service: TokenService) -> None:
    refused(service, hs256(claims(role="superuser"), KEY.encode()), "unknown role")
    refused(service, hs256(claims(exp="tomorrow"), KEY.encode()), "")
    refused(service, hs256(claims(exp=True), KEY.encode()), "integer")


def test_other_key_refused(service: TokenService) -> None:
    other = TokenService(TokenConfig(generate_signing_key()), InMemoryRefreshTokenStore())
    refused(service, other.issue_access_token("alice", Role.ADMIN, "s", now=T0), "bad signature")


def test_revocation_hook(clock: FakeClock) -> None:
    revoked: set[str] = set()
    svc = TokenService(
        TokenConfig(KEY), InMemoryRefreshTokenStore(), clock=clock, is_revoked=revoked.__contains__
    )
    token = svc.start_session("alice", Role.TRADER).access_token
    jti = svc.verify_access_token(token).jti
    revoked.add(jti)
    refused(svc, token, "revoked")


# ---------------------------------------------------------------- refresh tokens


def test_refresh_rotates_and_reuse_revokes_family(service: TokenService, clock: FakeClock) -> None:
    first = service.start_session("alice", Role.TRADER)
    assert first.refresh_token.startswith("lyra_rt_")
    clock.now = T0 + timedelta(minutes=14)
    second = service.refresh(first.refresh_token)
    assert second.session_id == first.session_id
    assert second.refresh_token != first.refresh_token
    assert service.verify_access_token(second.access_token).subject == "alice"
    # The attacker replays the spent first token: reuse detected, family revoked.
    with pytest.raises(RefreshTokenReused) as info:
        service.refresh(first.refresh_token)
    assert info.value.family_id == first.session_id
    # Now the legitimate holder's newer token is dead too, and so are its access tokens.
    with pytest.raises(InvalidToken, match="session ended"):
        service.refresh(second.refresh_token)
    refused(service, second.access_token, "session ended")


def test_refresh_stored_only_hashed(service: TokenService) -> None:
    pair = service.start_session("alice", Role.TRADER)
    store = service.store
    assert isinstance(store, InMemoryRefreshTokenStore)
    stored = list(store._records)
    assert stored == [hashlib.sha256(pair.refresh_token.encode()).hexdigest()]
    assert pair.refresh_token not in repr(store._records)


def test_refresh_idle_timeout_and_absolute_lifetime(service: TokenService, clock: FakeClock) -> None:
    pair = service.start_session("alice", Role.TRADER)
    assert pair.refresh_expires_at == T0 + timedelta(minutes=60)
    clock.now = T0 + timedelta(minutes=60)
    with pytest.raises(InvalidToken, match="idle"):
        service.refresh(pair.refresh_token)
    # Keep refreshing every 50 minutes: the session still ends at 12 h.
    pair = service.start_session("bob", Role.TRADER, now=T0)
    t = T0
    for _ in range(14):
        t += timedelta(minutes=50)
        if t >= T0 + timedelta(hours=12):
            break
        clock.now = t
        pair = service.refresh(pair.refresh_token)
        assert pair.refresh_expires_at <= T0 + timedelta(hours=12)
        assert pair.access_expires_at <= T0 + timedelta(hours=12)
    clock.now = T0 + timedelta(hours=12)
    with pytest.raises(InvalidToken, match="lifetime"):
        service.refresh(pair.refresh_token)


def test_refresh_malformed_and_unknown(service: TokenService) -> None:
    for bad in (None, "", "garbage", "lyra_rt_" + "x" * 200):
        with pytest.raises(InvalidToken, match="malformed"):
            service.refresh(bad)
    with pytest.raises(InvalidToken, match="unknown"):
        service.refresh("lyra_rt_doesnotexist")


def test_refresh_rereads_role(clock: FakeClock) -> None:
    roles = {"alice": Role.TRADER}
    svc = TokenService(TokenConfig(KEY), InMemoryRefreshTokenStore(), clock=clock, role_of=roles.get)
    pair = svc.start_session("alice", Role.TRADER)
    roles["alice"] = Role.VIEWER
    pair = svc.refresh(pair.refresh_token)
    assert svc.verify_access_token(pair.access_token).role is Role.VIEWER
    del roles["alice"]
    with pytest.raises(InvalidToken, match="disabled"):
        svc.refresh(pair.refresh_token)


def test_logout_and_logout_everywhere(service: TokenService) -> None:
    a = service.start_session("alice", Role.TRADER)
    b = service.start_session("alice", Role.TRADER)
    c = service.start_session("carol", Role.TRADER)
    service.logout(a.session_id)
    refused(service, a.access_token, "session ended")
    assert service.verify_access_token(b.access_token)
    assert service.logout_everywhere("alice") == 1
    refused(service, b.access_token, "session ended")
    with pytest.raises(InvalidToken):
        service.refresh(b.refresh_token)
    assert service.refresh(c.refresh_token).subject == "carol"


# ---------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "key", [None, "", "short", "a" * 64, "changemechangemechangemechangeme", b"\x00" * 32]
)
def test_weak_or_missing_keys_refused(key: str | bytes | None) -> None:
    with pytest.raises(ConfigError) as info:
        TokenConfig(key)
    if key:
        assert str(key) not in str(info.value)


def test_demo_mode_accepts_missing_and_weak_keys() -> None:
    random_a, random_b = validate_signing_key(None, demo=True), validate_signing_key(None, demo=True)
    assert len(random_a) == 32
    assert random_a != random_b
    stretched = validate_signing_key("short", demo=True)
    assert len(stretched) == 32
    svc = TokenService(TokenConfig("short", demo=True), InMemoryRefreshTokenStore())
    pair = svc.start_session("demo", Role.VIEWER)
    assert svc.verify_access_token(pair.access_token).subject == "demo"


def test_key_file(tmp_path: Path) -> None:
    path = tmp_path / "jwt.key"
    key = generate_signing_key()
    path.write_text(key + "\n")
    os.chmod(path, 0o600)
    assert load_signing_key(path) == key.encode()
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_signing_key(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_signing_key(tmp_path / "missing.key")
