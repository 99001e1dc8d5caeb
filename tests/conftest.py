"""Shared fixtures and the suite's tiers.

Tiers. Markers are strict (pyproject.toml lists them). ``slow``, ``subprocess`` and ``numba``
are written in the test modules; ``postgres`` (the ``postgresql`` parameter of ``db_url`` and
friends), ``browser`` (tests/browser) and ``notebook`` (tests/notebooks) are added here.
``make test-fast`` deselects slow, subprocess, browser, notebook and postgres tests.

Databases. ``db_url`` is an empty database, once on SQLite and once on PostgreSQL; ``engine``
and ``session_home`` get one migrated to the latest revision. Running Alembic for every test is
slow, so each pytest process (each xdist worker) migrates a template once: a SQLite file copied
per test, a PostgreSQL database cloned per test with ``CREATE DATABASE ... TEMPLATE``. Every
PostgreSQL test database is dropped when its test ends, in a background thread (a DROP waits for
a server checkpoint, 0.2-2 s no test needs to wait for); the template goes at the end.

Parallel runs (pytest-xdist, ``--dist loadgroup``). Tests of a module with module-scoped
fixtures (a server, two scheduler daemons, executed notebooks) run on one worker, so those
fixtures are built once; so do the ``numba`` tests, so one worker imports vectorbt, not all;
known-slow tests are queued first, so no long test starts last.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.abc
import importlib.util
import itertools
import os
import queue
import re
import shutil
import socket
import sqlite3
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from lyra.feeds import MarketStore, import_file
from lyra.store import create_engine_for, upgrade

PG_ADMIN_URL = os.environ.get("LYRA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"

# Tiers ------------------------------------------------------------------------------------

#: Marks for test files this conftest's owner may not edit (their owners may add the marks in
#: the module instead; a mark already there is not added twice).
MARKS_OWNED_ELSEWHERE: dict[str, tuple[str, ...]] = {
    "tests/integration/session/test_kill_switch_sessions.py": ("slow", "subprocess"),
    "tests/integration/feeds/test_live_fake.py::test_100_forced_disconnects_lose_and_duplicate_nothing": ("slow",),
}
_BY_FOLDER = {"browser": "browser", "notebooks": "notebook"}
_SHARED_SCOPES = ("module", "class", "package")


def _is_postgres(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    return any(p == "postgresql" for p in params if isinstance(p, str)) or "pg_admin" in item.fixturenames


def _uses_shared_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)  # pytest's own record of the fixtures in use
    if info is None:
        return False
    return any(defs and defs[-1].scope in _SHARED_SCOPES for defs in info.name2fixturedefs.values())


@pytest.hookimpl(tryfirst=True)  # before xdist turns xdist_group marks into node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        rel = item.path.relative_to(REPO).as_posix()
        folder = rel.split("/")[1] if rel.count("/") >= 2 else ""
        if folder in _BY_FOLDER:
            item.add_marker(_BY_FOLDER[folder])
        if _is_postgres(item):
            item.add_marker("postgres")
        func_id = f"{rel}::{item.name.split('[')[0]}"
        for key in (rel, func_id):
            for name in MARKS_OWNED_ELSEWHERE.get(key, ()):
                if item.get_closest_marker(name) is None:
                    item.add_marker(name)
        if item.get_closest_marker("numba") is not None:
            # One worker imports vectorbt (seconds) and loads its compiled code, not every worker.
            item.add_marker(pytest.mark.xdist_group("numba"))
        elif _uses_shared_fixture(item):
            item.add_marker(pytest.mark.xdist_group(rel))
    # Slow tests first (stable: collection order otherwise), so the run does not end on one. A
    # module sharing a fixture moves as a whole, so that fixture is still built once.
    slow_groups = {str(g.args[0]) for it in items if it.get_closest_marker("slow") is not None
                   for g in it.iter_markers("xdist_group")}

    def later(it: pytest.Item) -> bool:
        group = it.get_closest_marker("xdist_group")
        if group is not None:
            return str(group.args[0]) not in slow_groups
        return it.get_closest_marker("slow") is None

    items.sort(key=later)
    _group_node_ids(config, items)


def _group_node_ids(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``--dist loadgroup`` group again. xdist tells its scheduler a test's group by
    appending ``@group`` to the node id, but pytest 9.2 builds node ids from a structured
    ``item._id`` and ignores the ``item._nodeid`` that pytest-xdist 3.8 writes, so groups were
    silently dropped (pytest-dev/pytest-xdist#1386). Do the same on the structured id, on
    workers only, once per test."""
    if not hasattr(config, "workerinput") or not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        node_id = getattr(item, "_id", None)
        groups = sorted({str(m.args[0]) for m in item.iter_markers("xdist_group") if m.args})
        if node_id is None or not groups or "@" in item.nodeid.rpartition("]")[2]:
            continue
        item._id = type(node_id).parse(f"{item.nodeid}@{'_'.join(groups)}")


