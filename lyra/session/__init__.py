"""Sessions: the runtime that wires feed -> strategy -> risk -> broker -> portfolio -> event
log, in backtest, paper or live mode, with deterministic resume::

    from lyra.session import load_session_config, open_session

    cfg = load_session_config({"session_id": "s1", "strategy": "mypkg.signals:MyStrategy"})
    result = open_session(cfg, engine=engine, market_dir=home / "market").run()

What ``lyra.session`` offers (each name loads its module on first use):

- ``SessionConfig`` / ``InstrumentSpec`` / ``load_session_config`` -- the typed config
  (unknown keys refused; ``strategy`` is a shipped name or ``"package.module:Class"``).
- ``open_session`` / ``open_live_session`` -- a ready-to-run ``Session`` (replay feed and paper
  broker; or a live venue) on a database engine.
- ``Session`` / ``SessionResult`` -- the running session and what a run did.
- ``LiveSession`` -- a session on a real venue (the log is the state; reconcile on start).
- ``build_strategy`` / ``strategy_class`` -- resolve a config's ``strategy`` (and ``params``).
- ``parity_report`` / ``ParityReport`` -- the session against the vectorized backtest.
- ``SessionRegistry`` -- the sessions table: status, heartbeat, progress.
- ``LeaseHeld`` / ``LeaseLost`` -- another process owns the session / took it over.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> its module. Loaded on first access (PEP 562): importing lyra.session must not
# pull in the database, the brokers or vectorbt before a session is really opened.
_LAZY: dict[str, str] = {
    "InstrumentSpec": "lyra.session.config",
    "LeaseHeld": "lyra.session.lease",
    "LeaseLost": "lyra.session.lease",
    "LiveSession": "lyra.session.live",
    "ParityReport": "lyra.session.parity",
    "Session": "lyra.session.runtime",
    "SessionConfig": "lyra.session.config",
    "SessionRegistry": "lyra.session.registry",
    "SessionResult": "lyra.session.runtime",
    "build_strategy": "lyra.session.strategies",
    "load_session_config": "lyra.session.config",
    "open_live_session": "lyra.session.factory",
    "open_session": "lyra.session.factory",
    "parity_report": "lyra.session.parity",
    "strategy_class": "lyra.session.strategies",
}

__all__ = [
    "InstrumentSpec",
    "LeaseHeld",
    "LeaseLost",
    "LiveSession",
    "ParityReport",
    "Session",
    "SessionConfig",
    "SessionRegistry",
    "SessionResult",
    "build_strategy",
    "load_session_config",
    "open_live_session",
    "open_session",
    "parity_report",
    "strategy_class",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads these
    from lyra.session.config import InstrumentSpec, SessionConfig, load_session_config
    from lyra.session.factory import open_live_session, open_session
    from lyra.session.lease import LeaseHeld, LeaseLost
    from lyra.session.live import LiveSession
    from lyra.session.parity import ParityReport, parity_report
    from lyra.session.registry import SessionRegistry
    from lyra.session.runtime import Session, SessionResult
    from lyra.session.strategies import build_strategy, strategy_class


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'lyra.session' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # the next access is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
