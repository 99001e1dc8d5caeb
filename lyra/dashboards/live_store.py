"""One live store per server process: the dashboards' shared, cached view of the database.

Every open page used to poll the event log on its own timer and re-run its queries, so the
database worked once per tab. A :class:`LiveStore` instead

* polls the log **once per interval for all open pages** (one indexed ``changes_since``) in a
  daemon thread that starts with the first subscribed view and stops with the last one;
* remembers which entry kinds arrived (a short history), so a page asks *the store*, in
  memory, whether anything it shows changed;
* answers the read model's queries through :attr:`LiveStore.reader`, a cache in front of
  :class:`~lyra.readside.ReadModel` with the same methods: N pages asking the same question
  at the same log head cost **one** database query.

What is cached and for how long (see :data:`POLICIES`):

``"log"``
    projections and log queries (orders, fills, positions, equity, risk, fees, events): valid
    while the log head is unchanged, since everything they read is written with a log entry.
``"log+ttl"``
    the session registry (``sessions``, ``session``, ``default_session_id``): new sessions are
    logged, but heartbeats and lease status are not, so also at most ``ttl_s`` old.
``"ttl"``
    data outside the log (recorded order books, the market store's bars): ``ttl_s`` old at most.

Pages never read the database from the poller's thread: each Panel document runs its own cheap
periodic callback (under its document lock) that reads the store's memory and, only when the
kinds it shows arrived, the cache. In a notebook::

    from lyra.dashboards import live_store
    store = live_store(rm)          # the process's store for rm's database
    store.reader.fills("demo")      # cached until the log moves
    store.poll_once()               # poll by hand (tests drive the store this way)
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lyra.readside import Changes, RiskState

#: How each read-model method is cached (methods not listed are passed through uncached).
POLICIES: dict[str, str] = {
    **dict.fromkeys(("events", "orders", "fills", "positions", "equity_curve", "last_marks",
                     "risk_state", "risk_decisions", "fees"), "log"),
    **dict.fromkeys(("sessions", "session", "default_session_id"), "log+ttl"),
    **dict.fromkeys(("book", "spread_depth", "book_instruments", "bars"), "ttl"),
}
#: Most cached answers kept (the oldest go first); the poller also drops stale ones.
MAX_ENTRIES = 512
#: Polls remembered, so a page that missed some still learns which kinds arrived.
HISTORY = 512


@dataclass(frozen=True)
class _Entry:
    value: Any
    head: int  #: the store's log head when the query started
    at: float  #: the store's clock when the query started


@dataclass(frozen=True)
class _Poll:
    after: int  #: the head before this poll
    head: int  #: the head it found
    kinds: dict[str, int]


def is_live_source(source: Any) -> bool:
    """Whether ``source`` can change under the views: a source may say so with a ``live``
    attribute (a research result says False); otherwise one with a database ``engine`` is."""
    declared = getattr(source, "live", None)
    if isinstance(declared, bool):
        return declared
    return getattr(source, "engine", None) is not None


class LiveStore:
    """The shared poller and query cache over one data source (usually a ReadModel).

    ``interval_s``: poll period of the log; ``ttl_s``: lifetime of answers not (only) tied
    to the log; ``autostart=False`` never starts the thread (call :meth:`poll_once`);
    ``clock``: monotonic seconds (tests inject one).
    """

    def __init__(self, source: Any, *, interval_s: float = 0.25, ttl_s: float = 1.0,
                 autostart: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        if not interval_s > 0 or not ttl_s >= 0:
            raise ValueError("interval_s must be > 0 and ttl_s >= 0")
        self.source = source
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.autostart = autostart
        self._clock = clock
        self._lock = threading.RLock()  # guards everything below; never held during a query
        self._poll_lock = threading.Lock()  # one poll at a time
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # view -> its "wake" (None: the view reads on its own timer only)
        self._subs: weakref.WeakKeyDictionary[Any, Callable[[], None] | None] = weakref.WeakKeyDictionary()
        self._head: int | None = None  # None: not polled yet (or forgotten when the poller stopped)
        self._history: deque[_Poll] = deque(maxlen=HISTORY)
        self._cache: dict[tuple[Any, ...], _Entry] = {}
        self._pending: dict[tuple[Any, ...], Future[Any]] = {}
        self._error: BaseException | None = None
        #: polls done (failed ones included), database queries run for readers, cache hits
        self.polls = 0
        self.queries = 0
        self.hits = 0
        self.reader = CachedReader(self)

    # ------------------------------------------------------------------ state
    @property
    def head(self) -> int:
        """The log head of the last poll (polls now if the store knows none yet); raises the
        poll's error when the database cannot be read."""
        with self._lock:
            head = self._head
        if head is None:
            self.poll_once()
            with self._lock:
                if self._head is None:
                    raise self._error or RuntimeError("the live store could not read the log head")
                head = self._head
        return head

    @property
    def error(self) -> BaseException | None:
        """The last poll's error (None once a poll succeeds again)."""
        with self._lock:
            return self._error

    @property
    def running(self) -> bool:
        """Whether the poller thread is alive."""
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    @property
    def subscribers(self) -> int:
        """Views following this store (each open page's views)."""
        with self._lock:
            return len(self._subs)

    # ------------------------------------------------------------------ subscribers
    def subscribe(self, view: Any, wake: Callable[[], None] | None = None) -> None:
        """Follow the log for ``view`` (held weakly: a dropped view leaves by itself); the
        first subscriber starts the poller. ``wake`` (thread-safe, must not hold ``view``
        strongly) is called from the poller after a poll that found new entries, so a page
        can look at once instead of on its next timer tick."""
        with self._lock:
            self._subs[view] = wake
            if self.autostart and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lyra-live-store", daemon=True)
                self._thread.start()

    def unsubscribe(self, view: Any) -> None:
        """Stop following for ``view``; the poller stops when none remain."""
        with self._lock:
            self._subs.pop(view, None)
            if not self._subs:
                self._wake.set()

    def close(self) -> None:
        """Drop every subscriber and stop the poller (it exits within one poll)."""
        with self._lock:
            self._subs = weakref.WeakKeyDictionary()
            self._wake.set()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._subs:
                    # Stopped, the store knows nothing: the log may move before the next page
                    # opens, so it forgets its head and answers rather than serve them stale.
                    self._thread = None
                    self._forget()
                    return
            self.poll_once()
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def _forget(self) -> None:
        self._head = None
        self._history.clear()
        self._cache.clear()
        self._error = None

    # ------------------------------------------------------------------ polling
    def poll_once(self) -> Changes | None:
        """Ask the log what arrived since the last poll (one query); None if that failed (the
        error is kept in :attr:`error` and the next poll tries again)."""
        with self._poll_lock:
            with self._lock:
                since = self._head
            try:
                ch = (self.source.changes_since(since) if since is not None
                      else Changes(int(self.source.head_seq())))
            except Exception as exc:  # the database went away: keep polling, let the pages say so
                with self._lock:
                    first = self._error is None
                    self._error = exc
                    self.polls += 1
                if first:
                    logging.getLogger(__name__).warning("live store: reading the event log failed: %r", exc)
                return None
            now = self._clock()
            wakes: list[Callable[[], None]] = []
            with self._lock:
                self.polls += 1
                self._error = None
                if self._head is None:
                    self._head = ch.head_seq
                elif ch.head_seq > self._head:
                    self._history.append(_Poll(self._head, ch.head_seq, dict(ch.kinds)))
                    self._head = ch.head_seq
                    wakes = [w for w in self._subs.values() if w is not None]
                self._purge(now)
        for wake in wakes:  # outside the locks: a wake only schedules work on its page's loop
            try:
                wake()
            except Exception:  # a page closing under us: its timer still runs until it is gone
                logging.getLogger(__name__).debug("live store: waking a view failed", exc_info=True)
        return ch

    def changes_since(self, seq: int) -> Changes:
        """What arrived after ``seq`` as far as the polls know (memory only; a ``seq`` older
        than the remembered polls asks the database once)."""
        head = self.head
        with self._lock:
            head = self._head if self._head is not None else head
            if seq >= head:
                return Changes(seq)
            floor = self._history[0].after if self._history else head
            if seq >= floor:
                kinds: dict[str, int] = {}
                for p in self._history:
                    if p.head > seq:
                        for k, n in p.kinds.items():
                            kinds[k] = kinds.get(k, 0) + n
                return Changes(head, kinds)
        # Older than the history: the kinds from the database, the head from the store, so a
        # page never gets ahead of the answers the cache holds.
        return Changes(head, dict(self.source.changes_since(seq).kinds))

    # ------------------------------------------------------------------ the cache
    def _valid(self, entry: _Entry, policy: str, head: int, now: float) -> bool:
        if policy == "ttl":
            return now - entry.at < self.ttl_s
        if entry.head != head:
            return False
        return policy == "log" or now - entry.at < self.ttl_s

    def _purge(self, now: float) -> None:
        head = self._head if self._head is not None else -1
        for key in [k for k, e in self._cache.items() if not self._valid(e, POLICIES[k[0]], head, now)]:
            del self._cache[key]

    def read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``source.<method>(*args, **kwargs)``, cached by :data:`POLICIES`: callers asking
        the same question concurrently share one query, and each gets its own copy of a
        frame (a view that adds a column does not change another view's)."""
        fn = getattr(self.source, method)
        policy = POLICIES.get(method)
        if policy is None:
            return fn(*args, **kwargs)
        key = (method, _freeze(args), _freeze(kwargs))
        head = self.head
        now = self._clock()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and self._valid(entry, policy, head, now):
                self.hits += 1
                return _fresh(entry.value)
            flight = (key, head)
            pending = self._pending.get(flight)
            owner = pending is None
            if pending is None:
                pending = self._pending[flight] = Future()
        if not owner:
            with self._lock:
                self.hits += 1
            return _fresh(pending.result())
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:
            with self._lock:
                self._pending.pop(flight, None)
            pending.set_exception(exc)
            raise
        with self._lock:
            self._pending.pop(flight, None)
            self.queries += 1
            if policy == "ttl" or self._head == head:  # an answer for an older head is dead already
                self._cache.pop(key, None)  # re-insert: the dict's order is the eviction order
                self._cache[key] = _Entry(value, head, now)
                while len(self._cache) > MAX_ENTRIES:
                    del self._cache[next(iter(self._cache))]
        pending.set_result(value)
        return _fresh(value)


class CachedReader:
    """The store's read model: ReadModel's methods, answered from the store's cache when the
    question was asked at the same log head (see :data:`POLICIES`); ``head_seq`` and
    ``changes_since`` answer from the store's memory. Other attributes (``engine``,
    ``market_dir``) are the source's."""

    def __init__(self, store: LiveStore) -> None:
        self._store = store

    @property
    def store(self) -> LiveStore:
        return self._store

    def head_seq(self) -> int:
        """The log head of the store's last poll."""
        return self._store.head

    def changes_since(self, seq: int, session_id: str | None = None) -> Changes:
        """What arrived after ``seq`` (from memory; per session: the source, uncached)."""
        if session_id is not None:
            return self._store.source.changes_since(seq, session_id)  # type: ignore[no-any-return]
        return self._store.changes_since(seq)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store.source, name)
        if name in POLICIES and callable(attr):
            return functools.partial(self._store.read, name)
        return attr