# numba: vectorbt's simulators from the on-disk cache that scripts/warm_numba.py fills ----------


@functools.cache
def _warm_numba_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lyra_warm_numba", REPO / "scripts" / "warm_numba.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _CacheVectorbtOnImport(importlib.abc.MetaPathFinder):
    """When a test first imports vectorbt, turn numba's on-disk cache on for its uncached
    simulators (see scripts/warm_numba.py): ~10 s of compilation per process saved.
    Importing vectorbt takes seconds, so it is not imported for tests that do not use it."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "vectorbt":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader, run_module = spec.loader, spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            _warm_numba_module().enable_vectorbt_caching()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


# Unclosed sockets: where were they made? -------------------------------------------------

#: fd -> the last few places a socket got that fd (test, stack), with LYRA_TEST_TRACE_SOCKETS
_SOCKET_ORIGINS: dict[int, collections.deque[tuple[str, str]]] = {}


def _trace_sockets() -> None:
    """Opt-in (``LYRA_TEST_TRACE_SOCKETS=FILE``): remember where each socket was made, and when
    the GC reports one unclosed (a warning naming its ``fd=``), append the places that fd was
    given out to FILE. The warning itself lands on whatever test runs at that moment; tracemalloc
    would say where, but slows the whole suite several-fold."""
    real_init = socket.socket.__init__

    def init(self: socket.socket, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        try:
            fd = self.fileno()
        except OSError:
            return
        stack = "".join(traceback.format_stack(limit=16)[:-1])
        _SOCKET_ORIGINS.setdefault(fd, collections.deque(maxlen=4)).append(
            (os.environ.get("PYTEST_CURRENT_TEST", "?"), stack))

    socket.socket.__init__ = init  # type: ignore[method-assign]


def pytest_warning_recorded(warning_message: warnings.WarningMessage, when: str, nodeid: str,
                            location: object) -> None:
    path = os.environ.get("LYRA_TEST_TRACE_SOCKETS")
    m = re.search(r"fd=(\d+)", str(warning_message.message))
    if not path or m is None:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"=== reported in {nodeid} ({when}): {str(warning_message.message)[:300]}\n")
        for test, stack in _SOCKET_ORIGINS.get(int(m.group(1)), ()):
            f.write(f"--- fd {m.group(1)} made in {test}\n{stack}\n")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("LYRA_TEST_TRACE_SOCKETS") and not _SOCKET_ORIGINS:
        _trace_sockets()
    if "vectorbt" in sys.modules:
        _warm_numba_module().enable_vectorbt_caching()
    elif not any(isinstance(f, _CacheVectorbtOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _CacheVectorbtOnImport())


# Databases --------------------------------------------------------------------------------

#: URLs of test databases created already migrated (from a template).
_MIGRATED: set[str] = set()
#: Database names: lyra_t<host>_<pid>_<n>, the template lyra_t<host>_<pid>_tpl. The process id
#: lets a later run drop what a killed run left behind, and only that.
_PG_PREFIX = "lyra_t" + hashlib.sha1(socket.gethostname().encode()).hexdigest()[:4] + "_"


def _pg_url(name: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PgDatabases:
    """This process's databases on the PostgreSQL server: empty ones, clones of a migrated
    template, and a background thread that drops them."""

    def __init__(self, admin: Engine) -> None:
        self.admin = admin
        self.pid = os.getpid()
        self._n = itertools.count(1)
        self._template: str | None = None
        self._lock = threading.Lock()
        self._drops: queue.Queue[str | None] = queue.Queue()
        self._failed: list[str] = []
        self._dropper = threading.Thread(target=self._drop_loop, name="lyra-test-db-dropper", daemon=True)
        self._dropper.start()
        self._drop_leftovers()

    def _exec(self, sql: str) -> None:
        with self.admin.connect() as c:
            c.execute(sa.text(sql))

    def _drop_loop(self) -> None:
        # Each DROP DATABASE waits for a server checkpoint; drops running at the same time share
        # one, so whatever is queued is dropped together (10 drops: ~0.1 s instead of 1-6 s).
        done = False
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="lyra-test-db-drop") as pool:
            while not done:
                batch = [self._drops.get()]
                while not self._drops.empty():
                    batch.append(self._drops.get_nowait())
                done = None in batch
                list(pool.map(self._drop_now, [n for n in batch if n is not None]))

    def _drop_now(self, name: str) -> None:
        try:
            self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:  # reported at the end; a test must not fail on another's cleanup
            self._failed.append(f"{name}: {exc}")

    def _drop_leftovers(self) -> None:
        """Drop databases of earlier runs on this host whose process is gone (a killed run)."""
        with self.admin.connect() as c:
            names = c.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                              {"p": _PG_PREFIX.replace("_", r"\_") + "%"}).scalars().all()
        for name in names:
            pid = name[len(_PG_PREFIX):].split("_")[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                self._drops.put(name)

    def template(self) -> str:
        """The migrated template (made on first use; nobody stays connected to it)."""
        with self._lock:
            if self._template is None:
                name = f"{_PG_PREFIX}{self.pid}_tpl"
                self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                self._exec(f'CREATE DATABASE "{name}"')
                eng = create_engine_for(_pg_url(name))
                try:
                    upgrade(eng)
                finally:
                    eng.dispose()
                self._template = name
            return self._template

    def create(self, *, migrated: bool) -> str:
        """A new database's URL: empty, or a clone of the migrated template."""
        name = f"{_PG_PREFIX}{self.pid}_{next(self._n)}"
        self._exec(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{self.template()}"' if migrated else ""))
        return _pg_url(name)

    def drop(self, url: str) -> None:
        """Drop ``url``'s database soon (in the background)."""
        self._drops.put(make_url(url).database)

    def close(self) -> None:
        """Drop the template and wait until every queued drop is done."""
        if self._template is not None:
            self._drops.put(self._template)
        self._drops.put(None)
        self._dropper.join(300)
        if self._failed:
            print(f"\nwarning: could not drop test databases: {self._failed}", file=sys.stderr)


def _pg_available() -> bool:
    try:
        eng = sa.create_engine(PG_ADMIN_URL)
        with eng.connect() as c:
            c.execute(sa.text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the server's admin database (CREATE/DROP DATABASE)."""
    if not _pg_available():
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: start it (scripts/test.sh does)")
    eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def pg_databases(pg_admin: Engine) -> Iterator[PgDatabases]:
    dbs = PgDatabases(pg_admin)
    yield dbs
    dbs.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the latest revision, once per process; tests copy it."""
    path = tmp_path_factory.mktemp("sqlite-template") / "lyra.db"
    eng = create_engine_for(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()
    with sqlite3.connect(path) as c:  # everything in the main file, so copying it is enough
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL, once on SQLite (a file in tmp_path) and once on PostgreSQL. Empty, or
    already migrated when the test also uses ``engine`` or ``session_home``."""
    migrated = not {"engine", "session_home"}.isdisjoint(request.fixturenames)
    if request.param == "sqlite":
        path = tmp_path / "lyra.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
        dbs = None
    else:
        dbs = request.getfixturevalue("pg_databases")
        url = dbs.create(migrated=migrated)
    if migrated:
        _MIGRATED.add(url)
    try:
        yield url
    finally:
        _MIGRATED.discard(url)
        if dbs is not None:
            dbs.drop(url)


def _migrated_engine(url: str) -> Engine:
    eng = create_engine_for(url)
    if url not in _MIGRATED:
        upgrade(eng)
    return eng


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database engine (SQLite and PostgreSQL)."""
    eng = _migrated_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def lyra_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LYRA_HOME in a temp folder, with every other LYRA_* setting cleared."""
    for k in list(os.environ):
        if k.startswith("LYRA_") and k not in ("LYRA_TEST_PG_URL", "LYRA_SAMPLE_DATA"):
            monkeypatch.delenv(k)
    home = tmp_path / "home"
    monkeypatch.setenv("LYRA_HOME", str(home))
    return home


# Sessions: a LYRA_HOME with the shipped Coinbase BTC/USD hourly data imported ------------


@pytest.fixture(scope="session")
def market_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The market store with the shipped Coinbase 1h file, imported once per test process."""
    root = tmp_path_factory.mktemp("market-template")
    import_file(REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz", store=MarketStore(root))
    return root


@pytest.fixture
def session_home(tmp_path: Path, market_template: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[dict[str, object]]:
    """LYRA_HOME (market data in place), the migrated database, the environment to run `lyra`."""
    home = tmp_path / "home"
    shutil.copytree(market_template, home / "market")
    (home / "audit").mkdir(parents=True)
    engine = _migrated_engine(db_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_") or k == "LYRA_TEST_PG_URL"}
    env.update(LYRA_HOME=str(home), LYRA_DATABASE_URL=db_url)
    for k, v in env.items():
        if k.startswith("LYRA_"):
            monkeypatch.setenv(k, v)
    yield {"home": home, "engine": engine, "env": env, "db_url": db_url}
    engine.dispose()
