"""A small, faithful fake of Binance spot's public REST and websocket API, for tests.

It is a real aiohttp server on 127.0.0.1 (a free port), run in a background thread, serving
**recorded real data** you hand it: candles, trades, best bid/offer quotes, and an order-book
snapshot with its deltas. ccxt's ``binance`` and ``ccxt.pro.binance`` classes talk to it when
their URLs are pointed at it (:meth:`FakeExchange.ccxt_config` / :meth:`point_ccxt`). With a
recorded ``exchangeInfo`` (the tests use ``tests/fixtures/exchange/binance_exchange_info.json``)
and recorded candles (:func:`load_ohlcv_csv`)::

    with FakeExchange(exchange_info, klines={("BTCUSDT", "1m"): bars}) as fake:
        ex = ccxt.binance(fake.ccxt_config())
        ex.fetch_ohlcv("BTC/USDT", "1m", since=start_ms)

REST: ``/api/v3/ping``, ``/time``, ``/exchangeInfo``, ``/klines``, ``/aggTrades``, ``/trades``,
``/depth``. Websocket: ``/ws[/<stream>]`` (raw) and ``/stream?streams=a/b`` (combined),
``SUBSCRIBE``/``UNSUBSCRIBE`` requests, and the streams ``<sym>@trade``, ``<sym>@aggTrade``,
``<sym>@bookTicker`` and ``<sym>@depth[@100ms]`` (``U``/``u`` update ids).

Live streams are a tape: once a client subscribes to a symbol, its recorded trades (quotes,
book deltas) are "published" at ``rate`` events per second; REST returns only what has been
published, as a real venue cannot return future trades. With ``rate=None`` everything is
history from the start (download tests). The tape runs on the venue's ``clock`` (default the
wall clock): with a :class:`~lyra.core.clock.ManualClock` a test publishes step by step
(``clock.advance(0.05)`` at ``rate=1000`` publishes 50 more events; :meth:`FakeExchange.published`
says how many are out).

``account=FakeAccount(...)`` adds the signed trading API and user-data stream (:mod:`.fake_account`).

Faults (:attr:`FakeExchange.faults`, thread-safe, change them any time):
``fail_next(n, status)`` (HTTP 429/5xx, public and signed), ``slow_next(n, seconds)``,
``down()``/``up()`` (every connection dropped, websockets closed), ``drop_ws_every`` (close each
websocket after that many data messages), ``skip_ws_every`` (silently omit every n-th message:
a sequence gap), ``bad_ws_every`` (every n-th trade message loses its price field: a
malformed message), ``quote_skew`` (multiply streamed quote prices: a venue off the market).

Simplifications (documented so no one trusts them): aggTrade ``f``/``l`` equal the aggregate
id; every trade is ``M`` (best match); one tape per symbol shared by all clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from aiohttp import WSMsgType, web

from lyra.core.clock import WALL_CLOCK, Clock

if TYPE_CHECKING:
    from lyra.testing.fake_account import FakeAccount

_INTERVAL_MS = {"1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000,
                "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000,
                "6h": 21_600_000, "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000,
                "3d": 259_200_000, "1w": 604_800_000}


def _num(x: float) -> str:
    return repr(float(x))


# -- loading recorded files --------------------------------------------------------------------
def load_ohlcv_csv(path: Path) -> pd.DataFrame:
    """A uniform OHLCV file (``timestamp_ms,open,high,low,close,volume``) -> ts + OHLCV frame."""
    df = pd.read_csv(path)
    return df.rename(columns={"timestamp_ms": "ts"})[["ts", "open", "high", "low", "close", "volume"]]


def load_trades_csv(path: Path) -> pd.DataFrame:
    """A uniform trades file (``timestamp_ms,price,size,side,trade_id``), sorted by trade id."""
    df = pd.read_csv(path).rename(columns={"timestamp_ms": "ts"})
    return df.sort_values("trade_id", kind="stable").reset_index(drop=True)


def load_quotes_csv(path: Path) -> pd.DataFrame:
    """A uniform BBO file (``timestamp_ms,bid_price,bid_size,ask_price,ask_size``)."""
    return pd.read_csv(path).rename(columns={"timestamp_ms": "ts"})


def exchange_info_from_recorded(exchange_info: dict[str, Any],
                                ccxt_markets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Binance's recorded ``exchangeInfo`` body, plus the recorded raw symbol objects
    (``info``) of a ccxt markets file, so that more recorded symbols are listed."""
    info: dict[str, Any] = json.loads(json.dumps(exchange_info))
    have = {s["symbol"] for s in info["symbols"]}
    for market in (ccxt_markets or {}).values():
        raw = market.get("info")
        if raw and raw.get("symbol") not in have:
            info["symbols"].append(raw)
            have.add(raw["symbol"])
    return info


