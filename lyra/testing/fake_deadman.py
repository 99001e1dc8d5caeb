"""The fake exchange's dead-man switch, and live sessions on the fake run as real processes.

**Venue side.** A :class:`~lyra.testing.fake_exchange.FakeExchange` with an account serves
``POST /api/v3/countdownCancelAll`` (signed; ``countdownTime`` in ms, 0 disarms) — the shape of
Binance's USDⓈ-M futures endpoint ``/fapi/v1/countdownCancelAll``, made account-wide as ccxt's
unified ``cancelAllOrdersAfter`` is on the venues that have it. If the countdown is not renewed
in time, the fake cancels every open order of the account (user-data events included), as the
real venues do. Inspect :attr:`FakeExchange.deadman` (a :class:`FakeDeadman`): ``calls``
(every request: wall ms, countdown), ``fired`` (when, which client order ids), ``armed``.

**Client side.** ccxt's ``binance`` spot class has no ``cancel_all_orders_after``;
:func:`enable_cancel_all_after` gives an instance aimed at the fake the unified method and
``has["cancelAllOrdersAfter"] = True``, so :mod:`lyra.execution.deadman` treats it like any venue
that declares the capability.

**Processes.** ``python -m lyra.testing.fake_deadman start|standby ...`` runs a live session
against a fake exchange that lives in another process (the test's), for failover drills with
real processes: ``start --config FILE --url URL`` opens the session (a quiet synthetic feed:
one flat bar every 0.1 s, so it polls its commands and heartbeat and never trades by itself),
``standby ID --url URL`` waits on its lease and resumes it with the same wiring. Both use
``LYRA_HOME``/``LYRA_DATABASE_URL`` like ``lyra``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lyra.testing.binance_wire import OPEN, BinanceError

if TYPE_CHECKING:
    from lyra.testing.fake_account import FakeAccount
    from lyra.testing.fake_private import PrivateApi


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class FakeDeadman:
    """The fake venue's account-wide cancel-all-after countdown (wall time)."""

    def __init__(self, account: FakeAccount) -> None:
        self.account = account
        #: every countdown request: (wall ms, countdownTime ms)
        self.calls: list[tuple[int, int]] = []
        #: every time the countdown ran out: (wall ms, client order ids it cancelled)
        self.fired: list[tuple[int, list[str]]] = []
        self.deadline_ms: int | None = None
        self._lock = threading.Lock()

    @property
    def armed(self) -> bool:
        return self.deadline_ms is not None

    def countdown(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/v3/countdownCancelAll``."""
        raw = params.get("countdownTime")
        if raw is None or raw == "":
            raise BinanceError(-1102, "Mandatory parameter 'countdownTime' was not sent, was empty/null, "
                                      "or malformed.")
        try:
            ms = int(raw)
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in parameter 'countdownTime'.") from None
        if ms < 0:
            raise BinanceError(-1100, "Illegal characters found in parameter 'countdownTime'.")
        now = _wall_ms()
        with self._lock:
            self.calls.append((now, ms))
            self.deadline_ms = now + ms if ms else None
        return {"countdownTime": str(ms)}

    def check(self, now_ms: int | None = None) -> list[str]:
        """Fire if the countdown ran out: cancel every open order; the client ids cancelled."""
        now = _wall_ms() if now_ms is None else now_ms
        with self._lock:
            if self.deadline_ms is None or now < self.deadline_ms:
                return []
            self.deadline_ms = None
        open_ = [o for o in self.account.orders if o["status"] in OPEN]
        for sym in sorted({o["symbol"] for o in open_}):
            with contextlib.suppress(BinanceError):  # filled or cancelled meanwhile
                self.account.cancel_open_orders({"symbol": sym})
        cancelled = [o["clientOrderId"] for o in open_]
        self.fired.append((now, cancelled))
        return cancelled


def install_deadman(app: web.Application, private: PrivateApi) -> FakeDeadman:
    """Add the countdown route and its timer to the fake's app (called by ``FakeExchange``)."""
    dm = FakeDeadman(private.account)
    app.router.add_post("/api/v3/countdownCancelAll", private._route(dm.countdown))
    task: list[asyncio.Task[None]] = []

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.02)
            dm.check()

    async def start(_app: web.Application) -> None:
        task.append(asyncio.create_task(tick()))

    async def stop(_app: web.Application) -> None:
        for t in task:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return dm


