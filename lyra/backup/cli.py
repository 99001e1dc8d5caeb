"""``lyra backup create|list|verify|prune`` and ``lyra restore`` (mounted lazily by ``lyra.cli``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lyra.core.errors import LyraError

console = Console()
err = Console(stderr=True)
backup_app = typer.Typer(help="Backups of this home: create, list, verify, prune.", no_args_is_help=True)

DestOpt = Annotated[Path | None, typer.Option("--dest", help="Backups folder (default: $LYRA_HOME/backups).")]


def _fail(msg: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {msg}", highlight=False)
    raise typer.Exit(code)


def _settings_engine(required: bool = True) -> tuple[Any, Any]:
    from lyra.bootstrap import open_engine
    from lyra.settings import load_settings

    try:
        return open_engine()
    except LyraError as exc:
        if required:
            _fail(str(exc))
        return load_settings(), None


def _dest(settings: Any, dest: Path | None) -> Path:
    from lyra.backup.create import default_dest

    return (dest or default_dest(settings)).expanduser().resolve()


def _size(n: int) -> str:
    x = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if x < 1024 or unit == "GB":
            return f"{x:.1f} {unit}" if unit != "B" else f"{n} B"
        x /= 1024
    return f"{n} B"  # pragma: no cover


@backup_app.command("create")
def create_command(dest: DestOpt = None,
                   quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
                   nice: Annotated[int, typer.Option(help="Lower this process's CPU priority by N (0-19), so "
                                                     "running sessions keep theirs.")] = 10) -> None:
    """Back up the database, the audit mirror, market store, run archive and (owner-only) keys."""
    import os

    from lyra.backup.create import create_backup

    if nice:
        os.nice(max(0, min(19, nice)))  # a backup is background work (benchmarks/bench_backup.py)
    settings, engine = _settings_engine()
    try:
        m = create_backup(settings, engine, _dest(settings, dest),
                          show_progress=not quiet and sys.stderr.isatty())
    except LyraError as exc:
        _fail(str(exc))
    how = (f"longest step {m.timings['longest_lock_ms']:.1f} ms" if m.backend == "sqlite"
           else "pg_dump at one MVCC snapshot: writers never wait")
    console.print(f"[green]backup {m.id}[/]: head entry {m.head.seq}, {len(m.files)} files, {_size(m.size)}, "
                  f"database copy {m.timings['db_copy_s']:.2f} s ({how}), total {m.timings['total_s']:.2f} s")


@backup_app.command("list")
def list_command(dest: DestOpt = None,
                 as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The backups, oldest first, with their head and last verification."""
    from lyra.backup.manifest import list_backups

    settings, _ = _settings_engine(required=False)
    entries = list_backups(_dest(settings, dest))
    if as_json:
        print(json.dumps([{"id": e.manifest.id, "created_ms": e.manifest.created_ms,
                           "backend": e.manifest.backend, "head": e.manifest.head.seq,
                           "size": e.manifest.size, "verified": e.verified} for e in entries]))
        return
    if not entries:
        console.print("no backups")
        return
    t = Table(title="backups")
    for c in ("id", "created (UTC)", "db", "head entry", "size", "verified"):
        t.add_column(c)
    for e in entries:
        v = e.verified
        ver = ("never" if v is None else
               "[green]ok[/]" if v.get("ok") else f"[red]FAILED[/]: {v['problems'][0]}")
        t.add_row(e.manifest.id, f"{e.manifest.created:%Y-%m-%d %H:%M:%S}", e.manifest.backend,
                  str(e.manifest.head.seq), _size(e.manifest.size), ver)
    console.print(t)


