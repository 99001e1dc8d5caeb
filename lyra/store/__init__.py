"""Database access: engines, tables, migrations."""

from lyra.store.engine import create_engine_for, is_sqlite, ping
from lyra.store.migrate import current_revision, downgrade, head_revision, require_head, upgrade

__all__ = [
    "create_engine_for",
    "current_revision",
    "downgrade",
    "head_revision",
    "is_sqlite",
    "ping",
    "require_head",
    "upgrade",
]