def enable_cancel_all_after(exchange: Any) -> Any:
    """Give a ccxt ``binance`` instance aimed at the fake ccxt's unified
    ``cancel_all_orders_after(timeout_ms)`` (and the ``has`` flag that announces it)."""
    exchange.has = {**exchange.has, "cancelAllOrdersAfter": True}

    def cancel_all_orders_after(timeout: int, params: Mapping[str, Any] | None = None) -> Any:
        return exchange.request("countdownCancelAll", ["private"], "POST",
                                {"countdownTime": int(timeout), **(params or {})})

    exchange.cancel_all_orders_after = cancel_all_orders_after
    return exchange


def ccxt_for(url: str, *, deadman: bool = True, timeout_ms: int = 5000) -> Any:
    """A ``ccxt.binance`` aimed at a fake exchange at ``url`` (``http://127.0.0.1:PORT``), as
    :meth:`FakeExchange.point_ccxt` does, from another process; markets loaded."""
    import ccxt

    ex = ccxt.binance({"enableRateLimit": False, "apiKey": "fake-api-key", "secret": "fake-secret",
                       "timeout": timeout_ms, "options": {"fetchMarkets": {"types": ["spot"]},
                                                          "fetchCurrencies": False, "fetchMargins": False}})
    api = ex.urls["api"]
    api["public"] = api["private"] = f"{url}/api/v3"
    api["v1"] = f"{url}/api/v1"
    ex.load_markets()
    return enable_cancel_all_after(ex) if deadman else ex


# ---------------------------------------------------------------------------- processes
def flat_bars(instrument_id: str, price: float, every_s: float = 0.1) -> Iterator[Any]:
    """One flat 1m bar (open = close = ``price``) every ``every_s`` of wall time, for ever: a
    feed that keeps a live session polling without giving its strategy a signal."""
    from lyra.core.market import Bar

    last = 0
    while True:
        ts = max(_wall_ms(), last + 1)
        last = ts
        yield Bar(instrument_id, "1m", ts, price, price, price, price, 1.0)
        time.sleep(every_s)


def _open(cfg: Any, engine: Any, url: str, timeout_ms: int, renew_s: float) -> Any:
    from lyra.execution.ccxt_support import RetryPolicy
    from lyra.session.factory import open_live_session
    from lyra.session.live import LiveSession
    from lyra.settings import load_settings

    iid = cfg.instrument_ids()[0]
    s = open_live_session(cfg, engine=engine, exchange=ccxt_for(url), feed=flat_bars(iid, 1.953),
                          jsonl_path=load_settings().audit_dir / "events.jsonl")
    assert isinstance(s, LiveSession)
    s.broker.retry = RetryPolicy(attempts=3, base_delay_s=0.05, max_delay_s=0.2, settle_s=0.0)
    s.deadman.timeout_ms = timeout_ms
    s.deadman.renew_every_s = renew_s
    return s


def main(argv: list[str] | None = None) -> int:
    """``start --config FILE`` / ``standby ID``, ``--url URL``, ``--deadman-ms``, ``--renew-s``."""
    from lyra.bootstrap import open_engine
    from lyra.session import standby as sb
    from lyra.session.config import load_session_config

    p = argparse.ArgumentParser(prog="python -m lyra.testing.fake_deadman")
    p.add_argument("action", choices=("start", "standby"))
    p.add_argument("session_id", nargs="?")
    p.add_argument("--config")
    p.add_argument("--url", required=True)
    p.add_argument("--deadman-ms", type=int, default=3000)
    p.add_argument("--renew-s", type=float, default=1.0)
    a = p.parse_args(argv)
    _settings, engine = open_engine()
    try:
        lease = None
        if a.action == "start":
            from pathlib import Path

            cfg = load_session_config(Path(a.config))
        else:
            cfg = sb.check_standby(engine, a.session_id)
            got = sb.wait_for_takeover(engine, a.session_id, poll_s=0.1,
                                       say=lambda t: print(t, file=sys.stderr, flush=True))
            if not isinstance(got, sb.Takeover):
                print(f"standby: nothing taken over ({got})", file=sys.stderr, flush=True)
                return 1
            print(f"failover of {a.session_id}: took over as epoch {got.lease.epoch}", file=sys.stderr,
                  flush=True)
            lease = got.lease
        s = _open(cfg, engine, a.url, a.deadman_ms, a.renew_s)
        if lease is not None:
            sb.adopt_lease(s, lease)
        s.control.lease.on_lost = sb.exit_when_lost(cfg.session_id)
        r = s.run()
        print(f"{cfg.session_id}: {'stopped' if r.stopped else 'finished'}; deadman renewals "
              f"{s.deadman.renewals}", flush=True)
        return 0
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["FakeDeadman", "ccxt_for", "enable_cancel_all_after", "flat_bars", "install_deadman", "main"]
