"""Backups of a home and point-in-time restore, proven by the event log's hash chain.

``lyra backup create`` copies the database consistently while sessions run (SQLite's online
backup API in small steps; PostgreSQL's ``pg_dump`` at one snapshot), the JSON-lines mirror up
to the copied head, the market store, the run archive and (owner-only) the signing keys, with a
manifest of checksums, row counts and the log's head. ``lyra backup verify`` restores one into
scratch and proves it whole and a prefix of the current log; ``lyra restore`` builds a new home
as of any moment the log covers. The registry is the manifests in the backups folder.
"""

from lyra.backup.create import create_backup, default_dest, prune, select_to_keep
from lyra.backup.manifest import Head, Manifest, list_backups, read_manifest
from lyra.backup.pitr import state_at
from lyra.backup.restore import RestoreResult, restore
from lyra.backup.verify import BackupReport, verify_backup

__all__ = [
    "BackupReport",
    "Head",
    "Manifest",
    "RestoreResult",
    "create_backup",
    "default_dest",
    "list_backups",
    "prune",
    "read_manifest",
    "restore",
    "select_to_keep",
    "state_at",
    "verify_backup",
]
