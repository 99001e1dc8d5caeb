"""Commissioning: walk every component of an installation and say pass, warn or fail, with
the fix for each failure (``lyra doctor --commission``, ``--json`` for machines).

Components: the database (reachable, at this Lyra's migration level), market data (present;
its newest bar shown), feeds (offline replay, or the venues live sessions need), brokers'
credentials for live sessions (present, never printed), the signing key, the scheduler daemon
(schedules not overdue), backups (a verified one, fresh), metrics endpoints (answering), and
the audit chain (verified end to end).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.settings import Settings

PASS, WARN, FAIL = "pass", "warn", "fail"
#: A schedule this far past its fire time means no daemon is claiming fires.
SCHEDULER_LATE_S = 300.0
#: A verified backup older than this is a warning (the alert rule says 26 h as well).
BACKUP_MAX_AGE_S = 26 * 3600.0


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the checklist."""

    name: str
    status: str  #: pass, warn or fail
    detail: str
    fix: str = ""


def _database(settings: Settings) -> tuple[Check, Engine | None]:
    from lyra.store import create_engine_for, current_revision, head_revision, ping

    engine = create_engine_for(settings.db_url)
    try:
        ping(engine)
    except Exception as exc:
        engine.dispose()
        return Check(
            "database", FAIL, f"cannot connect: {exc}", "check LYRA_DATABASE_URL and the server"
        ), None
    cur, head = current_revision(engine), head_revision()
    if cur != head:
        return Check(
            "database",
            FAIL,
            f"at migration {cur or 'none (empty)'}, this Lyra needs {head}",
            "run `lyra init` to migrate it (take a backup first: `lyra backup create`)",
        ), engine
    return Check("database", PASS, f"{engine.url.get_backend_name()} at migration {head}"), engine


def _market(settings: Settings) -> Check:
    from lyra.feeds.store import MarketStore

    try:
        keys = MarketStore(settings.market_dir).datasets()
    except Exception as exc:
        return Check(
            "market data",
            FAIL,
            f"cannot read {settings.market_dir}: {exc}",
            "check the folder's permissions, or `lyra data list`",
        )
    if not keys:
        return Check(
            "market data",
            FAIL,
            f"no datasets in {settings.market_dir}",
            "run `lyra init` (sample data) or `lyra data import FILE` / `lyra data download`",
        )
    return Check("market data", PASS, f"{len(keys)} datasets in {settings.market_dir}")


def _live_sessions(engine: Engine) -> list[dict[str, Any]]:
    from lyra.store.tables_session import sessions

    with engine.connect() as c:
        rows = c.execute(
            sa.select(sessions.c.session_id, sessions.c.config, sessions.c.status).where(
                sessions.c.mode == "live", sessions.c.status.in_(("running", "created"))
            )
        ).all()
    return [
        {"session_id": r.session_id, "venue": json.loads(r.config).get("venue", ""), "status": r.status}
        for r in rows
    ]


def _feeds_and_credentials(settings: Settings, engine: Engine) -> list[Check]:
    from lyra.session.live import live_credentials

    live = _live_sessions(engine)
    if not live:
        return [
            Check("feeds", PASS, "offline: sessions replay the local store (no live session registered)"),
            Check("broker credentials", PASS, "no live session needs any"),
        ]
    venues = sorted({s["venue"] for s in live})
    missing = []
    for v in venues:
        try:
            if not live_credentials(v, home=settings.home):
                missing.append(v)
        except Exception:
            missing.append(v)
    feeds = Check(
        "feeds",
        WARN,
        f"live sessions on {', '.join(venues)}: reachability is checked by the sessions",
        "watch LyraFeedStale; `lyra session status`",
    )
    if missing:
        return [
            feeds,
            Check(
                "broker credentials",
                FAIL,
                f"missing for {', '.join(missing)} (values never shown)",
                f"set LYRA_{missing[0].upper()}_API_KEY/_API_SECRET or "
                f"{settings.home}/secrets/{missing[0]}.json (chmod 600)",
            ),
        ]
    return [feeds, Check("broker credentials", PASS, f"present for {', '.join(venues)} (values never shown)")]


def _signing_key(settings: Settings) -> Check:
    from lyra.auth.tokens import load_signing_key, validate_signing_key

    if settings.jwt_secret:
        try:
            validate_signing_key(settings.jwt_secret)
        except Exception as exc:
            return Check(
                "signing key",
                FAIL,
                f"LYRA_JWT_SECRET is not usable: {exc}",
                "python -c 'from lyra.auth import generate_signing_key as g; print(g())'",
            )
        return Check("signing key", PASS, "from LYRA_JWT_SECRET")
    path = settings.home / "secrets" / "jwt.key"
    if not path.exists():
        return Check(
            "signing key",
            FAIL,
            f"{path} is missing",
            f"python -c 'from lyra.auth import generate_signing_key as g; print(g())' > {path} "
            f"&& chmod 600 {path}",
        )
    try:
        load_signing_key(path)
    except Exception as exc:
        return Check("signing key", FAIL, str(exc), f"chmod 600 {path}, or create a new key")
    return Check("signing key", PASS, f"{path} (owner-only)")


