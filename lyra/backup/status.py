"""The ``lyra doctor`` line about backups: the age of the last verified one."""

from __future__ import annotations

import time
from pathlib import Path

from lyra.backup.manifest import list_backups


def _age(ms: int, now_ms: int) -> str:
    s = max(0, (now_ms - ms) // 1000)
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400 * 2:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def backup_check(folder: Path, now_ms: int | None = None) -> tuple[str, bool, str]:
    """(name, passed, detail) for ``lyra doctor``: fails only if the newest backup's last
    verification failed; no backup yet is reported, not failed (a fresh install has none)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    entries = list_backups(folder)
    if not entries:
        return ("backups", True, f"none in {folder}: take one with `lyra backup create`")
    newest = entries[-1]
    if newest.verified is not None and not newest.verified_ok:
        first = (newest.verified.get("problems") or ["?"])[0]
        return ("backups", False, f"newest backup {newest.manifest.id} FAILED verification: {first}")
    verified = [e for e in entries if e.verified_ok]
    if not verified:
        return ("backups", True, f"{len(entries)} backups, none verified: run `lyra backup verify` "
                f"(newest {newest.manifest.id} is {_age(newest.manifest.created_ms, now)} old)")
    last = verified[-1]
    v_ms = int((last.verified or {}).get("verified_ms", 0))
    age = _age(last.manifest.created_ms, now)
    return ("backups", True, f"last verified backup {last.manifest.id} is {age} old "
            f"(verified {_age(v_ms, now)} ago); {len(entries)} backups")
