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


def backup_rows(folder: Path, now_ms: int | None = None) -> list[dict[str, object]]:
    """The backups in ``folder``, newest first, as rows for a table (the audit page): id, when
    (UTC), age, log head, backend, size in MB and the last verification ("ok", "FAILED: ..."
    or "not verified")."""
    from datetime import UTC, datetime

    now = int(time.time() * 1000) if now_ms is None else now_ms
    rows: list[dict[str, object]] = []
    for e in reversed(list_backups(folder)):
        m = e.manifest
        if e.verified is None:
            verdict = "not verified"
        elif e.verified_ok:
            v_ms = int(e.verified.get("verified_ms", 0))
            verdict = f"ok ({datetime.fromtimestamp(v_ms / 1000, UTC):%Y-%m-%d %H:%M} UTC)"
        else:
            verdict = "FAILED: " + str((e.verified.get("problems") or ["?"])[0])
        rows.append({"backup": m.id, "taken (UTC)": f"{m.created:%Y-%m-%d %H:%M:%S}",
                     "age": _age(m.created_ms, now), "log head": m.head.seq, "database": m.backend,
                     "size (MB)": round(m.size / 1e6, 2), "verification": verdict})
    return rows