def _scheduler(engine: Engine, now_ms: int) -> Check:
    from lyra.store.tables_ops import schedules

    with engine.connect() as c:
        rows = c.execute(
            sa.select(schedules.c.name, schedules.c.next_ts).where(sa.not_(schedules.c.paused))
        ).all()
    if not rows:
        return Check("scheduler", PASS, "no active schedules")
    late = [
        (name, (now_ms - int(ts)) / 1000) for name, ts in rows if now_ms - int(ts) > SCHEDULER_LATE_S * 1000
    ]
    if late:
        name, lag = max(late, key=lambda x: x[1])
        return Check(
            "scheduler",
            FAIL,
            f"{len(late)} of {len(rows)} schedules overdue ({name}: {lag:.0f} s late): "
            "no scheduler daemon is claiming their fires",
            "start the daemon: `lyra schedule run`",
        )
    return Check("scheduler", PASS, f"{len(rows)} active schedules, none overdue")


def _backups(settings: Settings, now_ms: int) -> Check:
    from lyra.backup.manifest import list_backups

    folder = settings.home / "backups"
    entries = list_backups(folder)
    if not entries:
        return Check("backups", WARN, f"none in {folder}", "`lyra backup create` then `lyra backup verify`")
    newest = entries[-1]
    if newest.verified is not None and not newest.verified_ok:
        return Check(
            "backups",
            FAIL,
            f"newest backup {newest.manifest.id} failed verification",
            "`lyra backup verify`; take a new one with `lyra backup create`",
        )
    ok = [e for e in entries if e.verified_ok]
    if not ok:
        return Check("backups", WARN, f"{len(entries)} backups, none verified", "`lyra backup verify`")
    age = (now_ms - ok[-1].manifest.created_ms) / 1000
    if age > BACKUP_MAX_AGE_S:
        return Check(
            "backups", WARN, f"newest verified backup is {age / 3600:.1f} h old", "`lyra backup create`"
        )
    return Check("backups", PASS, f"newest verified backup {ok[-1].manifest.id}, {age / 3600:.1f} h old")


def _endpoints(engine: Engine) -> Check:
    from lyra.metrics.serve import targets

    groups = targets(engine)
    if not groups:
        return Check("metrics endpoints", PASS, "none recorded (no session or lyra serve running)")
    dead = []
    for g in groups:
        url = f"http://{g['targets'][0]}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                r.read(64)
        except OSError:
            dead.append(f"{g['labels']['lyra_kind']}:{g['labels']['lyra_name']}")
    if dead:
        return Check(
            "metrics endpoints",
            WARN,
            f"{len(dead)} of {len(groups)} not answering: {', '.join(dead)}",
            "a process that died: `lyra session resume <id>` (or ignore a session you will not resume)",
        )
    return Check("metrics endpoints", PASS, f"{len(groups)} answering")


def _audit(settings: Settings, engine: Engine) -> Check:
    from lyra.audit.verify import verify

    report = verify(engine, settings.audit_dir / "events.jsonl")
    if report.ok:
        return Check("audit chain", PASS, f"{report.entries} entries verified, mirror file matches")
    return Check(
        "audit chain",
        FAIL,
        f"first problem: {report.first_bad}",
        "`lyra audit verify` names every problem; restore from a verified backup if tampered",
    )


def run_commission(settings: Settings, *, now_ms: Callable[[], int] | None = None) -> list[Check]:
    """Every check, in order (later checks are skipped with a fail when the database is unusable)."""
    now = (now_ms or (lambda: time.time_ns() // 1_000_000))()
    db, engine = _database(settings)
    out = [db, _market(settings), _signing_key(settings), _backups(settings, now)]
    if engine is None or db.status == FAIL:
        if engine is not None:
            engine.dispose()
        out.append(Check("the rest", FAIL, "skipped: the database must be usable first", db.fix))
        return out
    try:
        out += _feeds_and_credentials(settings, engine)
        out += [_scheduler(engine, now), _endpoints(engine), _audit(settings, engine)]
    finally:
        engine.dispose()
    return out


def as_json(checks: list[Check]) -> str:
    """The checklist for machines."""
    return json.dumps(
        {"ok": all(c.status != FAIL for c in checks), "checks": [asdict(c) for c in checks]}, indent=2
    )


__all__ = ["FAIL", "PASS", "WARN", "Check", "as_json", "run_commission"]