def _freeze(value: Any) -> Hashable:
    """A hashable key for call arguments (lists become tuples, dicts sorted item tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return (type(value).__name__, *(_freeze(v) for v in items))
    if isinstance(value, Path):
        return str(value)
    hash(value)  # an unhashable argument fails here, loudly, not as a silent cache miss
    return value  # type: ignore[no-any-return]


def _fresh(value: Any) -> Any:
    """A caller's own copy of a cached answer: frames are copy-on-write (cheap shallow
    copies), lists and dicts are copied; frozen values are shared."""
    if isinstance(value, pd.DataFrame):
        return value.copy(deep=False)
    if isinstance(value, RiskState):
        return RiskState(value.scopes.copy(deep=False), value.trips.copy(deep=False),
                         value.kills.copy(deep=False))
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


_STORES: dict[Hashable, LiveStore] = {}
_STORES_LOCK = threading.Lock()


def live_store(source: Any) -> LiveStore:
    """The process's store for ``source``'s database (one per engine and market store; the
    first call creates it, every view of every page shares it)."""
    engine = getattr(source, "engine", None)
    key: Hashable = (("engine", id(engine), str(getattr(source, "market_dir", None)))
                     if engine is not None else ("source", id(source)))
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = LiveStore(source)
        return store


class StatementCounter:
    """Counts the SQL statements an engine runs (all, and SELECTs) and, with ``path``, writes
    ``statements selects unix_time`` there (atomically, at most every ``every_s``): how the
    dashboard benchmark reads the Panel server's database load from outside the process.
    ``lyra serve`` attaches one when ``LYRA_TEST_COUNT_SQL=<path>`` is set."""

    def __init__(self, engine: Any, path: Path | None = None, *, every_s: float = 0.1) -> None:
        import sqlalchemy as sa

        self.engine = engine
        self.path = path
        self.every_s = every_s
        self.statements = 0
        self.selects = 0
        self._written = 0.0
        self._lock = threading.Lock()
        sa.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        with self._lock:
            self.statements += 1
            if statement.lstrip()[:6].upper() == "SELECT":
                self.selects += 1
            now = time.time()
            if self.path is not None and now - self._written >= self.every_s:
                self._written = now
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_text(f"{self.statements} {self.selects} {now:.3f}\n")
                os.replace(tmp, self.path)

    def close(self) -> None:
        """Stop counting."""
        import sqlalchemy as sa

        sa.event.remove(self.engine, "before_cursor_execute", self._count)
