"""Circuit breakers: daily loss, drawdown, consecutive losses, volatility spikes, stale data.

The engine feeds them through its hooks (``on_equity``, ``on_fill``, ``on_bar``) and asks them
at check time whether an account or an instrument is blocked. Every hook is ``O(1)``: they
run per bar. A trip is a :class:`~lyra.risk._types.BreakerTrip`; the engine records it.

Semantics
---------
* **daily loss** — loss since the start of the UTC day (the last equity seen before the day
  began, or the day's first one) reaches ``daily_loss_limit`` (currency) or
  ``daily_loss_pct`` (% of that equity). Lasts until the next UTC midnight (or the cool-down).
* **drawdown** — equity ``max_drawdown_pct`` % or more below its running peak. With a
  cool-down, the peak restarts from the equity when it ends; without one, it lasts until a
  person re-arms the account.
* **consecutive losses** — ``max_consecutive_losses`` closing fills in a row with a net loss
  (realised PnL minus fee); opening fills (no realised PnL) do not count either way.
* **volatility** — the sample std of log returns over the last ``vol_window`` bars exceeds
  ``vol_spike_ratio`` × the std over the last ``vol_baseline_window`` bars (which must be
  full). Blocks new entries (reduce-only) on that instrument for the cool-down.
* **stale data** (checked by the engine per order) — no market data for ``stale_after_ms``:
  no orders on that instrument until the feed is back and ``stale_cooldown_ms`` has passed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from decimal import Decimal

from lyra.risk._types import BreakerTrip, TradingState
from lyra.risk.config import BreakerConfig

DAY_MS = 86_400_000
_ACTION = {"halt": TradingState.HALTED, "reduce": TradingState.REDUCING}
_RECOMPUTE_EVERY = 10_000  # re-sum the rolling windows now and then: float drift stays tiny


class _AccountState:
    __slots__ = ("day", "day_start", "last_equity", "losses", "peak", "trips")

    def __init__(self) -> None:
        self.day = -1
        self.day_start: Decimal | None = None
        self.last_equity: Decimal | None = None
        self.peak: Decimal | None = None
        self.losses = 0
        self.trips: dict[str, BreakerTrip] = {}  # breaker -> its current trip


class RollingVar:
    """Sample variance (ddof=1) of the last ``n`` values, updated in ``O(1)``."""

    __slots__ = ("_buf", "_n", "_pushes", "_s", "_ss")

    def __init__(self, n: int) -> None:
        self._n = n
        self._buf: deque[float] = deque()
        self._s = 0.0
        self._ss = 0.0
        self._pushes = 0

    def push(self, x: float) -> None:
        buf = self._buf
        buf.append(x)
        self._s += x
        self._ss += x * x
        if len(buf) > self._n:
            old = buf.popleft()
            self._s -= old
            self._ss -= old * old
        self._pushes += 1
        if self._pushes % _RECOMPUTE_EVERY == 0:
            self._s = math.fsum(buf)
            self._ss = math.fsum(v * v for v in buf)

    @property
    def full(self) -> bool:
        return len(self._buf) == self._n

    @property
    def count(self) -> int:
        return len(self._buf)

    def variance(self) -> float:
        k = len(self._buf)
        if k < 2:
            return math.nan
        return max((self._ss - self._s * self._s / k) / (k - 1), 0.0)


class _VolState:
    __slots__ = ("last_close", "long", "short")

    def __init__(self, short: int, long: int) -> None:
        self.last_close = math.nan
        self.short = RollingVar(short)
        self.long = RollingVar(long)


class CircuitBreakers:
    """The breakers of one engine. ``record`` is called once per trip; ``epoch(account)``
    gives the account's re-arm count (a trip from an older epoch is over)."""

    def __init__(
        self,
        config: BreakerConfig,
        record: Callable[[BreakerTrip], None],
        epoch: Callable[[str], int],
        currency: str = "",
    ) -> None:
        self.config = config
        self._record = record
        self._epoch = epoch
        self._currency = currency
        self._accounts: dict[str, _AccountState] = {}
        self._vol: dict[str, _VolState] = {}
        self.instrument_trips: dict[str, BreakerTrip] = {}  #: instrument -> volatility trip
        self._stale: dict[str, tuple[BreakerTrip, int | None]] = {}  # iid -> (trip, feed back at)

    def _acct(self, account_id: str) -> _AccountState:
        st = self._accounts.get(account_id)
        if st is None:
            st = self._accounts[account_id] = _AccountState()
        return st

    def restore(self, trips: list[BreakerTrip]) -> None:
        """Put back trips still in force after a restart (account-wide and volatility ones)."""
        for t in trips:
            if t.instrument_id:
                if t.breaker == "volatility":
                    self.instrument_trips[t.instrument_id] = t
            else:
                self._acct(t.account_id).trips[t.breaker] = t

    def _trip(self, st: _AccountState | None, breaker: str, account_id: str, iid: str,
              action: str, reason: str, ts: int, until: int | None) -> BreakerTrip:
        trip = BreakerTrip(breaker, account_id, iid, _ACTION[action], reason, ts, until,
                           self._epoch(account_id))
        if st is not None:
            st.trips[breaker] = trip
        self._record(trip)
        return trip

    # ------------------------------------------------------------------------------ hooks
    def on_equity(self, account_id: str, ts: int, equity: Decimal) -> BreakerTrip | None:
        """Feed the account's equity (daily loss, drawdown). ``O(1)``."""
        cfg = self.config
        st = self._acct(account_id)
        out: BreakerTrip | None = None
        day = ts // DAY_MS
        if day != st.day:
            st.day = day
            st.day_start = st.last_equity if st.last_equity is not None else equity
        st.last_equity = equity
        epoch = self._epoch(account_id)
        start = st.day_start
        if (cfg.daily_loss_limit is not None or cfg.daily_loss_pct is not None) and start is not None:
            cur = st.trips.get("daily_loss")
            if cur is None or not cur.active(ts, epoch):
                loss = start - equity
                hit = cfg.daily_loss_limit is not None and loss >= cfg.daily_loss_limit
                if not hit and cfg.daily_loss_pct is not None and start > 0:
                    hit = loss * 100 >= cfg.daily_loss_pct * start
                if hit:
                    cd = cfg.daily_loss_cooldown_ms
                    until = (day + 1) * DAY_MS if cd is None else ts + cd
                    lim = (f"{cfg.daily_loss_limit} {self._currency}" if cfg.daily_loss_limit is not None
                           else f"{cfg.daily_loss_pct}%")
                    out = self._trip(st, "daily_loss", account_id, "", cfg.daily_loss_action,
                                     f"daily loss {loss:.2f} {self._currency} from {start:.2f} (limit {lim})",
                                     ts, until)
        if cfg.max_drawdown_pct is not None:
            cur = st.trips.get("drawdown")
            if cur is not None and not cur.active(ts, epoch):
                del st.trips["drawdown"]
                st.peak = equity  # a fresh drawdown budget after the cool-down / re-arm
                cur = None
            if st.peak is None or equity > st.peak:
                st.peak = equity
            if cur is None and st.peak > 0 and (st.peak - equity) * 100 >= cfg.max_drawdown_pct * st.peak:
                dd = (st.peak - equity) * 100 / st.peak
                dd_until = None if cfg.drawdown_cooldown_ms is None else ts + cfg.drawdown_cooldown_ms
                out = self._trip(st, "drawdown", account_id, "", cfg.drawdown_action,
                                 f"drawdown {dd:.2f}% from peak {st.peak:.2f} "
                                 f"(limit {cfg.max_drawdown_pct}%)",
                                 ts, dd_until)
        return out

    def on_fill(self, account_id: str, ts: int, realized_pnl: Decimal, fee: Decimal) -> BreakerTrip | None:
        """Feed a fill's realised PnL (consecutive losses). ``O(1)``."""
        limit = self.config.max_consecutive_losses
        if limit is None or realized_pnl == 0:
            return None  # an opening fill says nothing about winning or losing
        st = self._acct(account_id)
        if realized_pnl - fee < 0:
            st.losses += 1
        else:
            st.losses = 0
            return None
        if st.losses < limit:
            return None
        cur = st.trips.get("consecutive_losses")
        if cur is not None and cur.active(ts, self._epoch(account_id)):
            return None
        n, st.losses = st.losses, 0
        cd = self.config.consecutive_loss_cooldown_ms
        return self._trip(st, "consecutive_losses", account_id, "", self.config.consecutive_loss_action,
                          f"{n} losing trades in a row (limit {limit})", ts, None if cd is None else ts + cd)

    def on_bar(self, account_id: str, instrument_id: str, ts: int, close: float) -> BreakerTrip | None:
        """Feed a bar close (volatility). ``O(1)``."""
        cfg = self.config
        if cfg.vol_spike_ratio is None:
            return None
        vs = self._vol.get(instrument_id)
        if vs is None:
            vs = self._vol[instrument_id] = _VolState(cfg.vol_window, cfg.vol_baseline_window)
        prev = vs.last_close
        vs.last_close = close
        if not (prev > 0.0 and close > 0.0):
            return None
        r = math.log(close / prev)
        vs.short.push(r)
        vs.long.push(r)
        if not vs.long.full:
            return None
        cur = self.instrument_trips.get(instrument_id)
        if cur is not None and cur.active(ts, self._epoch(account_id)):
            return None
        v_s, v_l = vs.short.variance(), vs.long.variance()
        if not v_l > 0.0 or v_s <= cfg.vol_spike_ratio**2 * v_l:
            return None
        ratio = math.sqrt(v_s / v_l)
        until = None if cfg.vol_cooldown_ms is None else ts + cfg.vol_cooldown_ms
        trip = self._trip(None, "volatility", account_id, instrument_id, "reduce",
                          f"realised vol {math.sqrt(v_s):.6f} is {ratio:.2f}x the baseline "
                          f"{math.sqrt(v_l):.6f} (limit {cfg.vol_spike_ratio}x)", ts, until)
        self.instrument_trips[instrument_id] = trip
        return trip

    # ---------------------------------------------------------------------- at check time
    def account_block(self, account_id: str, now: int, epoch: int) -> BreakerTrip | None:
        """The most severe account-wide trip in force, if any."""
        st = self._accounts.get(account_id)
        if st is None or not st.trips:
            return None
        worst: BreakerTrip | None = None
        for t in st.trips.values():
            if t.active(now, epoch) and (worst is None or t.action.severity > worst.action.severity):
                worst = t
        return worst

    def instrument_block(self, instrument_id: str, now: int, epoch: int) -> BreakerTrip | None:
        t = self.instrument_trips.get(instrument_id)
        return t if t is not None and t.active(now, epoch) else None

    def stale_check(self, account_id: str, instrument_id: str, now: int, last_ts: int | None) -> str | None:
        """``None`` if the feed of ``instrument_id`` is fresh (and cooled down), else a reason."""
        limit = self.config.stale_after_ms
        if limit is None:
            return None
        cur = self._stale.get(instrument_id)
        age = None if last_ts is None else now - last_ts
        if age is None or age > limit:
            if cur is None:
                what = "no market data yet" if age is None else f"last market data {age} ms ago"
                trip = self._trip(None, "stale_data", account_id, instrument_id, "halt",
                                  f"{instrument_id}: {what} (limit {limit} ms)", now,
                                  now + self.config.stale_cooldown_ms)
                self._stale[instrument_id] = (trip, None)
            else:
                self._stale[instrument_id] = (cur[0], None)
            if age is None:
                return f"stale_data: no market data for {instrument_id}"
            return f"stale_data: last market data for {instrument_id} {age} ms ago > {limit} ms"
        if cur is None:
            return None
        back = cur[1] if cur[1] is not None else now
        self._stale[instrument_id] = (cur[0], back)
        cool = self.config.stale_cooldown_ms
        if now - back < cool:
            return f"stale_data: {instrument_id} feed back for {now - back} ms < cool-down {cool} ms"
        del self._stale[instrument_id]
        return None

    def status(self, now: int) -> list[BreakerTrip]:
        """Every trip this engine holds that is still in force at ``now`` (any epoch check aside)."""
        out: list[BreakerTrip] = []
        for acc, st in self._accounts.items():
            out.extend(t for t in st.trips.values() if t.active(now, self._epoch(acc)))
        out.extend(t for t in self.instrument_trips.values() if t.active(now, self._epoch(t.account_id)))
        out.extend(t for t, _ in self._stale.values())
        return out