@dataclass
class BookTape:
    """A recorded order book: one snapshot then deltas, each with an update id."""

    snapshot_id: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    deltas: list[dict[str, Any]]  # {"U": int, "u": int, "b": [[p, q]], "a": [[p, q]], "E": ts}


def load_bybit_book(path: Path) -> BookTape:
    """Bybit's recorded ``orderbook.500`` messages (a JSON array, gzipped) as a :class:`BookTape`."""
    import gzip

    msgs = json.loads(gzip.decompress(path.read_bytes()))
    snap = msgs[0]
    deltas = [{"U": m["data"]["u"], "u": m["data"]["u"], "b": m["data"]["b"], "a": m["data"]["a"],
               "E": m["ts"]} for m in msgs[1:]]
    return BookTape(snap["data"]["u"], snap["data"]["b"], snap["data"]["a"], deltas)


# -- faults ------------------------------------------------------------------------------------
@dataclass
class Faults:
    """Faults to inject. Counters count down as requests arrive."""

    fail_count: int = 0
    fail_status: int = 429
    slow_count: int = 0
    slow_seconds: float = 0.0
    drop_ws_every: int = 0
    skip_ws_every: int = 0
    quote_skew: float = 1.0
    bad_ws_every: int = 0
    is_down: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(self, n: int, status: int = 429) -> None:
        """Answer the next ``n`` REST requests with HTTP ``status`` (429, 418, 500, 503...)."""
        with self._lock:
            self.fail_count, self.fail_status = n, status

    def slow_next(self, n: int, seconds: float) -> None:
        """Delay the next ``n`` REST requests by ``seconds``."""
        with self._lock:
            self.slow_count, self.slow_seconds = n, seconds

    def down(self) -> None:
        """The venue goes dark: every request's connection is closed, websockets are dropped."""
        self.is_down = True

    def up(self) -> None:
        """The venue is back."""
        self.is_down = False

    def _take(self) -> tuple[int | None, float]:
        with self._lock:
            status = None
            if self.fail_count > 0:
                self.fail_count -= 1
                status = self.fail_status
            delay = 0.0
            if self.slow_count > 0:
                self.slow_count -= 1
                delay = self.slow_seconds
            return status, delay


class _Tape:
    """How many recorded events of one stream are public so far."""

    def __init__(self, total: int, rate: float | None, clock: Clock) -> None:
        self.total, self.rate, self.clock = total, rate, clock
        self.started: float | None = None

    def start(self) -> None:
        if self.started is None:
            self.started = self.clock.monotonic_s()

    def published(self) -> int:
        if self.rate is None:
            return self.total
        if self.started is None:
            return 0
        # rounded to the µs first: 0.15 s at 1000/s is 150 events, not 149.99999
        elapsed = round(self.clock.monotonic_s() - self.started, 6)
        return min(self.total, int(elapsed * self.rate))


class _Conn:
    def __init__(self, ws: web.WebSocketResponse, combined: bool) -> None:
        self.ws, self.combined = ws, combined
        self.streams: set[str] = set()
        self.sent = 0
        self.cursor: dict[str, int] = {}  # stream -> next event index to send


