"""``lyra backup create`` and ``lyra backup prune``: take a backup of a home, apply retention."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from tqdm import tqdm

from lyra.audit.log import EventLog
from lyra.backup.dbcopy import Snapshot, pg_dump, sqlite_copy, sqlite_path
from lyra.backup.manifest import (
    MANIFEST,
    Entry,
    Manifest,
    copy_hashed,
    list_backups,
    new_backup_id,
    write_json_atomic,
)
from lyra.core.errors import IntegrityError, ValidationError
from lyra.settings import Settings

MIRROR = "audit/events.jsonl"
#: Files under the home's folders that are never copied (live database files, our own output).
_SKIP_NAMES = {".write-test"}


def default_dest(settings: Settings) -> Path:
    """Where backups go unless told otherwise: ``$LYRA_HOME/backups``."""
    return settings.home / "backups"


def _walk(root: Path, skip: Path | None = None) -> Iterator[Path]:
    """Files under ``root``, each folder's ``_manifest.json`` first (the market store names its
    live parts there; copying it first means every part it names is still there to copy)."""
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if skip is not None and (d == skip or skip in d.parents):
            dirnames[:] = []
            continue
        dirnames.sort()
        for name in sorted(filenames, key=lambda n: (n != "_manifest.json", n)):
            if name not in _SKIP_NAMES and not name.startswith(".") and not name.endswith(".tmp"):
                yield d / name


@dataclass(slots=True)
class _Bar:
    """A byte-counting progress bar (tqdm) that can be switched off."""

    bar: tqdm | None

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)


def _copy_tree(src: Path, dst: Path, prefix: str, files: dict[str, list[object]], show: bool,
               skip: Path | None = None) -> None:
    paths = list(_walk(src, skip))
    total = 0
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            total += p.stat().st_size
    with tqdm(total=total, unit="B", unit_scale=True, desc=prefix, disable=not show, leave=False) as bar:
        for p in paths:
            rel = f"{prefix}/{p.relative_to(src).as_posix()}"
            try:
                size, digest = copy_hashed(p, dst / rel, _Bar(bar))
            except FileNotFoundError:
                continue  # replaced while we walked (a compaction): its manifest no longer names it
            files[rel] = [size, digest]


def _copy_mirror(engine: Engine, live: Path, dst: Path, snap: Snapshot) -> tuple[int, str, int]:
    """The mirror file up to the copied head exactly; lines it lacks are taken from the log.

    Returns (size, sha256, lines filled in from the database)."""
    import hashlib

    head = snap.head
    dst.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    last = 0
    with open(dst, "w", encoding="utf-8") as out:
        if live.exists():
            with open(live, encoding="utf-8") as f:
                for line in f:
                    if not line.endswith("\n") or not line.startswith('{"seq":'):
                        break  # a torn last line: never a durable entry
                    seq = int(line[7: line.index(",")])
                    if seq > head.seq:
                        break
                    if seq != last + 1:
                        raise IntegrityError(f"{live}: entry {seq} follows {last}; run `lyra audit verify`")
                    if seq == head.seq and f'"hash":"{head.hash}"' not in line:
                        raise IntegrityError(f"{live}: entry {seq} differs from the database's; "
                                             "run `lyra audit verify`")
                    out.write(line)
                    h.update(line.encode())
                    size += len(line.encode())
                    last = seq
        filled = 0
        if last < head.seq:  # the mirror lags (a crash between commit and file write)
            for rec in EventLog(engine).read(after_seq=last):
                if rec.seq > head.seq:
                    break
                line = rec.jsonl_line()
                out.write(line)
                h.update(line.encode())
                size += len(line.encode())
                filled += 1
    return size, h.hexdigest(), filled


def create_backup(settings: Settings, engine: Engine, dest: Path | None = None, *,
                  show_progress: bool = False, now_ms: int | None = None) -> Manifest:
    """Back up the home of ``settings`` (database ``engine``) into a new folder under ``dest``."""
    dest = dest or default_dest(settings)
    dest.mkdir(parents=True, exist_ok=True)
    work = dest / f".partial-{uuid.uuid4().hex[:12]}"
    work.mkdir()
    t0 = time.perf_counter()
    created = now_ms if now_ms is not None else int(time.time() * 1000)
    files: dict[str, list[object]] = {}
    try:
        backend = engine.url.get_backend_name()
        if backend == "sqlite":
            db_rel = "db/lyra.db"
            with tqdm(unit="page", desc="database", disable=not show_progress, leave=False) as bar:

                def pages(done: int, total: int) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                snap = sqlite_copy(sqlite_path(engine), work / db_rel, progress=pages)
        else:
            db_rel = "db/lyra.dump"
            snap = pg_dump(engine, work / db_rel)
        t_db = time.perf_counter() - t0
        from lyra.backup.manifest import sha256_file

        files[db_rel] = list(sha256_file(work / db_rel))
        size, digest, filled = _copy_mirror(engine, settings.audit_dir / "events.jsonl", work / MIRROR, snap)
        files[MIRROR] = [size, digest]
        t1 = time.perf_counter()
        _copy_tree(settings.market_dir, work, "market", files, show_progress, skip=dest)
        _copy_tree(settings.runs_dir, work, "runs", files, show_progress, skip=dest)
        keys = _copy_keys(settings.home / "secrets", work / "keys", files)
        t_files = time.perf_counter() - t1
        tools = {"lyra": importlib.metadata.version("lyra"), "python": platform.python_version(),
                 **snap.tools}
        m = Manifest(
            id=new_backup_id(created, snap.head.seq), created_ms=created, home=str(settings.home),
            chain_id=snap.chain_id, backend=backend, schema_revision=snap.revision, head=snap.head,
            row_counts=snap.row_counts, files=files, keys=keys, tools=tools,
            timings={"db_copy_s": round(t_db, 4), "longest_lock_ms": round(snap.longest_step_ms, 3),
                     "db_steps": snap.steps, "files_s": round(t_files, 4),
                     "mirror_lines_from_db": filled, "total_s": round(time.perf_counter() - t0, 4)},
        )
        write_json_atomic(work / MANIFEST, m.to_json())
        final = dest / m.id
        if final.exists():
            raise ValidationError("backup id", m.id, f"{final} already exists (two backups in the same ms?)")
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return m


def _copy_keys(src: Path, dst: Path, files: dict[str, list[object]]) -> list[str]:
    """The signing keys, owner-only: folder 0700, files 0600."""
    out: list[str] = []
    if not src.is_dir():
        return out
    dst.mkdir(mode=0o700, exist_ok=True)
    os.chmod(dst, 0o700)
    for p in sorted(src.iterdir()):
        if p.is_file():
            rel = f"keys/{p.name}"
            files[rel] = list(copy_hashed(p, dst / p.name, mode=0o600))
            out.append(rel)
    return out


# ---------------------------------------------------------------------------------- retention
def select_to_keep(entries: list[Entry], *, daily: int, weekly: int) -> set[str]:
    """Ids to keep: the newest backup of each of the last ``daily`` days that have one, and of
    each of the last ``weekly`` ISO weeks that have one (UTC). The newest backup is always kept."""
    if daily < 0 or weekly < 0:
        raise ValidationError("retention", f"daily={daily} weekly={weekly}", "must not be negative")
    keep: set[str] = set()
    newest_first = sorted(entries, key=lambda e: (e.manifest.created_ms, e.manifest.head.seq), reverse=True)
    if newest_first:
        keep.add(newest_first[0].manifest.id)
    for count, key in ((daily, lambda d: d.date().isoformat()),
                       (weekly, lambda d: f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}")):
        seen: list[str] = []
        for e in newest_first:
            k = key(datetime.fromtimestamp(e.manifest.created_ms / 1000, UTC))
            if k in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(k)
            keep.add(e.manifest.id)
    return keep


def prune(dest: Path, *, daily: int, weekly: int, dry_run: bool = False) -> list[str]:
    """Delete backups that the policy does not keep; returns their ids (oldest first)."""
    entries = list_backups(dest)
    keep = select_to_keep(entries, daily=daily, weekly=weekly)
    gone = [e for e in entries if e.manifest.id not in keep]
    if not dry_run:
        for e in gone:
            # Rename first: a half-deleted folder never looks like a whole backup.
            trash = e.path.with_name(f".deleting-{e.path.name}")
            os.replace(e.path, trash)
            shutil.rmtree(trash)
    return [e.manifest.id for e in gone]
