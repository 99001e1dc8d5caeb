"""Lyra settings: where state lives and which database to use.

Read from environment variables prefixed ``LYRA_`` (``LYRA_HOME``, ``LYRA_DATABASE_URL``...)
and, if ``LYRA_CONFIG`` names one, a TOML file with the same keys. Unknown keys are refused.

>>> from lyra.settings import load_settings
>>> s = load_settings(env={"LYRA_HOME": "/srv/lyra"})   # default: this process's environment
>>> str(s.home), s.db_url, str(s.market_dir)
('/srv/lyra', 'sqlite:////srv/lyra/lyra.db', '/srv/lyra/market')
>>> load_settings(env={"LYRA_DATABSE_URL": "sqlite://"})   # a typo is refused, naming the key
Traceback (most recent call last):
...
lyra.core.errors.ConfigError: databse_url='sqlite://': unknown setting (from environment) (known ...)
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from lyra.core.errors import ConfigError

_ENV_PREFIX = "LYRA_"
# Environment variables that belong to the process or the tooling, not to Settings.
_ENV_NOT_SETTINGS = {"LYRA_CONFIG", "LYRA_SAMPLE_DATA", "LYRA_SKIP_BROWSER"}
_ENV_NOT_SETTINGS_PREFIXES = ("LYRA_TEST_",)
# Venue credentials (``LYRA_<VENUE>_API_KEY`` ...) are read by the live broker, never kept here.
_ENV_CREDENTIAL_SUFFIXES = ("_API_KEY", "_API_SECRET", "_PASSWORD")


class Settings(BaseModel):
    """Validated, frozen settings. Build with :func:`load_settings`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".lyra")
    database_url: str | None = None
    log_level: str = "INFO"
    demo: bool = False
    jwt_secret: str | None = Field(default=None, repr=False)
    #: Prometheus /metrics of sessions (``lyra.metrics``): on/off, loopback port (0: ephemeral,
    #: recorded in the database), seconds a finished session keeps serving for a last scrape.
    metrics: bool = True
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_linger_s: float = Field(default=0.0, ge=0.0, le=3600.0)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("database_url")
    @classmethod
    def _valid_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(v)
        except ArgumentError as exc:
            raise ValueError(
                f"not a database URL; use e.g. sqlite:///path/lyra.db or "
                f"postgresql+psycopg://user@host/db ({exc})"
            ) from exc
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError(f"unsupported database {url.get_backend_name()!r}; use sqlite or postgresql")
        return v

    @field_validator("log_level")
    @classmethod
    def _valid_level(cls, v: str) -> str:
        level = v.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("use one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    # Derived locations -------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        """The database URL in use: ``database_url`` or SQLite in ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'lyra.db'}"

    @property
    def market_dir(self) -> Path:
        """Root of the Parquet market-data store."""
        return self.home / "market"

    @property
    def runs_dir(self) -> Path:
        """Where papermill run outputs go."""
        return self.home / "runs"

    @property
    def audit_dir(self) -> Path:
        """Where the JSON-lines mirror of the event log goes."""
        return self.home / "audit"

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict safe to log: secrets and passwords replaced."""
        from lyra.redact import redact

        out: dict[str, Any] = redact(self.model_dump(mode="json"))
        return out

    def ensure_home(self) -> None:
        """Create ``home`` and its sub-folders; a clear error if it is not writable."""
        for d in (self.home, self.market_dir, self.runs_dir, self.audit_dir):
            try:
                # Owner-only (0700) when we create them: the database, the audit mirror and the
                # secrets live here. An existing folder keeps the mode its owner chose.
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise ConfigError(
                    "home", str(self.home), f"cannot create {d}: {exc.strerror}",
                    "set LYRA_HOME to a writable folder",
                ) from exc
        probe = self.home / ".write-test"
        try:
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                "home", str(self.home), f"not writable: {exc.strerror}",
                "set LYRA_HOME to a writable folder",
            ) from exc


def load_settings(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment (``LYRA_*``), an optional TOML file named by
    ``LYRA_CONFIG``, and keyword overrides (highest priority). Errors name the key."""
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    config_file = env.get("LYRA_CONFIG")
    source = "environment"
    if config_file:
        path = Path(config_file)
        try:
            values.update(tomllib.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise ConfigError("LYRA_CONFIG", config_file, "file not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("LYRA_CONFIG", config_file, f"not valid TOML: {exc}") from exc
        source = config_file
    for key, val in env.items():
        if (key.startswith(_ENV_PREFIX) and key not in _ENV_NOT_SETTINGS
                and not key.startswith(_ENV_NOT_SETTINGS_PREFIXES)
                and not key.endswith(_ENV_CREDENTIAL_SUFFIXES)):
            values[key[len(_ENV_PREFIX):].lower()] = val
    values.update(overrides)
    try:
        return Settings(**values)
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        if err["type"] == "extra_forbidden":
            known = ", ".join(sorted(Settings.model_fields))
            raise ConfigError(
                field, err.get("input"), f"unknown setting (from {source})", f"known settings: {known}"
            ) from None
        raise ConfigError(field, err.get("input"), err["msg"]) from None
