"""Live market data from exchange websockets (ccxt.pro), as Lyra events.

A :class:`LiveFeed` watches one or several (venue, symbol) sources and yields
:class:`~lyra.core.market.Trade`, :class:`~lyra.core.market.Quote` and
:class:`~lyra.core.market.OrderBookSnapshot` events through an async iterator (a live venue,
so not run as a doctest)::

    feed = LiveFeed([FeedSource("binance", "BTC/USDT", ccxt.pro.binance())])
    async with feed:
        async for event in feed:
            ...

What it guarantees for trades: **none lost, none twice**. Every trade id seen is checked:
on venues with consecutive ids (capability ``trade_ids_sequential``) a jump in ids is a gap,
filled from REST (``fetch_trades`` from the first missing id) before the new trade is passed
on; ids already passed on are dropped. After every disconnect the feed reconnects with
exponential backoff and backfills from the last trade it saw (by id, or by time on venues
without consecutive ids). A source with no update for ``stale_after`` seconds raises the
stale alarm (``stale`` flag and ``on_stale`` callback). Malformed messages are logged and
counted in :class:`SourceStats`, never fatal.

**Time.** The feed's ``clock`` (:class:`~lyra.core.clock.Clock`, default the wall clock)
decides what quiet means — the stale alarm after ``stale_after`` seconds, the REST poll after
``idle_backfill`` seconds — and stamps quotes and books that arrive without a venue time.
The loops that look are woken by the event loop's real time (at least once a second), so a
test hands in a :class:`~lyra.core.clock.ManualClock`, moves it past a threshold and waits
for the outcome instead of sleeping. Network waits (``watch_timeout``, reconnect backoff)
are real time: they wait for real sockets.

Across sources: :func:`consolidated_bbo` (best bid and offer over venues) and
:func:`deviating_venues` (a venue whose mid is more than X% away from the median of the
others is flagged; with only two venues both are flagged, since neither can be trusted).

:class:`SyncLiveFeed` runs a feed in a background thread for code that is not async.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import statistics
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import ccxt

from lyra.core.clock import WALL_CLOCK, Clock
from lyra.core.errors import ValidationError
from lyra.core.market import AggressorSide, BookLevel, MarketEvent, OrderBookSnapshot, Quote, Trade
from lyra.feeds import observer
from lyra.feeds.download import RETRYABLE, retrier
from lyra.venues import Venue, get_venue

log = logging.getLogger(__name__)

_CHANNELS = frozenset({"trades", "bbo", "book"})
#: What counts as a lost connection: ccxt's transient errors, our watch timeout, and socket
#: errors that escape ccxt (aiohttp raises ClientConnectionResetError from a send into a
#: closing socket).
_DISCONNECTS: tuple[type[BaseException], ...] = (*RETRYABLE, TimeoutError, ConnectionError,
                                                 aiohttp.ClientError)


@dataclass(frozen=True)
class FeedSource:
    """One (venue, symbol) to watch. ``exchange`` is a ccxt.pro instance (async REST + ws);
    ``label`` tells two sources on the same venue apart (default ``venue``); with ``since``
    the feed starts with the trades from that time (REST), then continues live without a
    gap — without it, the first trade the stream delivers is the start."""

    venue: str
    symbol: str
    exchange: Any
    channels: frozenset[str] = frozenset({"trades"})
    label: str = ""
    book_depth: int = 10
    since: int | None = None  #: ms: trades from then on are fetched by REST before the stream

    @property
    def name(self) -> str:
        return self.label or self.venue

    @property
    def instrument_id(self) -> str:
        return f"{self.name}:{self.symbol}"


@dataclass
class SourceStats:
    """Counters per source; read them while the feed runs."""

    trades: int = 0  #: trades passed on (from websocket and REST)
    backfilled: int = 0  #: of which fetched by REST to fill gaps
    duplicates: int = 0  #: trades dropped because already passed on
    gaps: int = 0  #: id gaps detected
    reconnects: int = 0  #: websocket reconnects
    bad_messages: int = 0  #: malformed messages logged and skipped
    quotes: int = 0
    books: int = 0
    stale_alarms: int = 0
    errors: int = 0  #: unexpected watcher errors (logged with their traceback)
    checksum_failures: int = 0  #: books the venue's checksum proved wrong (the feed resubscribes)
    last_update: float = 0.0  #: the feed clock's monotonic_s() at the last websocket update
    stale: bool = False


class _TradeGuard:
    """Remembers which trades were passed on: the last id (consecutive ids) or a bounded set
    of recent ids (others), plus the last trade time for time-based backfill."""

    def __init__(self, sequential: bool, memory: int = 50_000) -> None:
        self.sequential = sequential
        self.last_id: int | None = None
        self.last_ts: int | None = None
        self._recent: deque[str] = deque()
        self._recent_set: set[str] = set()
        self._memory = memory

    def seen(self, trade_id: str) -> bool:
        if self.sequential and self.last_id is not None:
            return int(trade_id) <= self.last_id
        return trade_id in self._recent_set

    def missing_from(self, trade_id: str) -> int | None:
        """First missing id if ``trade_id`` jumps past the next expected one, else None."""
        if self.sequential and self.last_id is not None and int(trade_id) > self.last_id + 1:
            return self.last_id + 1
        return None

    def record(self, t: Trade) -> None:
        self.last_ts = t.ts
        if self.sequential:
            self.last_id = int(t.trade_id)
            return
        self._recent.append(t.trade_id)
        self._recent_set.add(t.trade_id)
        if len(self._recent) > self._memory:
            self._recent_set.discard(self._recent.popleft())


def trade_from_ccxt(instrument_id: str, raw: Mapping[str, Any]) -> Trade:
    """A ccxt unified trade -> :class:`Trade`; ValidationError if a field is missing."""
    for key in ("id", "timestamp", "price", "amount"):
        if raw.get(key) is None:
            raise ValidationError(f"trade.{key}", raw.get("info", raw), "missing in message")
    side = raw.get("side")
    return Trade(instrument_id, int(raw["timestamp"]), float(raw["price"]), float(raw["amount"]),
                 AggressorSide(side) if side in ("buy", "sell") else AggressorSide.UNKNOWN,
                 str(raw["id"]))


def quote_from_ccxt(instrument_id: str, raw: Mapping[str, Any], now_ms: int) -> Quote:
    """A ccxt ticker / bid-ask -> :class:`Quote` (receive time when the venue sends none)."""
    for key in ("bid", "ask"):
        if raw.get(key) is None:
            raise ValidationError(f"quote.{key}", raw.get("info", raw), "missing in message")
    return Quote(instrument_id, int(raw.get("timestamp") or now_ms), float(raw["bid"]),
                 float(raw.get("bidVolume") or 0.0), float(raw["ask"]),
                 float(raw.get("askVolume") or 0.0))


def book_from_ccxt(instrument_id: str, raw: Mapping[str, Any], depth: int, now_ms: int
                   ) -> OrderBookSnapshot:
    """A ccxt order book -> :class:`OrderBookSnapshot` of the top ``depth`` levels."""
    return OrderBookSnapshot(
        instrument_id, int(raw.get("timestamp") or now_ms),
        tuple(BookLevel(float(p), float(s)) for p, s, *_ in raw["bids"][:depth]),
        tuple(BookLevel(float(p), float(s)) for p, s, *_ in raw["asks"][:depth]),
        int(raw.get("nonce") or 0))


class LiveFeed:
    """Watches sources and yields events; see the module doc for the guarantees."""

    def __init__(
        self,
        sources: Iterable[FeedSource],
        *,
        stale_after: float = 30.0,
        on_stale: Callable[[str, float], None] | None = None,
        reconnect_delay: float = 0.5,
        reconnect_max: float = 30.0,
        max_queue: int = 100_000,
        max_deviation_pct: float = 1.0,
        watch_timeout: float = 60.0,
        idle_backfill: float = 10.0,
        clock: Clock = WALL_CLOCK,
    ) -> None:
        self.sources = list(sources)
        if not self.sources:
            raise ValidationError("sources", [], "no source to watch")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValidationError("sources", names, "two sources share a label", "set label=")
        self._caps: dict[str, Venue] = {}
        for s in self.sources:
            caps = get_venue(s.venue)
            bad = set(s.channels) - _CHANNELS
            if bad:
                raise ValidationError("channels", sorted(bad), "unknown channel",
                                      f"use {sorted(_CHANNELS)}")
            missing = set(s.channels) - caps.ws_channels
            if missing:
                raise ValidationError("channels", sorted(missing), f"not offered by {s.venue}")
            self._caps[s.name] = caps
        self.stale_after = stale_after
        self.on_stale = on_stale
        self.reconnect_delay = reconnect_delay
        self.reconnect_max = reconnect_max
        self.max_deviation_pct = max_deviation_pct
        # A watch call that has not returned for this long is treated as a dead connection:
        # a socket dropped mid-subscribe can leave a ccxt send waiting forever.
        self.watch_timeout = watch_timeout
        # After this many quiet seconds a trade source asks REST whether it missed anything:
        # a message lost at the end of a burst is revealed by no later trade id.
        self.idle_backfill = idle_backfill
        self.clock = clock
        now = clock.monotonic_s()
        self._last_trade_at = {s.name: now for s in self.sources}
        self._backfill_locks: dict[str, asyncio.Lock] = {}
        self.stats: dict[str, SourceStats] = {s.name: SourceStats(last_update=now)
                                              for s in self.sources}
        self.quotes: dict[str, Quote] = {}  #: latest quote per source name
        self._guards = {s.name: _TradeGuard(self._caps[s.name].trade_ids_sequential)
                        for s in self.sources}
        self._queue: asyncio.Queue[MarketEvent] = asyncio.Queue(max_queue)
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        observer.register(self)  # metrics read ``stats`` at scrape time (lyra.metrics.feeds)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Start one watcher task per (source, channel), and the stale monitor."""
        if self._running:
            return
        self._running = True
        for s in self.sources:
            for ch in sorted(s.channels):
                loop = {"trades": self._watch_trades, "bbo": self._watch_bbo,
                        "book": self._watch_book}[ch]
                self._tasks.append(asyncio.create_task(loop(s), name=f"{s.name}:{ch}"))
            if "trades" in s.channels:
                self._tasks.append(asyncio.create_task(self._idle_poll(s), name=f"{s.name}:idle"))
        self._tasks.append(asyncio.create_task(self._monitor(), name="stale-monitor"))

    async def close(self) -> None:
        """Stop watching and close the exchanges' connections."""
        observer.unregister(self)  # a closed feed is no longer reported by the metrics
        self._running = False
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        for ex in {id(s.exchange): s.exchange for s in self.sources}.values():
            # a close handshake with a dead venue must not hold the caller hostage
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ex.close(), 2.0)

    async def __aenter__(self) -> LiveFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[MarketEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[MarketEvent]:
        await self.start()
        while self._running or not self._queue.empty():
            yield await self._queue.get()

    async def get(self, timeout: float | None = None) -> MarketEvent | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    # -- helpers ----------------------------------------------------------------------------
    def _touch(self, src: FeedSource) -> None:
        st = self.stats[src.name]
        st.last_update = self.clock.monotonic_s()
        st.stale = False

    def _bad(self, src: FeedSource, exc: Exception) -> None:
        self.stats[src.name].bad_messages += 1
        log.warning("%s: malformed message skipped: %s", src.name, exc)

    async def _backoff(self, src: FeedSource, attempt: int, exc: BaseException) -> None:
        st = self.stats[src.name]
        st.reconnects += 1
        if isinstance(exc, ccxt.ChecksumError):  # ccxt.pro verified the book and it did not match
            st.checksum_failures += 1
        delay = min(self.reconnect_max, self.reconnect_delay * 2 ** min(attempt, 16))
        log.info("%s: disconnected (%s); reconnect %d in %.3fs", src.name, exc, attempt + 1, delay)
        await asyncio.sleep(delay)

    async def _watch(self, src: FeedSource, call: Any) -> Any:
        """Await a ccxt watch call; on ``watch_timeout`` drop the exchange's websocket clients
        (so the next call reconnects) and raise TimeoutError, handled like a disconnect."""
        try:
            return await asyncio.wait_for(call, self.watch_timeout)
        except TimeoutError:
            log.warning("%s: no answer for %.1fs, resetting the connection", src.name,
                        self.watch_timeout)
            clients = getattr(src.exchange, "clients", None) or {}
            for url, client in list(clients.items()):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.close(), 1.0)
                clients.pop(url, None)
            raise

    def check_stale(self) -> list[str]:
        """Raise the stale alarm of every source quiet for more than ``stale_after`` seconds
        of the feed's clock (once per quiet spell); the names alarmed now. The stale monitor
        calls this about four times per ``stale_after`` (at least once a second)."""
        now = self.clock.monotonic_s()
        alarmed = []
        for name, st in self.stats.items():
            quiet = now - st.last_update
            if quiet > self.stale_after and not st.stale:
                st.stale = True
                st.stale_alarms += 1
                alarmed.append(name)
                log.warning("%s: no update for %.1fs", name, quiet)
                if self.on_stale is not None:
                    self.on_stale(name, quiet)
        return alarmed

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.stale_after / 4))
            self.check_stale()

    # -- trades -----------------------------------------------------------------------------
    async def _emit_trade(self, src: FeedSource, t: Trade, backfill: bool) -> None:
        guard, st = self._guards[src.name], self.stats[src.name]
        if guard.seen(t.trade_id):
            st.duplicates += 1
            return
        guard.record(t)
        self._last_trade_at[src.name] = self.clock.monotonic_s()
        st.trades += 1
        st.backfilled += backfill
        await self._queue.put(t)

    async def _idle_poll(self, src: FeedSource) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.idle_backfill / 2))
            if self.clock.monotonic_s() - self._last_trade_at[src.name] > self.idle_backfill:
                try:
                    await self._backfill(src)
                except _DISCONNECTS as exc:
                    log.warning("%s: idle backfill failed (%s)", src.name, exc)
                self._last_trade_at[src.name] = self.clock.monotonic_s()  # next check in a while

    async def _backfill(self, src: FeedSource, upto_id: int | None = None) -> None:
        """Fetch by REST the trades after the last one passed on (up to ``upto_id``
        exclusive when known) and pass them on in order. One backfill per source at a time."""
        lock = self._backfill_locks.setdefault(src.name, asyncio.Lock())
        async with lock:
            await self._backfill_locked(src, upto_id)

    async def _backfill_locked(self, src: FeedSource, upto_id: int | None) -> None:
        guard, caps = self._guards[src.name], self._caps[src.name]
        if guard.last_ts is None and src.since is None:
            return  # nothing seen yet and no start asked for: nothing to fill
        while True:
            if guard.last_ts is None:
                page = await _fetch_trades(src.exchange, src.symbol, src.since, caps.trade_limit,
                                           {})
                if not page:
                    return
            elif guard.sequential and guard.last_id is not None:
                page = await _fetch_trades(src.exchange, src.symbol, None, caps.trade_limit,
                                           {"fromId": guard.last_id + 1})
            else:
                page = await _fetch_trades(src.exchange, src.symbol, guard.last_ts,
                                           caps.trade_limit, {})
            fresh = 0
            for raw in page:
                try:
                    t = trade_from_ccxt(src.instrument_id, raw)
                except ValidationError as exc:
                    self._bad(src, exc)
                    continue
                if upto_id is not None and int(t.trade_id) >= upto_id:
                    return
                if not guard.seen(t.trade_id):
                    fresh += 1
                await self._emit_trade(src, t, backfill=True)
            if fresh == 0 or len(page) < caps.trade_limit:
                return

    async def _run(self, src: FeedSource, watch: Callable[[], Any],
                   handle: Callable[[Any], Any], after_disconnect: Callable[[], Any] | None
                   ) -> None:
        """The loop behind every channel: watch, hand the result on, and on any failure
        reconnect with backoff. It never ends by itself: a dead watcher would look like a
        quiet market."""
        attempt = 0
        while True:
            try:
                result = await self._watch(src, watch())
            except _DISCONNECTS as exc:
                await self._backoff(src, attempt, exc)
                attempt += 1
                if after_disconnect is not None:
                    try:
                        await after_disconnect()
                    except _DISCONNECTS as rexc:
                        log.warning("%s: backfill failed (%s), will retry", src.name, rexc)
                continue
            except ccxt.BaseError as exc:  # a message or answer ccxt could not use
                self._bad(src, exc)
                await asyncio.sleep(self.reconnect_delay)
                continue
            except Exception as exc:  # unexpected: keep the feed alive, but say so loudly
                log.exception("%s: watcher error", src.name)
                self.stats[src.name].errors += 1
                await self._backoff(src, attempt, exc)
                attempt += 1
                continue
            attempt = 0
            await handle(result)

    async def _watch_trades(self, src: FeedSource) -> None:
        guard = self._guards[src.name]

        async def handle(batch: list[dict[str, Any]]) -> None:
            self._touch(src)
            for raw in batch:
                try:
                    t = trade_from_ccxt(src.instrument_id, raw)
                except (ValidationError, ValueError, TypeError) as exc:
                    self._bad(src, exc)
                    continue
                first_missing = guard.missing_from(t.trade_id)
                if guard.last_ts is None and src.since is not None:
                    first_missing = -1  # the history from ``since`` comes first
                if first_missing is not None:
                    if first_missing >= 0:
                        self.stats[src.name].gaps += 1
                        log.info("%s: trade ids %d..%s missing, backfilling", src.name,
                                 first_missing, int(t.trade_id) - 1)
                    try:
                        await self._backfill(src, upto_id=int(t.trade_id))
                    except _DISCONNECTS as exc:
                        # passing t on would hide the gap for good: keep it for the backfill
                        # that follows the next reconnect (t comes back through REST then)
                        log.warning("%s: backfill failed (%s)", src.name, exc)
                        return
                await self._emit_trade(src, t, backfill=False)

        await self._run(src, lambda: src.exchange.watch_trades(src.symbol), handle,
                        lambda: self._backfill(src))

    async def _watch_bbo(self, src: FeedSource) -> None:
        async def handle(tickers: dict[str, Any]) -> None:
            raw = tickers.get(src.symbol)
            if raw is None:
                return
            try:
                q = quote_from_ccxt(src.instrument_id, raw, self.clock.now_ms())
            except (ValidationError, ValueError, TypeError) as exc:
                self._bad(src, exc)
                return
            self._touch(src)
            self.quotes[src.name] = q
            self.stats[src.name].quotes += 1
            await self._queue.put(q)

        await self._run(src, lambda: src.exchange.watch_bids_asks([src.symbol]), handle, None)

    async def _watch_book(self, src: FeedSource) -> None:
        async def handle(raw: dict[str, Any]) -> None:
            try:
                snap = book_from_ccxt(src.instrument_id, raw, src.book_depth, self.clock.now_ms())
            except (KeyError, ValueError, TypeError) as exc:
                self._bad(src, exc)
                return
            self._touch(src)
            self.stats[src.name].books += 1
            await self._queue.put(snap)

        await self._run(src, lambda: src.exchange.watch_order_book(src.symbol), handle, None)

    # -- cross-venue ------------------------------------------------------------------------
    def consolidated(self) -> ConsolidatedBBO | None:
        """Best bid and offer over the latest quote of every source."""
        return consolidated_bbo(self.quotes)

    def deviating(self) -> dict[str, float]:
        """Sources whose mid is off the others' median by more than ``max_deviation_pct``."""
        return deviating_venues(self.quotes, self.max_deviation_pct)