@backup_app.command("verify")
def verify_command(
    backup_id: Annotated[str | None, typer.Argument(help="Backup id (default: the newest).")] = None,
    dest: DestOpt = None,
) -> None:
    """Restore into scratch; check checksums, audit chain, head, row counts, prefix of the log."""
    from lyra.backup.manifest import find_backup, list_backups
    from lyra.backup.verify import verify_backup

    settings, engine = _settings_engine(required=False)
    folder = _dest(settings, dest)
    try:
        if backup_id is None:
            entries = list_backups(folder)
            if not entries:
                _fail(f"no backups in {folder}")
            path = entries[-1].path
        else:
            path = find_backup(folder, backup_id)
        report = verify_backup(path, current=engine)
    except LyraError as exc:
        _fail(str(exc))
    if report.ok:
        console.print(f"[green]ok[/]: backup {report.backup_id} restores whole: {report.entries:,} entries, "
                      f"chain intact, head and checksums match, a prefix of the current log "
                      f"({report.seconds:.2f} s)")
        return
    err.print(f"[bold red]BAD BACKUP[/] {report.backup_id}:", highlight=False)
    for p in report.problems:
        err.print(f"  - {p}", highlight=False)
    raise typer.Exit(1)


@backup_app.command("prune")
def prune_command(keep_daily: Annotated[int, typer.Option(help="Keep the newest of the last N days.")] = 7,
                  keep_weekly: Annotated[int, typer.Option(help="Keep the newest of the last M weeks.")] = 4,
                  dest: DestOpt = None,
                  dry_run: Annotated[bool, typer.Option(help="Only say what would go.")] = False) -> None:
    """Delete backups outside the retention policy (keep N daily / M weekly)."""
    from lyra.backup.create import prune

    settings, _ = _settings_engine(required=False)
    try:
        gone = prune(_dest(settings, dest), daily=keep_daily, weekly=keep_weekly, dry_run=dry_run)
    except LyraError as exc:
        _fail(str(exc))
    verb = "would delete" if dry_run else "deleted"
    console.print(f"{verb} {len(gone)} backups" + (": " + ", ".join(gone) if gone else ""))


def restore_command(
    target: Annotated[Path, typer.Option("--target", help="The NEW home folder to restore into.")],
    until: Annotated[str | None, typer.Option(help="ISO time (UTC): the state as of this moment.")] = None,
    to_backup: Annotated[str | None, typer.Option("--to-backup", help="Restore this backup as is.")] = None,
    source: Annotated[Path | None, typer.Option(
        "--from", help="Backups folder (default: $LYRA_HOME/backups).")] = None,
    log: Annotated[Path | None, typer.Option(
        help="The event log (JSON lines) to replay (default: this home's mirror, else the newest backup's).")]
    = None,
    database_url: Annotated[str | None, typer.Option(
        help="Database to restore into (PostgreSQL: a new database name).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing target if nothing runs there.")] = False,
) -> None:
    """Restore a backup into a new LYRA_HOME, then replay the event log up to --until."""
    from lyra.backup.restore import restore
    from lyra.core.timeutil import datetime_to_ms, parse_utc

    settings, engine = _settings_engine(required=False)
    try:
        until_ms = datetime_to_ms(parse_utc(until)) if until else None
        if log is None and until_ms is not None:
            mirror = settings.audit_dir / "events.jsonl"
            log = mirror if mirror.is_file() else None
        res = restore(_dest(settings, source), target, until_ms=until_ms, backup_id=to_backup, log_path=log,
                      db_url=database_url, force=force, current=engine)
    except LyraError as exc:
        _fail(str(exc))
    console.print(f"[green]restored[/] {res.target} from backup {res.backup_id} (head {res.backup_head}) "
                  f"+ {res.replayed:,} replayed entries: head entry {res.head_seq}; audit verify ok on "
                  f"{res.verified_entries:,} entries ({res.seconds:.2f} s)")
    for n in res.notes:
        console.print(f"note: {n}")
    console.print(f"use it: LYRA_HOME={res.target}"
                  + (f" LYRA_DATABASE_URL={res.db_url}" if not res.db_url.startswith("sqlite") else ""))
