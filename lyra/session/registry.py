"""The session registry: which sessions exist, their status and heartbeat, stop requests."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from lyra.audit.chain import canonical_json
from lyra.core.clock import WALL_CLOCK, Clock
from lyra.store.tables_session import sessions


class SessionRegistry:
    """Rows of the ``sessions`` table. Wall-clock times (``clock``): this is operations, not
    the ledger, so a replayed session's heartbeat is the real time it was alive."""

    def __init__(self, engine: Engine, *, clock: Clock = WALL_CLOCK) -> None:
        self.engine = engine
        self.clock = clock

    def upsert(self, session_id: str, config: Any, *, status: str, pid: int | None = None,
               host: str = "") -> None:
        now = self.clock.now_ms()
        values = {"session_id": session_id, "mode": config.mode,
                  "config": canonical_json(config.model_dump(mode="json")), "status": status, "pid": pid,
                  "host": host, "created_ts": now, "heartbeat_ts": now, "stop_requested": False,
                  "error": ""}
        with self.engine.begin() as conn:
            ins: Any = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(sessions)
            ins = ins.values(**values)
            update = {k: ins.excluded[k] for k in ("status", "pid", "host", "heartbeat_ts", "stop_requested",
                                                   "error", "config", "mode")}
            conn.execute(ins.on_conflict_do_update(index_elements=["session_id"], set_=update))

    def update(self, session_id: str, *, heartbeat: bool = True, **values: Any) -> None:
        if heartbeat:
            values["heartbeat_ts"] = self.clock.now_ms()
        with self.engine.begin() as conn:
            conn.execute(sessions.update().where(sessions.c.session_id == session_id).values(**values))

    def request_stop(self, session_id: str) -> bool:
        """Ask a running session to stop at its next poll; False if there is no such session."""
        with self.engine.begin() as conn:
            r = conn.execute(sessions.update().where(sessions.c.session_id == session_id)
                             .values(stop_requested=True))
            return (r.rowcount or 0) > 0

    def stop_requested(self, session_id: str) -> bool:
        with self.engine.connect() as conn:
            v = conn.execute(sa.select(sessions.c.stop_requested)
                             .where(sessions.c.session_id == session_id)).scalar()
            return bool(v)

    def get(self, session_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(sessions).where(sessions.c.session_id == session_id)).one_or_none()
            return None if r is None else dict(r._mapping)

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(sessions).order_by(sessions.c.created_ts.desc()))]