@retrier(attempts=6, base_delay=0.05, max_delay=2.0)
async def _fetch_trades(ex: Any, symbol: str, since: int | None, limit: int,
                        params: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await ex.fetch_trades(symbol, since=since, limit=limit,
                                                         params=params)
    return result


# -- cross-venue functions ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConsolidatedBBO:
    """The best bid and the best offer across venues, and where each is."""

    bid_price: float
    bid_size: float
    bid_venue: str
    ask_price: float
    ask_size: float
    ask_venue: str
    ts: int

    @property
    def crossed(self) -> bool:
        """A bid above another venue's ask: an arbitrage, or a broken feed."""
        return self.bid_price >= self.ask_price


def consolidated_bbo(quotes: Mapping[str, Quote]) -> ConsolidatedBBO | None:
    """Highest bid and lowest ask over ``quotes`` (venue -> latest quote); None if empty.
    Ties go to the larger size."""
    if not quotes:
        return None
    bv, bq = max(quotes.items(), key=lambda kv: (kv[1].bid_price, kv[1].bid_size))
    av, aq = min(quotes.items(), key=lambda kv: (kv[1].ask_price, -kv[1].ask_size))
    return ConsolidatedBBO(bq.bid_price, bq.bid_size, bv, aq.ask_price, aq.ask_size, av,
                           max(q.ts for q in quotes.values()))


def deviating_venues(quotes: Mapping[str, Quote], max_deviation_pct: float) -> dict[str, float]:
    """Venues whose mid deviates from the median mid of the *other* venues by more than
    ``max_deviation_pct`` percent, with their deviation in percent.

    Use four or more sources to single out one bad venue: with three, the median of the other
    two is their mean, so a bad venue drags the good ones' reference halfway towards itself;
    with two, both are flagged."""
    out: dict[str, float] = {}
    if len(quotes) < 2:
        return out
    for name, q in quotes.items():
        others = [o.mid for n, o in quotes.items() if n != name]
        ref = statistics.median(others)
        dev = abs(q.mid - ref) / ref * 100.0
        if dev > max_deviation_pct:
            out[name] = dev
    return out


# -- sync wrapper ------------------------------------------------------------------------------
class SyncLiveFeed:
    """Run a :class:`LiveFeed` in a background thread; iterate its events without async::

        with SyncLiveFeed(lambda: LiveFeed([FeedSource("binance", "BTC/USDT", ccxt.pro.binance())])) as feed:
            for event in feed.events(timeout=5):
                ...
    """

    def __init__(self, make_feed: Callable[[], LiveFeed]) -> None:
        self._make = make_feed  # built inside the thread: ccxt.pro objects bind to one loop
        self._q: queue.Queue[MarketEvent] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.feed: LiveFeed | None = None

    def __enter__(self) -> SyncLiveFeed:
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run(ready)), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _run(self, ready: threading.Event) -> None:
        self.feed = self._make()
        async with self.feed:
            ready.set()
            while not self._stop.is_set():
                ev = await self.feed.get(timeout=0.05)
                if ev is not None:
                    self._q.put(ev)

    def events(self, timeout: float = 5.0, limit: int | None = None) -> Iterator[MarketEvent]:
        """Events as they come; stops after ``timeout`` seconds without one or ``limit`` events."""
        n = 0
        while limit is None or n < limit:
            try:
                yield self._q.get(timeout=timeout)
            except queue.Empty:
                return
            n += 1

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
