"""The signed half of the fake Binance: REST routes and the websocket API's user-data stream,
served from a :class:`~lyra.testing.fake_account.FakeAccount`. ``FakeExchange`` installs it when
it is given an account; nothing here is meant to be called directly.

Signed requests are checked as Binance checks them: an ``X-MBX-APIKEY`` header (-2014 when
missing, -2015 when it is not the account's key), ``timestamp`` and ``signature`` parameters
(-1102 when missing) and, when the account has a ``secret``, the HMAC-SHA256 of the query string
and body (-1022). ``recvWindow`` is not enforced (the fake's clock may be pinned to recorded time).

Websocket API (``/ws-api/v3``): ``userDataStream.subscribe.signature`` (what ``ccxt.pro.binance``
sends for spot), ``userDataStream.unsubscribe``, ``ping``, ``time``. Each subscription receives
``{"subscriptionId": n, "event": {...}}`` for every account event after it subscribed, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from lyra.testing.binance_wire import BinanceError
from lyra.testing.fake_account import FakeAccount

if TYPE_CHECKING:
    from lyra.testing.fake_exchange import FakeExchange

Op = Callable[[dict[str, str]], Any]


class _UserConn:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.subs: dict[int, int] = {}  # subscription id -> index of the next account event to send
        self.next_sid = 0


class PrivateApi:
    """Routes of the signed API for one fake exchange and its account."""

    def __init__(self, fake: FakeExchange, account: FakeAccount) -> None:
        self.fake, self.account = fake, account
        self.conns: set[_UserConn] = set()
        self._pump_task: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def install(self, app: web.Application) -> None:
        """Add the routes and the user-data pump to ``app``."""
        a = self.account
        r = app.router
        r.add_post("/api/v3/order", self._route(lambda p: a.new_order(p), create=True))
        r.add_post("/api/v3/order/test", self._route(lambda p: a.new_order(p, test=True)))
        r.add_get("/api/v3/order", self._route(a.query_order))
        r.add_delete("/api/v3/order", self._route(a.cancel_order))
        r.add_get("/api/v3/openOrders", self._route(a.open_orders))
        r.add_delete("/api/v3/openOrders", self._route(a.cancel_open_orders))
        r.add_get("/api/v3/allOrders", self._route(a.all_orders))
        r.add_get("/api/v3/myTrades", self._route(a.my_trades))
        r.add_get("/api/v3/account", self._route(lambda p: a.account()))
        r.add_get("/ws-api/v3", self._ws_api)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)

    async def _start(self, app: web.Application) -> None:
        self._closing = asyncio.Event()
        self._pump_task = asyncio.create_task(self._pump())

    async def _shutdown(self, app: web.Application) -> None:
        if self._closing is not None:
            self._closing.set()  # ends answers held back by accept_then_timeout
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
        for c in list(self.conns):
            await c.ws.close()

    # -- REST ---------------------------------------------------------------------------------
    def _route(self, op: Op, *, create: bool = False) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, op, create)

        return handler

    async def _handle(self, request: web.Request, op: Op, create: bool) -> web.StreamResponse:
        params = dict(request.query)
        body = await request.text() if request.method in ("POST", "PUT") else ""
        params.update(parse_qsl(body, keep_blank_values=True))
        err = await self.fake._gate(request, {k: v for k, v in params.items() if k != "signature"})
        if err is not None:
            return err
        status = self.account.faults._take_fail()
        if status is not None:
            return self.fake._fault_response(status)
        delay = self.account.faults._take_timeout() if create else 0.0
        try:
            raw = "&".join(x for x in (request.rel_url.raw_query_string, body) if x)
            self._check_signed(request.headers.get("X-MBX-APIKEY"), params, raw, sorted_=False)
            resp = web.json_response(op(params))
        except BinanceError as e:
            resp = web.json_response({"code": e.code, "msg": e.msg}, status=e.status)
        if delay and self._closing is not None:
            # the venue has done the work; the answer comes too late for the client
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
        return resp

    def _check_signed(self, key: str | None, params: Mapping[str, str], raw: str, *, sorted_: bool) -> None:
        if not key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if self.account.api_key is not None and key != self.account.api_key:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        for name in ("timestamp", "signature"):
            if not params.get(name):
                raise BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                                          "or malformed.")
        if self.account.secret is None:
            return
        if sorted_:  # websocket API: the parameters sorted by name, not url-encoded
            payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")
        else:  # REST: the query string then the body, as sent, without the signature
            payload = "&".join(x for x in raw.split("&") if not x.startswith("signature="))
        want = hmac.new(self.account.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, str(params["signature"]).lower()):
            raise BinanceError(-1022, "Signature for this request is not valid.")

    # -- websocket API: the user-data stream ---------------------------------------------------
    async def _ws_api(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.account.user_ws_connections += 1
        conn = _UserConn(ws)
        self.conns.add(conn)
        with contextlib.suppress(ConnectionResetError):
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._ws_request(conn, msg.data)
        self._forget(conn)
        return ws

    def _forget(self, conn: _UserConn) -> None:
        self.conns.discard(conn)
        conn.subs.clear()
        self.account.user_ws_subscriptions = sum(len(c.subs) for c in self.conns)

    async def _ws_request(self, conn: _UserConn, data: str) -> None:
        try:
            req = json.loads(data)
            rid, method, params = req.get("id"), req["method"], dict(req.get("params") or {})
        except (ValueError, KeyError, TypeError, AttributeError):
            await conn.ws.send_json({"id": None, "status": 400,
                                     "error": {"code": -1102, "msg": "Malformed request."}})
            return
        try:
            if method == "userDataStream.subscribe.signature":
                self._check_signed(params.get("apiKey"), params, "", sorted_=True)
                sid, cursor = conn.next_sid, len(self.account.events)
                conn.next_sid += 1
                await conn.ws.send_json({"id": rid, "status": 200, "result": {"subscriptionId": sid},
                                         "rateLimits": []})
                conn.subs[sid] = cursor  # events after the subscribe, none lost during the answer
                self.account.user_ws_subscriptions += 1
                return
            if method == "userDataStream.unsubscribe":
                which = params.get("subscriptionId")
                for k in [k for k in conn.subs if which is None or k == int(which)]:
                    del conn.subs[k]
                    self.account.user_ws_subscriptions -= 1
                result: Any = {}
            elif method == "ping":
                result = {}
            elif method == "time":
                result = {"serverTime": self.fake.now_ms()}
            else:
                raise BinanceError(-1100, f"Illegal characters found in parameter 'method'; "
                                          f"the fake exchange does not serve {method!r}.")
        except BinanceError as e:
            await conn.ws.send_json({"id": rid, "status": e.status, "error": {"code": e.code, "msg": e.msg}})
            return
        await conn.ws.send_json({"id": rid, "status": 200, "result": result, "rateLimits": []})

    async def _pump(self) -> None:
        """Send new account events to every subscription; apply the user-websocket faults."""
        while True:
            await asyncio.sleep(0.002)
            if self.fake.faults.is_down:
                self.drop_all()
                continue
            events = self.account.events
            n = len(events)
            for conn in list(self.conns):
                try:
                    await self._pump_conn(conn, events, n)
                except (ConnectionError, RuntimeError):
                    self._forget(conn)

    async def _pump_conn(self, conn: _UserConn, events: list[dict[str, Any]], n: int) -> None:
        for sid in list(conn.subs):
            while conn.subs.get(sid, n) < n:
                i = conn.subs[sid]
                if i in self.account.drop_marks:
                    self._drop(conn)  # the fill happened; its events are never sent on this socket
                    return
                await conn.ws.send_str(json.dumps({"subscriptionId": sid, "event": events[i]}))
                conn.subs[sid] = i + 1

    def _drop(self, conn: _UserConn) -> None:
        self._forget(conn)
        task = asyncio.create_task(conn.ws.close(code=1001, message=b"fake exchange drop"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def drop_all(self) -> None:
        """Close every user-data websocket (call on the server's loop)."""
        for c in list(self.conns):
            self._drop(c)
