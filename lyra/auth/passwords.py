"""Password hashing and the password policy.

Hashes are PBKDF2-HMAC-SHA256 with a random per-user salt, stored as one string that carries
its own parameters, so the cost can be raised later and old hashes upgraded at the next login::

    pbkdf2_sha256$600000$<base64 salt>$<base64 hash>

>>> encoded = hash_password("correct horse battery staple", iterations=1_000)  # default: 600k
>>> encoded.startswith("pbkdf2_sha256$1000$")
True
>>> verify_password("correct horse battery staple", encoded), verify_password("wrong", encoded)
(True, False)

Passwords are NFKC-normalised first, so the same text typed on different keyboards (full-width
digits, composed vs decomposed accents) gives the same hash. No function here ever puts a
password into an error message, a repr or a log line.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass, field
from importlib import resources

from lyra.auth._util import HIDDEN
from lyra.core.errors import IntegrityError, ValidationError

ALGORITHM = "pbkdf2_sha256"
#: OWASP's 2023+ figure for PBKDF2-HMAC-SHA256.
PBKDF2_ITERATIONS = 600_000
SALT_BYTES = 16
HASH_BYTES = 32
MIN_LENGTH = 12
#: Bounds the work one login request can cause (normalisation, hashing) and the stored size.
MAX_LENGTH = 1024
#: Refuse stored hashes outside this range: a tampered row must not make a login take minutes.
_MIN_STORED_ITERATIONS = 1_000
_MAX_STORED_ITERATIONS = 10_000_000
#: Username containment is only checked for names this long (a 1-letter name is in everything).
_MIN_USERNAME_CHECK = 3
_MIN_DISTINCT_CHARS = 5


class PasswordRejected(ValidationError):
    """A new password does not meet the policy. The message says why, never what it was."""

    def __init__(self, problem: str, hint: str | None = None) -> None:
        super().__init__("password", HIDDEN, problem, hint)


@dataclass(frozen=True)
class PasswordHash:
    """A parsed encoded hash (``salt`` and ``digest`` are kept out of the repr)."""

    algorithm: str
    iterations: int
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)

    def encode(self) -> str:
        """Back to the stored string form."""
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        return f"{self.algorithm}${self.iterations}${salt}${digest}"


def normalize_password(password: str) -> str:
    """NFKC-normalise ``password``; refuse non-strings, oversized input and control characters."""
    if not isinstance(password, str):
        raise PasswordRejected("must be text")
    # Check the raw length first so a huge input never reaches normalisation.
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(f"longer than {MAX_LENGTH} characters")
    text = unicodedata.normalize("NFKC", password)
    if len(text) > MAX_LENGTH:
        raise PasswordRejected(f"longer than {MAX_LENGTH} characters after normalisation")
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise PasswordRejected(
                "contains a control character or lone surrogate",
                "use printable characters (spaces are fine)",
            )
    return text


def _pbkdf2(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, dklen=HASH_BYTES)


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Hash ``password`` with a fresh random salt; returns the encoded string to store.

    This does not apply the policy (use :func:`check_password_policy` when a password is set).
    """
    if iterations < _MIN_STORED_ITERATIONS or iterations > _MAX_STORED_ITERATIONS:
        raise ValidationError(
            "iterations",
            iterations,
            f"must be between {_MIN_STORED_ITERATIONS} and {_MAX_STORED_ITERATIONS}",
        )
    text = normalize_password(password)
    salt = secrets.token_bytes(SALT_BYTES)
    return PasswordHash(ALGORITHM, iterations, salt, _pbkdf2(text, salt, iterations)).encode()


