"""The venue's private websocket streams for :class:`~lyra.execution.ccxt_broker.CcxtBroker`.

ccxt.pro's ``watch_orders`` / ``watch_my_trades`` run in a background thread with their own
event loop; what they deliver is queued and applied on the session's thread at the next
``poll_reports`` (fills first, then order states), through the same shadow-order checks as
REST answers. A dropped stream marks the broker for a REST sync while it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from lyra.core.orders import Fill
from lyra.execution.broker import OrderReport
from lyra.execution.ccxt_support import S, _Tracked
from lyra.execution.venue_reports import venue_ids
from lyra.venues import Venue

log = logging.getLogger(__name__)


class PrivateStreams:
    """Mixed into CcxtBroker: starts, drains and stops the private streams."""

    # Set by CcxtBroker.__init__; declared here for the type checker.
    venue: Venue
    venue_name: str
    _ws: Any
    _ws_queue: queue.Queue[tuple[str, Any]]
    _ws_thread: threading.Thread | None
    _ws_stop: threading.Event
    _ws_loop: asyncio.AbstractEventLoop | None
    ws_healthy: bool
    stream_updates: int
    _need_sync: bool
    _orders: dict[str, _Tracked]
    _by_venue_id: dict[str, str]
    _lock: threading.RLock

    def _parse_fill(self, raw: Any, t: _Tracked | None = None) -> Fill | None: ...
    def _parse_order(self, raw: Any, t: _Tracked | None = None) -> OrderReport | None: ...
    def _apply_view(self, t: _Tracked, view: OrderReport, fills: list[Fill]) -> None: ...
    def _take_fill(self, t: _Tracked, f: Fill, venue_order_id: str = "", source: str = "") -> None: ...
    def _anomaly(self, what: str, cid: str, detail: str, raw: Any = None) -> None: ...

    # ------------------------------------------------------------------ websocket streams
    def start_streams(self) -> None:
        """Listen to the venue's private order and trade streams (if it has them) in a
        background thread. Updates are applied on the next :meth:`poll_reports`."""
        if self._ws is None or not ({"orders", "my_trades"} & self.venue.ws_private):
            return
        self._ws_thread = threading.Thread(target=self._ws_main, name=f"ccxt-ws-{self.venue_name}",
                                           daemon=True)
        self._ws_thread.start()

    def close(self) -> None:
        """Stop the streams and close the websocket client."""
        self._ws_stop.set()
        if self._ws_thread is not None:
            self._ws_thread.join(10)
            self._ws_thread = None

    def _ws_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._ws_loop = loop
        try:
            loop.run_until_complete(self._ws_run())
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(self._ws.close())
            loop.close()

    async def _ws_run(self) -> None:
        tasks = []
        if "my_trades" in self.venue.ws_private:
            tasks.append(asyncio.create_task(self._ws_loop_for("my_trades", self._ws.watch_my_trades)))
        if "orders" in self.venue.ws_private:
            tasks.append(asyncio.create_task(self._ws_loop_for("orders", self._ws.watch_orders)))
        while not self._ws_stop.is_set():
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    async def _ws_loop_for(self, kind: str, watch: Callable[..., Any]) -> None:
        failures = 0
        while not self._ws_stop.is_set():
            try:
                call = asyncio.ensure_future(watch())
                done, _ = await asyncio.wait({call}, timeout=0.5)
                if not done:  # subscribed and waiting: the stream is up
                    self.ws_healthy = True
                items = await call
                self.ws_healthy = True
                failures = 0
                for item in items:
                    self._ws_queue.put((kind, item))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped stream: REST covers the gap while we reconnect
                self.ws_healthy = False
                self._need_sync = True
                failures += 1
                log.warning("venue %s %s stream: %s; reconnecting", self.venue_name, kind, exc)
                await asyncio.sleep(min(2.0, 0.05 * 2 ** min(failures, 6)))

    def _drain_ws(self) -> None:
        trades: list[Any] = []
        orders: list[Any] = []
        while True:
            try:
                kind, item = self._ws_queue.get_nowait()
            except queue.Empty:
                break
            (trades if kind == "my_trades" else orders).append(item)
            self.stream_updates += 1
        # Fills first: an order update saying "filled" must find its fills already applied.
        for raw in trades:
            oid = str(raw.get("order") or "")
            cid = self._by_venue_id.get(oid)
            t = self._orders.get(cid) if cid else None
            if t is None:
                self._need_sync = True  # a fill for an order we have not matched yet
                continue
            f = self._parse_fill(raw, t)
            if f is None:
                continue
            with self._lock:
                # A cancelled order may still get a late fill; any other finished one may not.
                if t.order.status.is_terminal and t.order.status is not S.CANCELLED:
                    continue
                self._take_fill(t, f, oid, source="stream ")
        for raw in orders:
            voi, raw_cid = venue_ids(raw, self.venue_name)
            cid = raw_cid if raw_cid in self._orders else self._by_venue_id.get(voi, raw_cid)
            t = self._orders.get(cid)
            if t is None:
                self._anomaly("untracked-order", cid, "stream update for an order this session did not send",
                              raw.get("info"))
                continue
            view = self._parse_order(raw, t)
            if view is not None:
                self._apply_view(t, view, [])


