"""The venue's dead-man switch: resting orders cancelled by the venue if no owner renews it.

Many venues can cancel every open order of an account when a countdown runs out — ccxt's
unified ``cancel_all_orders_after(timeout_ms)`` where ``exchange.has["cancelAllOrdersAfter"]``
is true (Kraken, OKX, Bybit, ...; 0 disarms it). A live session arms it while it owns live
orders, so that if its process (or host) dies and no standby takes over in time, nothing it
left on the book keeps trading unattended::

    switch = DeadmanSwitch(exchange, venue="kraken", timeout_ms=60_000, owned=lambda: lease.held,
                           record=lambda payload: log.append("session.deadman_armed", payload, ...))
    switch.arm()      # before the first live order is sent (idempotent); renews in the background
    ...
    switch.close(disarm=True)   # a clean stop; a crash or a lost lease leaves it to fire

**Renewal** happens from a helper thread every ``renew_every_s`` (a third of the timeout by
default), the session's heartbeat cadence, and only while ``owned()`` says this process
still holds the session's lease: a paused process renews nothing (its timer runs out), a
fenced one stops renewing and leaves the switch to its successor, which arms it again as
soon as it has live orders. ``record`` is called when this process first arms it and when it
disarms it (``session.deadman_armed``), not at every renewal (counted in :attr:`renewals`).

Capabilities are data: a venue without the capability gets a switch whose :attr:`supported`
is False and whose calls do nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from lyra.core.errors import ValidationError

log = logging.getLogger(__name__)

#: Default countdown: the venue cancels everything if not renewed within this long (ms).
DEFAULT_TIMEOUT_MS = 60_000


def supports_deadman(exchange: Any) -> bool:
    """Whether the ccxt ``exchange`` says it has ``cancelAllOrdersAfter``."""
    has = getattr(exchange, "has", None)
    return isinstance(has, dict) and bool(has.get("cancelAllOrdersAfter"))


class DeadmanSwitch:
    """Arms, renews and disarms one account's cancel-all-after timer (see the module doc)."""

    def __init__(self, exchange: Any, *, venue: str, timeout_ms: int = DEFAULT_TIMEOUT_MS,
                 renew_every_s: float | None = None, owned: Callable[[], bool] = lambda: True,
                 record: Callable[[dict[str, Any]], None] | None = None,
                 epoch: Callable[[], int | None] = lambda: None) -> None:
        if not 1_000 <= timeout_ms <= 86_400_000:
            raise ValidationError("timeout_ms", timeout_ms, "the dead-man countdown must be 1,000 .. "
                                  "86,400,000 ms (1 s .. 1 day)")
        self.exchange = exchange
        self.venue = venue
        self.timeout_ms = int(timeout_ms)
        self.renew_every_s = renew_every_s if renew_every_s is not None else max(0.2, timeout_ms / 3000)
        self.supported = supports_deadman(exchange)
        self._owned = owned
        self._record = record
        self._epoch = epoch
        #: armed by this process and not disarmed since
        self.armed = False
        #: successful renewals by this process (arming not counted)
        self.renewals = 0
        #: renewals that failed (network, venue): logged, retried at the next beat
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _payload(self, timeout_ms: int) -> dict[str, Any]:
        return {"venue": self.venue, "timeout_ms": timeout_ms,
                "renew_every_ms": int(self.renew_every_s * 1000), "renewals": self.renewals,
                "pid": os.getpid(), "epoch": self._epoch() or 0}

    def _send(self, timeout_ms: int) -> None:
        with self._lock:  # one call at a time: the main thread arms, the helper renews
            self.exchange.cancel_all_orders_after(timeout_ms)

    def arm(self) -> bool:
        """Arm the switch (first call) and start renewing it; True if it is armed. A venue
        without the capability: False, nothing sent. Raises what the venue raises on the first
        arming (the caller decides whether to trade unprotected)."""
        if not self.supported:
            return False
        if self.armed:
            return True
        self._send(self.timeout_ms)
        self.armed = True
        log.info("dead-man switch armed on %s: the venue cancels every open order if not renewed within "
                 "%d ms", self.venue, self.timeout_ms)
        if self._record is not None:
            self._record(self._payload(self.timeout_ms))
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name=f"deadman-{self.venue}", daemon=True)
        self._thread.start()
        return True

    def beat(self) -> bool:
        """Renew now (the helper thread calls this); False if not renewed: not armed, or this
        process does not own the session any more (its successor renews)."""
        if not self.armed or not self._owned():
            return False
        try:
            self._send(self.timeout_ms)
        except Exception as exc:  # the next beat tries again; the venue fires if they all fail
            self.failures += 1
            log.warning("dead-man switch on %s: renewal failed (%s)", self.venue, exc)
            return False
        self.renewals += 1
        return True

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_every_s):
            if not self._owned():
                log.warning("dead-man switch on %s: this process no longer owns the session; "
                            "renewals stop (the new owner arms its own)", self.venue)
                return
            self.beat()

    def close(self, *, disarm: bool) -> None:
        """Stop renewing. ``disarm`` (a clean stop of the session's owner; never after it lost
        the session): also tell the venue to drop the timer (``cancel_all_orders_after(0)``)
        and record it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if not (disarm and self.armed):
            return
        try:
            self._send(0)
        except Exception as exc:  # the timer then fires on its own: orders cancelled, nothing lost
            log.warning("dead-man switch on %s: could not disarm (%s); it will fire", self.venue, exc)
            return
        self.armed = False
        log.info("dead-man switch on %s disarmed", self.venue)
        if self._record is not None:
            self._record(self._payload(0))


def arm_deadman(switch: DeadmanSwitch) -> bool:
    """Arm ``switch`` if it is not yet; a venue error is logged, not raised (the order is sent
    anyway, the next order tries to arm it again): the switch is a safety net, not a gate."""
    if switch.armed or not switch.supported:
        return switch.armed
    try:
        return switch.arm()
    except Exception as exc:
        log.error("dead-man switch on %s could not be armed (%s): orders rest unprotected until it is",
                  switch.venue, exc)
        return False


__all__ = ["DEFAULT_TIMEOUT_MS", "DeadmanSwitch", "arm_deadman", "supports_deadman"]