class FakeExchange:
    """The fake Binance spot venue. Use as a context manager; ``url``/``ws_url`` once started."""

    def __init__(
        self,
        exchange_info: dict[str, Any],
        *,
        klines: dict[tuple[str, str], pd.DataFrame] | None = None,
        trades: dict[str, pd.DataFrame] | None = None,
        quotes: dict[str, pd.DataFrame] | None = None,
        books: dict[str, BookTape] | None = None,
        rate: float | None = None,
        server_time_ms: int | None = None,
        max_limit: int = 1000,
        account: FakeAccount | None = None,
        clock: Clock = WALL_CLOCK,
    ) -> None:
        self.exchange_info = exchange_info
        self.klines = {k: v.sort_values("ts").reset_index(drop=True) for k, v in (klines or {}).items()}
        self.trades = trades or {}
        self.quotes = quotes or {}
        self.books = books or {}
        self.rate = rate
        self.clock = clock  # the venue's time: its tapes and its server time
        self.server_time_ms = server_time_ms
        self.max_limit = max_limit  # the venue's cap on rows per REST answer (Binance: 1000)
        self.faults = Faults()
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, query) of every REST call
        self.ws_connections = 0
        self._symbols = {s["symbol"] for s in exchange_info["symbols"]}
        self._tapes: dict[str, _Tape] = {}
        self._conns: set[_Conn] = set()
        self._closing: set[asyncio.Task[bool]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self.account = account
        self._private: Any = None  # the signed API (lyra.testing.fake_private), when there is an account
        self.deadman: Any = None  # its dead-man switch (lyra.testing.fake_deadman), likewise
        if account is not None:  # its books start from the recorded ones
            account.attach(exchange_info, self.now_ms,
                           lambda s: self._book_state(s, 5000) if s in self.books else None)

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """REST base, e.g. ``http://127.0.0.1:PORT`` (the API lives under ``/api/v3``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """Raw websocket base, ``ws://127.0.0.1:PORT/ws``."""
        return f"ws://127.0.0.1:{self.port}/ws"

    def ccxt_config(self, **extra: Any) -> dict[str, Any]:
        """Constructor options for ``ccxt.binance`` / ``ccxt.pro.binance`` aimed at this fake."""
        cfg: dict[str, Any] = {"enableRateLimit": False, "options": {"fetchMarkets": {"types": ["spot"]},
                               "fetchCurrencies": False, "fetchMargins": False}}
        if self.account is not None:  # any key works unless the account names one
            cfg["apiKey"] = self.account.api_key or "fake-api-key"
            cfg["secret"] = self.account.secret or "fake-secret"
        cfg.update(extra)
        return cfg

    def point_ccxt(self, exchange: Any) -> Any:
        """Point a ccxt binance instance's spot REST and websocket URLs at this fake."""
        api = exchange.urls["api"]
        api["public"] = f"{self.url}/api/v3"
        api["private"] = f"{self.url}/api/v3"
        api["v1"] = f"{self.url}/api/v1"
        if isinstance(api.get("ws"), dict):
            api["ws"]["spot"] = self.ws_url
            api["ws"]["margin"] = self.ws_url
            if isinstance(api["ws"].get("ws-api"), dict):
                api["ws"]["ws-api"]["spot"] = f"ws://127.0.0.1:{self.port}/ws-api/v3"
        return exchange

    def __enter__(self) -> FakeExchange:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                        name="fake-exchange")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake exchange did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.run_until_complete(self._serve(ready))
        loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        app = web.Application(middlewares=[self._down_gate])
        r = app.router
        r.add_get("/api/v3/ping", self._ping)
        r.add_get("/api/v3/time", self._time)
        r.add_get("/api/v3/exchangeInfo", self._exchange_info)
        r.add_get("/api/v3/klines", self._klines)
        r.add_get("/api/v3/aggTrades", self._agg_trades)
        r.add_get("/api/v3/trades", self._recent_trades)
        r.add_get("/api/v3/depth", self._depth)
        r.add_get("/ws", self._ws)
        r.add_get("/ws/{tail:.*}", self._ws)
        r.add_get("/stream", self._ws)
        if self.account is not None:
            from lyra.testing.fake_private import PrivateApi

            self._private = PrivateApi(self, self.account)
            self._private.install(app)
            from lyra.testing.fake_deadman import install_deadman

            self.deadman = install_deadman(app, self._private)  # cancel-all-after (fake_deadman)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stop = asyncio.Event()
        pump = asyncio.create_task(self._pump())
        ready.set()
        await self._stop.wait()
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        for c in list(self._conns):
            await c.ws.close()
        await self._runner.cleanup()

    # -- REST -------------------------------------------------------------------------------
    @staticmethod
    def _error(status: int, code: int, msg: str) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=status)

    @web.middleware
    async def _down_gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.faults.is_down:
            if request.transport is not None:
                request.transport.close()  # a connection-level failure: no HTTP answer at all
            return web.Response(status=503)
        resp: web.StreamResponse = await handler(request)
        return resp

    @staticmethod
    def _fault_response(status: int) -> web.Response:
        if status == 429:
            return web.json_response({"code": -1003, "msg": "Too many requests."}, status=429,
                                     headers={"Retry-After": "1"})
        return web.Response(status=status, text="Service Unavailable")

    async def _gate(self, request: web.Request, params: dict[str, str] | None = None) -> web.Response | None:
        self.requests.append((request.path, dict(request.query) if params is None else params))
        status, delay = self.faults._take()
        if delay:
            await asyncio.sleep(delay)
        return None if status is None else self._fault_response(status)

    def _symbol(self, request: web.Request) -> str | web.Response:
        sym = request.query.get("symbol", "")
        if sym not in self._symbols:
            return self._error(400, -1121, "Invalid symbol.")
        return sym

    async def _ping(self, request: web.Request) -> web.Response:
        return await self._gate(request) or web.json_response({})

    def now_ms(self) -> int:
        """The venue's time: ``server_time_ms`` if given, else its ``clock``."""
        return self.server_time_ms if self.server_time_ms is not None else self.clock.now_ms()

    async def _time(self, request: web.Request) -> web.Response:
        return await self._gate(request) or web.json_response({"serverTime": self.now_ms()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        return await self._gate(request) or web.json_response(
            {**self.exchange_info, "serverTime": self.now_ms()})

    @staticmethod
    def _int(request: web.Request, name: str) -> int | None:
        v = request.query.get(name)
        return None if v is None else int(v)

    async def _klines(self, request: web.Request) -> web.Response:
        if (err := await self._gate(request)) is not None:
            return err
        sym = self._symbol(request)
        if isinstance(sym, web.Response):
            return sym
        interval = request.query.get("interval", "")
        if interval not in _INTERVAL_MS:
            return self._error(400, -1120, "Invalid interval.")
        limit = min(int(request.query.get("limit", 500)), self.max_limit)
        df = self.klines.get((sym, interval))
        if df is None:
            return web.json_response([])
        ts = df["ts"].to_numpy()
        start, end = self._int(request, "startTime"), self._int(request, "endTime")
        mask = (ts >= (start if start is not None else ts.min() if len(ts) else 0))
        if end is not None:
            mask &= ts <= end
        sel = df[mask]
        sel = sel.head(limit) if start is not None else sel.tail(limit)
        step = _INTERVAL_MS[interval]
        rows = [[int(t), _num(o), _num(h), _num(lo), _num(c), _num(v), int(t) + step - 1,
                 _num(v * c), 0, "0", "0", "0"]
                for t, o, h, lo, c, v in sel[["ts", "open", "high", "low", "close", "volume"]]
                .itertuples(index=False)]
        return web.json_response(rows)

    def _public_trades(self, sym: str) -> pd.DataFrame:
        df = self.trades.get(sym)
        if df is None:
            return pd.DataFrame(columns=["ts", "price", "size", "side", "trade_id"])
        tape = self._tape(sym + "@trade", len(df))
        return df.iloc[: tape.published()]

    async def _agg_trades(self, request: web.Request) -> web.Response:
        if (err := await self._gate(request)) is not None:
            return err
        sym = self._symbol(request)
        if isinstance(sym, web.Response):
            return sym
        df = self._public_trades(sym)
        limit = min(int(request.query.get("limit", 500)), self.max_limit)
        from_id = self._int(request, "fromId")
        start, end = self._int(request, "startTime"), self._int(request, "endTime")
        if start is not None and end is not None and end - start > 3_600_000:
            return self._error(400, -1127, "More than 1 hours between startTime and endTime.")
        if from_id is not None:
            sel = df[df["trade_id"] >= from_id].head(limit)
        elif start is not None or end is not None:
            m = pd.Series(True, index=df.index)
            if start is not None:
                m &= df["ts"] >= start
            if end is not None:
                m &= df["ts"] <= end
            sel = df[m].head(limit)
        else:
            sel = df.tail(limit)
        return web.json_response([self._agg_json(r) for r in sel.itertuples(index=False)])

    @staticmethod
    def _agg_json(r: Any) -> dict[str, Any]:
        tid = int(r.trade_id)
        return {"a": tid, "p": _num(r.price), "q": _num(r.size), "f": tid, "l": tid,
                "T": int(r.ts), "m": r.side == "sell", "M": True}

    async def _recent_trades(self, request: web.Request) -> web.Response:
        if (err := await self._gate(request)) is not None:
            return err
        sym = self._symbol(request)
        if isinstance(sym, web.Response):
            return sym
        limit = min(int(request.query.get("limit", 500)), self.max_limit)
        sel = self._public_trades(sym).tail(limit)
        return web.json_response([
            {"id": int(r.trade_id), "price": _num(r.price), "qty": _num(r.size),
             "quoteQty": _num(r.price * r.size), "time": int(r.ts), "isBuyerMaker": r.side == "sell",
             "isBestMatch": True} for r in sel.itertuples(index=False)])

    def _book_state(self, sym: str, limit: int) -> dict[str, Any]:
        tape = self.books[sym]
        n = self._tape(sym + "@depth", len(tape.deltas)).published()
        bids = {p: q for p, q in tape.bids}
        asks = {p: q for p, q in tape.asks}
        last = tape.snapshot_id
        for d in tape.deltas[:n]:
            for side, levels in ((bids, d["b"]), (asks, d["a"])):
                for p, q in levels:
                    if float(q) == 0:
                        side.pop(p, None)
                    else:
                        side[p] = q
            last = d["u"]
        return {"lastUpdateId": last,
                "bids": sorted(([p, q] for p, q in bids.items()), key=lambda x: -float(x[0]))[:limit],
                "asks": sorted(([p, q] for p, q in asks.items()), key=lambda x: float(x[0]))[:limit]}

    async def _depth(self, request: web.Request) -> web.Response:
        if (err := await self._gate(request)) is not None:
            return err
        sym = self._symbol(request)
        if isinstance(sym, web.Response):
            return sym
        limit = min(int(request.query.get("limit", 100)), 5000)
        if self.account is not None and self.account.has_book(sym):
            return web.json_response(self.account.depth(sym, limit))
        if sym not in self.books:
            return web.json_response({"lastUpdateId": 0, "bids": [], "asks": []})
        return web.json_response(self._book_state(sym, limit))

    # -- websocket --------------------------------------------------------------------------
    def _tape(self, key: str, total: int) -> _Tape:
        tape = self._tapes.get(key)
        if tape is None:
            tape = self._tapes[key] = _Tape(total, self.rate, self.clock)
        return tape

    def _events(self, stream: str) -> tuple[str, int] | None:
        """(tape key, number of recorded events) of a stream name, None if unknown."""
        sym, _, rest = stream.partition("@")
        channel = rest.split("@")[0]
        sym = sym.upper()
        if channel in ("trade", "aggTrade") and sym in self.trades:
            return sym + "@trade", len(self.trades[sym])
        if channel == "bookTicker" and sym in self.quotes:
            return sym + "@bookTicker", len(self.quotes[sym])
        if channel == "depth" and sym in self.books:
            return sym + "@depth", len(self.books[sym].deltas)
        return None

    def _subscribe(self, conn: _Conn, stream: str) -> None:
        ev = self._events(stream)
        conn.streams.add(stream)
        if ev is not None:
            tape = self._tape(*ev)
            tape.start()
            # a new connection sees only what is published from now on (as on a real venue)
            conn.cursor[stream] = tape.published()

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.ws_connections += 1
        conn = _Conn(ws, combined=request.path.startswith("/stream"))
        tail = request.match_info.get("tail", "")
        names = [s for s in request.query.get("streams", "").split("/") if s]
        if "@" in tail:
            names.append(tail)
        for s in names:
            self._subscribe(conn, s)
        self._conns.add(conn)
        # the client may vanish mid-reply (a dropped connection): that ends this handler
        with contextlib.suppress(ConnectionResetError):
            await self._serve_ws(conn)
        self._conns.discard(conn)
        return ws

    async def _serve_ws(self, conn: _Conn) -> None:
        ws = conn.ws
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                req = json.loads(msg.data)
                method, params, rid = req["method"], req.get("params", []), req.get("id")
            except (ValueError, KeyError, TypeError):
                await ws.send_json({"error": {"code": 2, "msg": "Invalid request"}})
                continue
            if method == "SUBSCRIBE":
                for s in params:
                    self._subscribe(conn, s)
            elif method == "UNSUBSCRIBE":
                for s in params:
                    conn.streams.discard(s)
                    conn.cursor.pop(s, None)
            elif method == "LIST_SUBSCRIPTIONS":
                await ws.send_json({"result": sorted(conn.streams), "id": rid})
                continue
            await ws.send_json({"result": None, "id": rid})

    def _event_json(self, stream: str, i: int) -> dict[str, Any]:
        sym, _, rest = stream.partition("@")
        channel = rest.split("@")[0]
        sym = sym.upper()
        if channel in ("trade", "aggTrade"):
            r = self.trades[sym].iloc[i]
            tid = int(r["trade_id"])
            base = {"e": channel, "E": int(r["ts"]), "s": sym, "p": _num(r["price"]),
                    "q": _num(r["size"]), "T": int(r["ts"]), "m": r["side"] == "sell", "M": True}
            if channel == "trade":
                return {**base, "t": tid}
            return {**base, "a": tid, "f": tid, "l": tid}
        if channel == "bookTicker":
            q = self.quotes[sym].iloc[i]
            k = self.faults.quote_skew
            return {"u": i + 1, "s": sym, "b": _num(q["bid_price"] * k), "B": _num(q["bid_size"]),
                    "a": _num(q["ask_price"] * k), "A": _num(q["ask_size"])}
        d = self.books[sym].deltas[i]
        return {"e": "depthUpdate", "E": d["E"], "s": sym, "U": d["U"], "u": d["u"],
                "b": d["b"], "a": d["a"]}

    async def _pump(self) -> None:
        """Send newly published events to every subscriber; apply websocket faults."""
        while True:
            await asyncio.sleep(0.002)
            if self.faults.is_down:
                for c in list(self._conns):
                    self._drop(c)
            for conn in list(self._conns):
                try:
                    await self._pump_conn(conn)
                except (ConnectionError, RuntimeError):
                    self._conns.discard(conn)

    async def _pump_conn(self, conn: _Conn) -> None:
        for stream in list(conn.cursor):
            ev = self._events(stream)
            if ev is None:
                continue
            upto = self._tape(*ev).published()
            while conn.cursor.get(stream, upto) < upto:
                i = conn.cursor[stream]
                conn.cursor[stream] = i + 1
                conn.sent += 1
                f = self.faults
                if f.skip_ws_every and conn.sent % f.skip_ws_every == 0:
                    continue  # lost message: the client must notice the id gap
                payload = self._event_json(stream, i)
                if f.bad_ws_every and conn.sent % f.bad_ws_every == 0 and "p" in payload:
                    del payload["p"]  # malformed: the client must count it and carry on
                if conn.combined:
                    payload = {"stream": stream, "data": payload}
                await conn.ws.send_str(json.dumps(payload))
                if f.drop_ws_every and conn.sent % f.drop_ws_every == 0:
                    self._drop(conn)
                    return

    def published(self, symbol: str, channel: str = "trade") -> int:
        """How many recorded events of ``symbol``'s stream are public so far (0 until a client
        subscribes to it)."""
        tape = self._tapes.get(f"{symbol}@{channel}")
        return 0 if tape is None else tape.published()

    def tape_done(self, symbol: str, channel: str = "trade") -> bool:
        """True once every recorded event of ``symbol``'s stream has been published."""
        tape = self._tapes.get(f"{symbol}@{channel}")
        return tape is not None and tape.published() >= tape.total

    def _drop(self, conn: _Conn) -> None:
        # stop sending at once; the close handshake runs in the background so that one slow
        # client does not hold up the others
        self._conns.discard(conn)
        task = asyncio.create_task(conn.ws.close(code=1001, message=b"fake exchange drop"))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def drop_all_websockets(self) -> None:
        """Close every open websocket now (a venue-side disconnect). Callable from any thread."""
        loop = self._loop
        if loop is None:
            return

        def _drop_all() -> None:
            for c in list(self._conns):
                self._drop(c)
            if self._private is not None:
                self._private.drop_all()

        loop.call_soon_threadsafe(_drop_all)


def iter_trade_ids(df: pd.DataFrame) -> Iterator[str]:
    """Trade ids of a recorded trades frame as strings (how ccxt and Lyra carry them)."""
    return (str(int(t)) for t in df["trade_id"])


def binance_fake(fixtures: Path, **kwargs: Any) -> FakeExchange:
    """A :class:`FakeExchange` loaded with the recorded files of ``fixtures`` (a folder laid out
    like ``tests/fixtures``): BTC/USDT 1m and 5m candles (Binance, 2018-04), BTC/USDT trades and
    best bid/offer quotes (Binance, 2021-01-08), and Bybit's recorded XRPUSDT order book served
    as XRPUSDT depth. Keyword arguments go to :class:`FakeExchange` (``rate=``...)."""
    ex = fixtures / "exchange"
    info = exchange_info_from_recorded(
        json.loads((ex / "binance_exchange_info.json").read_text()),
        json.loads((ex / "ccxt_binance_markets.json").read_text()),
    )
    return FakeExchange(
        info,
        klines={("BTCUSDT", "1m"): load_ohlcv_csv(ex / "binance_BTC-USDT_1m_2018-04.csv.gz"),
                ("BTCUSDT", "5m"): load_ohlcv_csv(ex / "binance_BTC-USDT_5m_2018-04.csv.gz")},
        trades={"BTCUSDT": load_trades_csv(ex / "binance_BTC-USDT_trades.csv.gz")},
        quotes={"BTCUSDT": load_quotes_csv(ex / "binance_BTC-USDT_bbo.csv.gz")},
        books={"XRPUSDT": load_bybit_book(fixtures / "orderbook" / "bybit_XRPUSDT_ob500_2024-12-01.json.gz")},
        **kwargs,
    )
