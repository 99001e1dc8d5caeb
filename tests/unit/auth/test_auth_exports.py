"""Pin lyra.auth's public surface (a rename is a choice) and its inward dependencies."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lyra.auth

EXPECTED = {
    "DASHBOARD_ACTIONS",
    "PERMISSIONS",
    "AccessClaims",
    "Action",
    "ApiKeyManager",
    "ApiKeyRecord",
    "ApiKeyRepository",
    "ApiKeyStatus",
    "AuthEvent",
    "AuthEventKind",
    "InMemoryApiKeyRepository",
    "InMemoryRefreshTokenStore",
    "InvalidApiKey",
    "InvalidToken",
    "LockoutPolicy",
    "LoginAttempts",
    "LoginGuard",
    "LoginThrottled",
    "NewApiKey",
    "PasswordHash",
    "PasswordPolicy",
    "PasswordRejected",
    "PermissionDenied",
    "Principal",
    "RateLimiter",
    "RefreshRecord",
    "RefreshTokenReused",
    "RefreshTokenStore",
    "Role",
    "SessionPolicy",
    "SessionStatus",
    "SessionTimes",
    "TokenConfig",
    "TokenPair",
    "TokenService",
    "actions_for",
    "check_password_policy",
    "consume_recovery_code",
    "dummy_verify",
    "generate_recovery_codes",
    "generate_signing_key",
    "generate_totp_secret",
    "hash_password",
    "hash_recovery_codes",
    "is_allowed",
    "is_locked",
    "load_signing_key",
    "needs_rehash",
    "normalize_password",
    "parse_action",
    "parse_api_key",
    "parse_hash",
    "parse_role",
    "provisioning_uri",
    "qr_png",
    "qr_svg",
    "record_failure",
    "record_success",
    "require",
    "requires",
    "session_status",
    "touch_session",
    "validate_signing_key",
    "validate_username",
    "verify_and_update",
    "verify_password",
    "verify_totp",
}


def test_exported_names() -> None:
    assert set(lyra.auth.__all__) == EXPECTED
    assert len(lyra.auth.__all__) == len(EXPECTED)
    for name in EXPECTED:
        assert getattr(lyra.auth, name) is not None


@pytest.mark.subprocess
def test_auth_imports_no_database_web_or_ui() -> None:
    code = (
        "import sys, lyra.auth; "
        "bad = [m for m in ('sqlalchemy', 'panel', 'bokeh', 'aiohttp', 'lyra.store', 'lyra.feeds')"
        " if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
