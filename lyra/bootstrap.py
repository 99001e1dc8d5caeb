"""Setting up and checking a Lyra installation (``lyra init``, ``lyra doctor``)."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import Any

from rich.console import Console
from sqlalchemy.engine import Engine

from lyra.core.errors import LyraError
from lyra.sample_data import sample_ohlcv_files
from lyra.settings import Settings, load_settings
from lyra.store import create_engine_for, current_revision, head_revision, ping, require_head, upgrade

log = logging.getLogger(__name__)

#: Packages Lyra cannot work without, checked by ``lyra doctor``.
REQUIRED_PACKAGES = (
    "numpy", "pandas", "pyarrow", "sqlalchemy", "alembic", "pydantic", "ccxt", "vectorbt",
    "panel", "holoviews", "bokeh", "papermill", "jwt", "typer",
)


def open_engine(settings: Settings | None = None, *, check_schema: bool = True) -> tuple[Settings, Engine]:
    """Settings and a database engine, refusing a database at the wrong migration level.

    Inside a command of the ``lyra`` CLI (a Click context), the engine's pooled connections
    are closed when the command ends, however it ends (an error exit included); elsewhere
    the caller disposes of the engine (``engine.dispose()``) when done with it.
    """
    settings = settings or load_settings()
    engine = create_engine_for(settings.db_url)
    try:
        ping(engine)
        if check_schema:
            require_head(engine)
    except BaseException:
        engine.dispose()  # the caller never sees it, so it cannot close its pooled connections
        raise
    _dispose_with_command(engine)
    return settings, engine


def _dispose_with_command(engine: Engine) -> None:
    """Dispose of ``engine`` when the running CLI command ends, if one is running. Commands
    leave through ``typer.Exit`` on every refusal; this closes their connections on all paths
    (a disposed engine still works: it opens new connections if used again)."""
    # Typer >= 0.17 runs on its own copy of Click; older ones on Click itself. A module not
    # imported means no command of that kind is running. (tests/integration/cli pins this.)
    for name in ("typer._click.globals", "click.globals"):
        module = sys.modules.get(name)
        ctx = module.get_current_context(silent=True) if module is not None else None
        if ctx is not None:
            ctx.call_on_close(engine.dispose)
            return


def initialise(*, load_samples: bool = True, console: Console | None = None,
               settings: Settings | None = None) -> dict[str, Any]:
    """Create LYRA_HOME, migrate the database, import the shipped sample data. Idempotent."""
    settings = settings or load_settings()
    settings.ensure_home()
    engine = create_engine_for(settings.db_url)
    try:
        ping(engine)
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
        if before != after:
            log.info("database migrated from %s to %s", before or "empty", after)
        # Open the log once so the JSON-lines mirror exists and has caught up.
        from lyra.audit import EventLog

        EventLog(engine, settings.audit_dir / "events.jsonl")
        datasets = 0
        if load_samples:
            datasets = load_sample_data(settings, console=console)
            from lyra.feeds.book_tap import record_sample_books

            record_sample_books(engine)  # a real L2 book (Kraken BTC/CHF) for the dashboards; < 1 s, once
    finally:
        engine.dispose()  # close the pooled connections now, not whenever the engine is collected
    return {"home": str(settings.home), "database": settings.db_url.split("://")[0],
            "revision": after, "datasets": datasets}


def load_sample_data(settings: Settings, console: Console | None = None) -> int:
    """Import every shipped OHLCV file into the market store (skips what is already there)."""
    from lyra.feeds.importer import import_file
    from lyra.feeds.store import MarketStore

    store = MarketStore(settings.market_dir)
    files = sample_ohlcv_files()
    from tqdm import tqdm

    for path in tqdm(files, desc="sample data", unit="file", disable=console is None):
        import_file(path, store=store)
    return len(files)


def run_checks(settings: Settings | None = None) -> list[tuple[str, bool, str]]:
    """Every ``lyra doctor`` check as (name, passed, detail)."""
    out: list[tuple[str, bool, str]] = []
    v = sys.version_info
    out.append(("python", v >= (3, 11), f"{v.major}.{v.minor}.{v.micro} (need >= 3.11)"))
    missing = []
    for name in REQUIRED_PACKAGES:
        # find_spec, not import: importing vectorbt/panel costs seconds and proves little more.
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    detail = "all importable" if not missing else "missing: " + ", ".join(missing)
    out.append(("packages", not missing, detail))
    try:
        settings = settings or load_settings()
        out.append(("settings", True, f"home {settings.home}"))
    except LyraError as exc:
        out.append(("settings", False, str(exc)))
        return out
    home_ok = settings.home.is_dir()
    detail = str(settings.home) if home_ok else f"{settings.home} missing: run `lyra init`"
    out.append(("home", home_ok, detail))
    try:
        engine = create_engine_for(settings.db_url)
        ping(engine)
        out.append(("database", True, engine.url.render_as_string(hide_password=True)))
        cur, head = current_revision(engine), head_revision()
        out.append(("migrations", cur == head,
                    f"at {cur}" if cur == head else f"at {cur or 'none'}, need {head}: run `lyra init`"))
    except LyraError as exc:
        out.append(("database", False, str(exc)))
    market = settings.market_dir
    n = len(list(market.glob("*/*/*"))) if market.is_dir() else 0
    out.append(("market data", n > 0, f"{n} datasets in {market}" if n else "none: run `lyra init`"))
    return out
