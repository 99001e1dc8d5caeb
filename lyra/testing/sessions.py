"""Builders for session tests and notebooks: the demo session's config with changes."""

from __future__ import annotations

from typing import Any

from lyra.demo import DEMO_SESSION
from lyra.session.config import SessionConfig, load_session_config


def demo_config(**changes: Any) -> SessionConfig:
    """The demo session's config (Coinbase BTC/USD 1h, SMA 10/30), with changes."""
    data = dict(DEMO_SESSION)
    data.update(changes)
    return load_session_config(data)