def parse_hash(encoded: str) -> PasswordHash:
    """Parse a stored hash; a malformed one raises :class:`IntegrityError` (stored state is bad).

    The message names the problem but never shows the stored string.
    """
    parts = encoded.split("$") if isinstance(encoded, str) else []
    if len(parts) != 4:
        raise IntegrityError("stored password hash is malformed (expected 4 '$'-separated parts)")
    algorithm, iterations_text, salt_text, digest_text = parts
    if algorithm != ALGORITHM:
        raise IntegrityError(f"stored password hash uses unsupported algorithm {algorithm[:32]!r}")
    if not iterations_text.isdigit():
        raise IntegrityError("stored password hash has a non-numeric iteration count")
    iterations = int(iterations_text)
    if not _MIN_STORED_ITERATIONS <= iterations <= _MAX_STORED_ITERATIONS:
        raise IntegrityError(f"stored password hash has an implausible iteration count {iterations}")
    try:
        salt = base64.b64decode(salt_text, validate=True)
        digest = base64.b64decode(digest_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise IntegrityError("stored password hash has invalid base64") from exc
    if len(salt) < 8 or len(digest) != HASH_BYTES:
        raise IntegrityError("stored password hash has a wrong salt or digest length")
    return PasswordHash(algorithm, iterations, salt, digest)


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches the stored ``encoded`` hash (constant-time comparison).

    A password that could never have been set (too long, not text, control characters)
    returns False after the same amount of work, so callers need only one code path.
    """
    parsed = parse_hash(encoded)
    try:
        text = normalize_password(password)
    except PasswordRejected:
        # Same cost as a real check; the result is discarded.
        _pbkdf2("", parsed.salt, parsed.iterations)
        return False
    candidate = _pbkdf2(text, parsed.salt, parsed.iterations)
    return hmac.compare_digest(candidate, parsed.digest)


@functools.lru_cache(maxsize=4)
def _dummy_hash(iterations: int) -> str:
    # Random salt and digest: no password can match (probability 2**-256) and nothing is
    # computed up front, so the first unknown-user login costs exactly one PBKDF2 run.
    return PasswordHash(
        ALGORITHM, iterations, secrets.token_bytes(SALT_BYTES), secrets.token_bytes(HASH_BYTES)
    ).encode()


def dummy_verify(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> bool:
    """Spend the time of a real :func:`verify_password` and return False.

    Call it when the username is unknown (or the account is locked) so a login takes the same
    time whether or not the user exists: no user enumeration by timing.
    """
    verify_password(password, _dummy_hash(iterations))
    return False


def needs_rehash(encoded: str, *, iterations: int = PBKDF2_ITERATIONS) -> bool:
    """True when ``encoded`` was made with weaker parameters than today's (rehash at login)."""
    parsed = parse_hash(encoded)
    return parsed.algorithm != ALGORITHM or parsed.iterations < iterations or len(parsed.salt) < SALT_BYTES


def verify_and_update(
    password: str, encoded: str, *, iterations: int = PBKDF2_ITERATIONS
) -> tuple[bool, str | None]:
    """Verify, and if the password is right but the hash is outdated, return a new hash.

    Returns ``(ok, new_encoded_or_None)``; store the second item when it is not None.
    """
    ok = verify_password(password, encoded)
    if ok and needs_rehash(encoded, iterations=iterations):
        return True, hash_password(password, iterations=iterations)
    return ok, None


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common (breached) passwords, lowercased (see the file's header)."""
    text = resources.files("lyra.auth").joinpath("common_passwords.txt").read_text("utf-8")
    _header, _, body = text.partition("\n\n")
    return frozenset(line.casefold() for line in body.splitlines() if line)


@dataclass(frozen=True)
class PasswordPolicy:
    """What a new password must satisfy. The defaults follow NIST SP 800-63B and OWASP."""

    min_length: int = MIN_LENGTH
    max_length: int = MAX_LENGTH
    reject_common: bool = True
    min_distinct_chars: int = _MIN_DISTINCT_CHARS

    def check(self, password: str, *, username: str | None = None) -> str:
        """Return the normalised password, or raise :class:`PasswordRejected` saying why."""
        text = normalize_password(password)
        if len(text) < self.min_length:
            raise PasswordRejected(
                f"shorter than {self.min_length} characters",
                "a few unrelated words make a long, memorable password",
            )
        if len(text) > self.max_length:
            raise PasswordRejected(f"longer than {self.max_length} characters")
        if not text.strip():
            raise PasswordRejected("only whitespace")
        if len(set(text)) < self.min_distinct_chars:
            raise PasswordRejected(f"uses fewer than {self.min_distinct_chars} different characters")
        folded = text.casefold()
        if self.reject_common and folded in common_passwords():
            raise PasswordRejected(
                "is on the list of commonly used (breached) passwords", "choose another one"
            )
        if username:
            name = unicodedata.normalize("NFKC", username).casefold()
            if len(name) >= _MIN_USERNAME_CHECK and name in folded:
                raise PasswordRejected("contains the username")
        return text


DEFAULT_POLICY = PasswordPolicy()


def check_password_policy(
    password: str, *, username: str | None = None, policy: PasswordPolicy = DEFAULT_POLICY
) -> str:
    """Apply ``policy`` to a new password; return it normalised or raise PasswordRejected."""
    return policy.check(password, username=username)
