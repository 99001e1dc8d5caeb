"""A backup's manifest, its folder layout, and the registry (the manifests in a backups folder).

A backup is a folder ``<backups>/<id>/``::

    manifest.json        what is in it: time, tools, schema, head (seq, hash), row counts, checksums
    db/lyra.db           SQLite: a page-by-page copy (online backup API), integrity-checked
    db/lyra.dump         PostgreSQL: ``pg_dump --format=custom`` at the manifest's snapshot
    audit/events.jsonl   the JSON-lines mirror, exactly up to the head
    market/...           the Parquet market store
    runs/...             the notebook run archive
    keys/...             the signing keys (folder 0700, files 0600)
    verified.json        the last ``lyra backup verify`` of it (not covered by the checksums)

It is written into ``.<id>.partial`` and renamed when complete, so a folder without that prefix
is a whole backup; no table in the database keeps the registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lyra.core.errors import ValidationError

FORMAT = 1
MANIFEST = "manifest.json"
VERIFIED = "verified.json"
_ID = re.compile(r"^\d{8}T\d{6}\d{3}Z-\d+$")
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Head:
    """The event log's last entry: its sequence number, hash and time stamp (ms UTC)."""

    seq: int
    hash: str
    ts: int


@dataclass(slots=True)
class Manifest:
    """What a backup holds. ``files`` maps a path inside the backup to ``[size, sha256]``."""

    id: str
    created_ms: int
    home: str
    chain_id: str  #: hash of entry 1: which home's history this is ("" for an empty log)
    backend: str  #: sqlite / postgresql
    schema_revision: str
    head: Head
    row_counts: dict[str, int]
    files: dict[str, list[Any]]
    keys: list[str]
    tools: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(self.created_ms / 1000, UTC)

    @property
    def size(self) -> int:
        return sum(int(v[0]) for v in self.files.values())


def _need(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    if key not in d:
        raise ValidationError(f"{where}: {key}", None, "missing from the manifest")
    v = d[key]
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is int):
        raise ValidationError(f"{where}: {key}", v, f"must be {getattr(kind, '__name__', kind)}")
    return v


def read_manifest(folder: Path) -> Manifest:
    """Read and check ``folder/manifest.json``; a ValidationError names the field at fault."""
    path = folder / MANIFEST
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError("backup", str(folder),
                              "has no manifest.json (not a backup, or incomplete)") from None
    except (OSError, ValueError) as exc:
        raise ValidationError(str(path), None, f"unreadable manifest: {exc}") from None
    if not isinstance(d, dict):
        raise ValidationError(str(path), None, "manifest is not a JSON object")
    fmt = _need(d, "format", int, path)
    if fmt > FORMAT:
        raise ValidationError(f"{path}: format", fmt,
                              f"written by a newer Lyra (this one reads format {FORMAT})")
    h = _need(d, "head", dict, path)
    head = Head(int(_need(h, "seq", int, path)), str(_need(h, "hash", str, path)),
                int(_need(h, "ts", int, path)))
    files = _need(d, "files", dict, path)
    for name, v in files.items():
        if (not isinstance(v, list) or len(v) != 2 or not isinstance(v[0], int)
                or not isinstance(v[1], str) or Path(name).is_absolute() or ".." in Path(name).parts):
            raise ValidationError(f"{path}: files.{name}", v,
                                  "must be [size, sha256] of a path inside the backup")
    return Manifest(
        id=_need(d, "id", str, path), created_ms=_need(d, "created_ms", int, path),
        home=_need(d, "home", str, path), chain_id=_need(d, "chain_id", str, path),
        backend=_need(d, "backend", str, path), schema_revision=_need(d, "schema_revision", str, path),
        head=head, row_counts=_need(d, "row_counts", dict, path), files=files,
        keys=_need(d, "keys", list, path), tools=_need(d, "tools", dict, path),
        timings=d.get("timings", {}), format=fmt,
    )


def write_json_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def new_backup_id(now_ms: int, head_seq: int) -> str:
    """``YYYYmmddTHHMMSSmmmZ-<head seq>``: sorts by time; the seq tells where in the log it is."""
    t = datetime.fromtimestamp(now_ms / 1000, UTC)
    return f"{t:%Y%m%dT%H%M%S}{now_ms % 1000:03d}Z-{head_seq}"


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> tuple[int, str]:
    """(size, sha256 hex) of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            n += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return n, h.hexdigest()


def copy_hashed(src: Path, dst: Path, progress: Callable[[int], None] | None = None,
                *, mode: int | None = None) -> tuple[int, str]:
    """Copy ``src`` to ``dst`` and hash what was written, in one pass; (size, sha256)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    n = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(dst, flags, 0o600 if mode is None else mode)
    with open(src, "rb") as fi, os.fdopen(fd, "wb") as fo:
        while chunk := fi.read(_CHUNK):
            fo.write(chunk)
            h.update(chunk)
            n += len(chunk)
            if progress is not None:
                progress(len(chunk))
    if mode is None:
        os.chmod(dst, 0o644)
    return n, h.hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    """A backup in the registry: its folder, manifest, and last verification (if any)."""

    path: Path
    manifest: Manifest
    verified: dict[str, Any] | None

    @property
    def verified_ok(self) -> bool:
        return bool(self.verified and self.verified.get("ok"))


def list_backups(folder: Path) -> list[Entry]:
    """Whole backups in ``folder``, oldest first (partial ones and strangers are skipped)."""
    out: list[Entry] = []
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if not p.is_dir() or not _ID.match(p.name):
            continue
        try:
            m = read_manifest(p)
        except ValidationError:
            continue  # listed by `verify` on its own id; the registry shows only readable ones
        v: dict[str, Any] | None = None
        try:
            v = json.loads((p / VERIFIED).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            v = None
        out.append(Entry(p, m, v))
    out.sort(key=lambda e: (e.manifest.created_ms, e.manifest.head.seq))
    return out


def find_backup(folder: Path, backup_id: str) -> Path:
    """The folder of backup ``backup_id`` in ``folder``; a ValidationError if there is none."""
    p = folder / backup_id
    if not (p / MANIFEST).exists():
        known = [e.manifest.id for e in list_backups(folder)]
        raise ValidationError("backup id", backup_id, f"no such backup in {folder}",
                              "known: " + (", ".join(known[-5:]) if known else "none"))
    return p
