"""Execution algorithms: TWAP, iceberg and participation of volume (POV).

An algorithm works one **parent order** (:class:`ParentOrder`) by releasing **child orders**
over time. Every child is an ordinary :class:`~lyra.core.orders.OrderIntent` (a
:class:`ChildIntent`) that the session sends through pre-trade risk, records and hands to the
broker exactly like a strategy's own order: an algorithm never bypasses risk.

- ``twap``: ``duration_ms`` cut into ``slices`` equal children (or one every ``interval_ms``),
  child *k* released at ``start + k × duration / slices``. Every child but the last is
  ``quantity / slices`` rounded down to the lot; the last carries the remainder, so the
  children sum exactly to the parent. Children are market orders, or limit orders at
  ``limit_price``, or at the arrival price moved by at most ``max_deviation_bps`` against us.
  When market data arrive less often than the slices (1h bars, 10 min slices), the slices due
  by then go out as one child.
- ``iceberg``: limit orders at ``limit_price`` that never show more than ``display_quantity``;
  the next child is released only when the previous one has filled completely. The last
  child is the remainder.
- ``pov``: after each market event the parent may have released ``participation`` (0 < p <=
  0.5) of the volume traded since it started (bar volume, or trade sizes), rounded down to
  the lot; a child goes out once that allowance exceeds what is filled or working by at least
  ``min_child``. ``max_duration_ms`` (optional) ends it early (status ``cancelled``).

Quantities are exact ``Decimal`` on the instrument's lot (``size_increment``). A child below
the venue's minimum (``min_size``, or ``min_notional`` at the child's price) is merged into
the next child, and a remainder too small to stand alone into the last one. A child is sized
on the parent's quantity less what is filled, working or about to be sent, so a parent never
over-fills.

**How a parent ends** (``algo.finished`` in the session log): ``completed`` when its children
filled the whole quantity; ``failed`` when a child is denied by risk (the reason is risk's),
or ends unfilled at the venue (rejected, cancelled, expired) — no further child is sent and
the working ones are cancelled; ``cancelled`` by the kill switch or a POV's
``max_duration_ms``. A failed parent is not retried: the strategy's position follows what
really filled. Parents run independently: a strategy that reverses while its parent still
works starts an opposite parent, whose children risk checks against the real position (a sell
beyond it is denied and fails that parent). Keep an algorithm shorter than the signal spacing.

**In a session** — two ways:

1. The session config's strategy parameters take an ``execution`` table, and every market or
   limit intent of the strategy becomes a parent order worked by that algorithm (stop orders
   go out as they are)::

       [params]
       fast = 10
       slow = 30
       [params.execution]
       kind = "twap"
       duration_ms = 14400000   # 4 h
       slices = 4

   Unknown keys, and keys the algorithm does not use, are refused naming the key
   (``params.execution.<key>``).
2. A strategy's incremental form returns :class:`ParentIntent` objects itself; its class sets
   ``emits_parents = True`` so the session drives its algorithms.

The session logs ``algo.started`` (parent id, instrument, side, quantity, spec) and
``algo.finished`` (status, reason, filled, average price, children), and a resumed run
reproduces them. Parents tick on their own instrument's bars; sessions that use no algorithm
run exactly the code they ran before (no wrapper, the array fast path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any

from lyra.core.enums import OrderType, Side
from lyra.core.errors import ValidationError
from lyra.core.instrument import Instrument
from lyra.core.market import Bar, Trade
from lyra.core.orders import OrderIntent
from lyra.core.values import ZERO, is_on_step, quantize_step, to_decimal

#: The session config key (inside ``params``) that turns on an algorithm for every intent.
EXECUTION_KEY = "execution"

ALGO_KINDS: tuple[str, ...] = ("twap", "iceberg", "pov")
_USES: dict[str, tuple[str, ...]] = {
    "twap": ("duration_ms", "slices", "interval_ms", "limit_price", "max_deviation_bps"),
    "iceberg": ("display_quantity", "limit_price"),
    "pov": ("participation", "min_child", "max_duration_ms", "limit_price"),
}
_INT_FIELDS = ("duration_ms", "slices", "interval_ms", "max_duration_ms")
_DEC_FIELDS = ("limit_price", "max_deviation_bps", "display_quantity", "participation", "min_child")
_MAX_POV = Decimal("0.5")
_BPS = Decimal(10_000)
_MAX_SLICES = 100_000
#: Order types an algorithm can work (market or limit; its children are the same).
WORKABLE_ORDER_TYPES = (OrderType.MARKET, OrderType.LIMIT)


def _as_int(name: str, v: object) -> int:
    if isinstance(v, bool):
        raise ValidationError(name, v, "a boolean is not a number")
    if isinstance(v, int):
        return v
    if isinstance(v, float | str | Decimal):
        d = to_decimal(v, name)
        if d == d.to_integral_value():
            return int(d)
    raise ValidationError(name, v, "must be a whole number")


@dataclass(frozen=True, slots=True)
class AlgoSpec:
    """Which algorithm works a parent order, and its settings (validated, immutable).

    ``AlgoSpec("twap", duration_ms=3_600_000, slices=6)``,
    ``AlgoSpec("iceberg", display_quantity=Decimal("0.05"), limit_price=Decimal("30000"))``,
    ``AlgoSpec("pov", participation=Decimal("0.1"), min_child=Decimal("0.01"))``.
    Fields the algorithm does not use must stay ``None``.
    """

    kind: str
    duration_ms: int | None = None  #: twap: the schedule's length
    slices: int | None = None  #: twap: number of children (or give interval_ms)
    interval_ms: int | None = None  #: twap: time between children (or give slices)
    limit_price: Decimal | None = None  #: children are limit orders at this price (iceberg: required)
    max_deviation_bps: Decimal | None = None  #: twap: limit children at arrival price ± this
    display_quantity: Decimal | None = None  #: iceberg: the most a child shows
    participation: Decimal | None = None  #: pov: share of the observed volume, 0 < p <= 0.5
    min_child: Decimal | None = None  #: pov: smallest child (the venue minimum applies anyway)
    max_duration_ms: int | None = None  #: pov: stop releasing after this long

    def __post_init__(self) -> None:
        if self.kind not in ALGO_KINDS:
            raise ValidationError("kind", self.kind, "unknown execution algorithm",
                                  "use " + ", ".join(ALGO_KINDS))
        uses = _USES[self.kind]
        for name in _INT_FIELDS + _DEC_FIELDS:
            v = getattr(self, name)
            if v is None:
                continue
            if name not in uses:
                raise ValidationError(name, v, f"not used by {self.kind}",
                                      f"{self.kind} takes: " + ", ".join(uses))
            if name in _INT_FIELDS:
                iv = _as_int(name, v)
                if iv <= 0:
                    raise ValidationError(name, v, "must be positive")
                object.__setattr__(self, name, iv)
            else:
                d = to_decimal(v, name)
                if d <= 0:
                    raise ValidationError(name, v, "must be positive")
                object.__setattr__(self, name, d)
        getattr(self, f"_check_{self.kind}")()

    def _check_twap(self) -> None:
        if self.duration_ms is None:
            raise ValidationError("duration_ms", None, "required for twap")
        if (self.slices is None) == (self.interval_ms is None):
            raise ValidationError("slices", self.slices, "twap needs slices or interval_ms (one of them)")
        if self.slices is not None and self.slices > _MAX_SLICES:
            raise ValidationError("slices", self.slices, f"at most {_MAX_SLICES}")
        if self.interval_ms is not None and self.interval_ms > self.duration_ms:
            raise ValidationError("interval_ms", self.interval_ms,
                                  f"longer than duration_ms ({self.duration_ms})")
        if self.interval_ms is not None and -(-self.duration_ms // self.interval_ms) > _MAX_SLICES:
            raise ValidationError("interval_ms", self.interval_ms, f"makes more than {_MAX_SLICES} slices")
        if self.limit_price is not None and self.max_deviation_bps is not None:
            raise ValidationError("max_deviation_bps", self.max_deviation_bps,
                                  "give limit_price or max_deviation_bps, not both")
        if self.max_deviation_bps is not None and self.max_deviation_bps >= _BPS:
            raise ValidationError("max_deviation_bps", self.max_deviation_bps, "must be below 10000 (100%)")

    def _check_iceberg(self) -> None:
        if self.display_quantity is None:
            raise ValidationError("display_quantity", None, "required for iceberg")
        if self.limit_price is None:
            raise ValidationError("limit_price", None, "required for iceberg: its children are limit orders")

    def _check_pov(self) -> None:
        p = self.participation
        if p is None:
            raise ValidationError("participation", None, "required for pov")
        if p > _MAX_POV:
            raise ValidationError("participation", p, "must be > 0 and <= 0.5")

    @property
    def slice_count(self) -> int:
        """TWAP: the number of scheduled children."""
        if self.slices is not None:
            return self.slices
        assert self.duration_ms is not None
        assert self.interval_ms is not None
        return -(-self.duration_ms // self.interval_ms)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlgoSpec:
        """Build from a mapping (a config table); unknown keys are refused by name."""
        if not isinstance(data, Mapping):
            raise ValidationError("execution", data, "must be a table of settings",
                                  'e.g. {kind = "twap", ...}')
        known = ("kind", *_INT_FIELDS, *_DEC_FIELDS)
        for k in data:
            if k not in known:
                raise ValidationError(str(k), data[k], "unknown key", "known keys: " + ", ".join(known))
        if "kind" not in data:
            raise ValidationError("kind", None, "required", "use " + ", ".join(ALGO_KINDS))
        return cls(**{str(k): v for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        """The settings that are set, JSON-ready (Decimals as text), as the log records them."""
        out: dict[str, Any] = {"kind": self.kind}
        for name in _INT_FIELDS + _DEC_FIELDS:
            v = getattr(self, name)
            if v is not None:
                out[name] = v if isinstance(v, int) else str(v)
        return out


@dataclass(frozen=True, slots=True)
class ParentIntent:
    """An order a strategy wants worked by an algorithm rather than sent at once.

    ``intent`` gives instrument, side, quantity, ``reduce_only`` and the tag; it must be a
    market or limit intent (a limit intent's price is the children's limit unless the spec
    sets one).
    """

    intent: OrderIntent
    spec: AlgoSpec

    def __post_init__(self) -> None:
        if not isinstance(self.intent, OrderIntent):
            raise ValidationError("intent", type(self.intent).__name__, "must be an OrderIntent")
        if not isinstance(self.spec, AlgoSpec):
            raise ValidationError("spec", type(self.spec).__name__, "must be an AlgoSpec")
        if self.intent.order_type not in WORKABLE_ORDER_TYPES:
            raise ValidationError("intent.order_type", self.intent.order_type.value,
                                  "algorithms work market or limit intents")

    @property
    def instrument_id(self) -> str:
        return self.intent.instrument_id


@dataclass(frozen=True, slots=True)
class ChildIntent(OrderIntent):
    """A child order of parent ``parent_id``: an ordinary intent for risk and the broker."""

    parent_id: str = ""


class ParentStatus(StrEnum):
    """Where a parent order is."""

    WORKING = "working"  #: releasing children, or waiting for them
    COMPLETED = "completed"  #: its children filled the whole quantity
    CANCELLED = "cancelled"  #: stopped by the kill switch or its max duration
    FAILED = "failed"  #: a child was denied by risk or ended unfilled at the venue


def _floor(q: Decimal, step: Decimal) -> Decimal:
    return quantize_step(q, step, ROUND_DOWN)


def _ceil(q: Decimal, step: Decimal) -> Decimal:
    return quantize_step(q, step, ROUND_CEILING)


def _merge_small(sizes: list[Decimal], minimum: Decimal) -> list[tuple[int, Decimal]]:
    """(slice index, size) after merging children below ``minimum`` into the next one; a
    remainder still too small at the end goes into the last child."""
    out: list[tuple[int, Decimal]] = []
    acc = ZERO
    for k, q in enumerate(sizes):
        acc += q
        if acc >= minimum:
            out.append((k, acc))
            acc = ZERO
    if acc > 0:
        if out:
            k, q = out[-1]
            out[-1] = (k, q + acc)
        else:  # cannot happen for a parent at or above the minimum; keep it whole
            out.append((len(sizes) - 1, acc))
    return out


class ParentOrder:
    """One parent order worked by an algorithm (state machine with exact accounting).

    Feed it market data with :meth:`on_market` (it returns the children due now), tell it
    what happened to each child with :meth:`on_child_sent` and :meth:`on_child_update`, stop
    it with :meth:`cancel` or :meth:`fail`. ``status`` leaves ``working`` once it is
    complete, or once it was stopped and none of its children is working any more.
    Raises :class:`ValidationError` when the order cannot be worked on ``instrument``
    (quantity off the lot or below the venue minimum, display larger than the quantity...).
    """

    def __init__(self, parent_id: str, intent: OrderIntent, spec: AlgoSpec, instrument: Instrument,
                 start_ms: int, reference_price: Decimal | None = None) -> None:
        ParentIntent(intent, spec)  # the same checks as a strategy's request
        if intent.instrument_id != instrument.id:
            raise ValidationError("instrument_id", intent.instrument_id,
                                  f"not the instrument {instrument.id}")
        step = instrument.size_increment
        q = intent.quantity
        if not is_on_step(q, step):
            raise ValidationError("quantity", q, f"not a multiple of the lot size {step}")
        self.parent_id = parent_id
        self.spec = spec
        self.intent = intent
        self.instrument = instrument
        self.side: Side = intent.side
        self.quantity = q
        self.start_ms = start_ms
        self.reference_price = reference_price
        self.status = ParentStatus.WORKING
        self.reason = ""
        self.filled = ZERO
        self.filled_notional = ZERO
        #: client order ids of the children sent (approved or denied), in order
        self.children: list[str] = []
        self._working: dict[str, Decimal] = {}  # child -> quantity still working
        self._pending = ZERO  # released to the caller, not yet reported sent
        self._stop: tuple[ParentStatus, str] | None = None
        self._cancel_asked: set[str] = set()
        self._limit = self._child_limit(spec, intent, reference_price, instrument.price_increment)
        price = self._limit if self._limit is not None else reference_price
        self.min_quantity = self._venue_minimum(instrument, price)
        if q < self.min_quantity:
            raise ValidationError("quantity", q, f"below the venue minimum {self.min_quantity} for one child")
        self._tag = f"{intent.tag}@{parent_id}" if intent.tag else parent_id
        self._plan: list[tuple[int, Decimal]] = []  # twap: (due ms, size); iceberg: (0, size)
        self._next = 0
        self._volume = ZERO
        self._min_child = self.min_quantity
        if spec.kind == "twap":
            self._plan_twap(spec)
        elif spec.kind == "iceberg":
            self._plan_iceberg(spec)
        elif spec.min_child is not None:
            self._min_child = max(self.min_quantity, _ceil(spec.min_child, step))

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _child_limit(spec: AlgoSpec, intent: OrderIntent, ref: Decimal | None,
                     tick: Decimal) -> Decimal | None:
        lp: Decimal | None
        if spec.limit_price is not None:
            lp = spec.limit_price
        elif spec.max_deviation_bps is not None:
            if ref is None:
                raise ValidationError("max_deviation_bps", spec.max_deviation_bps,
                                      "needs a market price at the start (no data seen yet)")
            move = spec.max_deviation_bps / _BPS
            # A cap on how far the price may run against us: buys round down, sells up.
            if intent.side is Side.BUY:
                return _floor(ref * (1 + move), tick)
            return _ceil(ref * (1 - move), tick)
        else:
            lp = intent.limit_price
        if lp is not None and not is_on_step(lp, tick):
            raise ValidationError("limit_price", lp, f"not on the tick grid {tick}")
        return lp

    @staticmethod
    def _venue_minimum(inst: Instrument, price: Decimal | None) -> Decimal:
        step = inst.size_increment
        m = max(step, _ceil(inst.min_size, step))
        if price is not None and inst.min_notional > 0:
            m = max(m, _ceil(inst.min_notional / price, step))
        return m

    def _plan_twap(self, spec: AlgoSpec) -> None:
        n = spec.slice_count
        dur = spec.duration_ms
        assert dur is not None
        step = self.instrument.size_increment
        base = _floor(self.quantity / n, step)
        sizes = [base] * (n - 1) + [self.quantity - base * (n - 1)]
        if spec.interval_ms is not None:
            due = [self.start_ms + k * spec.interval_ms for k in range(n)]
        else:
            due = [self.start_ms + k * dur // n for k in range(n)]
        self._plan = [(due[k], size) for k, size in _merge_small(sizes, self.min_quantity)]

    def _plan_iceberg(self, spec: AlgoSpec) -> None:
        assert spec.display_quantity is not None
        step = self.instrument.size_increment
        shown = spec.display_quantity
        if shown > self.quantity:
            raise ValidationError("display_quantity", shown,
                                  f"larger than the parent quantity {self.quantity}",
                                  "an iceberg shows part of the order")
        d = _floor(shown, step)
        if d < self.min_quantity:
            raise ValidationError("display_quantity", shown,
                                  f"below the venue minimum {self.min_quantity} after rounding to the lot "
                                  f"{step}")
        n = int((self.quantity / d).to_integral_value(ROUND_CEILING))
        sizes = [d] * (n - 1) + [self.quantity - d * (n - 1)]
        last = sizes[-1]
        m = self.min_quantity
        if n > 1 and last < m:
            if d + last >= 2 * m:  # take from the one before, so neither shows more than d
                sizes[-2], sizes[-1] = d + last - m, m
            else:  # display too close to the minimum: the remainder joins the last full child
                sizes[-2:] = [d + last]
        self._plan = [(0, s) for s in sizes]

    # ------------------------------------------------------------------ accounting
    @property
    def working_quantity(self) -> Decimal:
        """Quantity of children sent and still working at the venue."""
        return sum(self._working.values(), ZERO)

    @property
    def released(self) -> Decimal:
        """Filled + working + released but not yet reported sent: what the parent has used."""
        return self.filled + self.working_quantity + self._pending

    @property
    def remaining(self) -> Decimal:
        """Quantity not yet filled."""
        return self.quantity - self.filled

    @property
    def avg_price(self) -> Decimal | None:
        return None if self.filled == 0 else self.filled_notional / self.filled

    @property
    def done(self) -> bool:
        return self.status is not ParentStatus.WORKING

    @property
    def stopping(self) -> bool:
        """Stopped (cancel/fail asked) but children may still be working."""
        return self._stop is not None

    @property
    def stop_reason(self) -> str:
        """Why the parent was stopped ("" while it is not)."""
        return "" if self._stop is None else self._stop[1]

    def working_children(self) -> list[str]:
        """Children still working at the venue, in the order they were sent."""
        return [c for c in self.children if c in self._working]

    # ------------------------------------------------------------------ events
    def on_market(self, event: Bar | Trade | Any | None, now_ms: int) -> list[ChildIntent]:
        """The children due at ``now_ms`` after ``event`` (a bar or trade of the parent's
        instrument, or None for a time step). Each returned child counts as released until
        :meth:`on_child_sent` says what became of it."""
        if self.status is not ParentStatus.WORKING or self._stop is not None:
            return []
        kind = self.spec.kind
        if kind == "twap":
            return self._twap(now_ms)
        if kind == "iceberg":
            return self._iceberg()
        return self._pov(event, now_ms)

    def _twap(self, now: int) -> list[ChildIntent]:
        plan = self._plan
        i = self._next
        q = ZERO
        while i < len(plan) and plan[i][0] <= now:
            q += plan[i][1]
            i += 1
        self._next = i
        free = self.quantity - self.released
        if i == len(plan):
            q = free  # the last slice takes everything not yet out (rounding, resized children)
        q = min(q, free)
        return [self._child(q)] if q > 0 else []

    def _iceberg(self) -> list[ChildIntent]:
        free = self.quantity - self.released
        if self._working or self._pending or free <= 0:
            return []
        plan = self._plan
        # Past the plan only if risk resized a child: go on with display-sized children.
        q = plan[self._next][1] if self._next < len(plan) else plan[0][1]
        self._next += 1
        q = min(q, free)
        if self._next >= len(plan) and free - q < self.min_quantity:
            q = free  # the planned last child (the remainder), or a tail too small to stand alone
        return [self._child(q)]

    def _pov(self, event: Any, now: int) -> list[ChildIntent]:
        if event is not None and getattr(event, "instrument_id", None) == self.instrument.id:
            v = event.volume if type(event) is Bar else getattr(event, "size", 0.0)
            if v:
                self._volume += to_decimal(v, "volume")
        cap = self.spec.max_duration_ms
        if cap is not None and now >= self.start_ms + cap:
            self.cancel(f"max_duration_ms reached with {self.filled} of {self.quantity} filled")
            return []
        p = self.spec.participation
        assert p is not None
        step = self.instrument.size_increment
        target = min(self.quantity, _floor(p * self._volume, step))
        free = self.quantity - self.released
        want = target - self.released
        if want <= 0:
            return []
        if free - want < self.min_quantity:
            want = free  # what would be left could not go out alone: take it now
        if want < self._min_child and want != free:
            return []
        return [self._child(want)]

    def _child(self, q: Decimal) -> ChildIntent:
        self._pending += q
        it = self.intent
        if self._limit is not None:
            return ChildIntent(it.instrument_id, it.side, q, OrderType.LIMIT, self._limit,
                               post_only=it.post_only, reduce_only=it.reduce_only, tag=self._tag,
                               parent_id=self.parent_id)
        return ChildIntent(it.instrument_id, it.side, q, reduce_only=it.reduce_only, tag=self._tag,
                           parent_id=self.parent_id)

    def on_child_sent(self, intent: OrderIntent, client_id: str, quantity: Decimal, approved: bool,
                      reason: str = "") -> None:
        """What became of a child from :meth:`on_market`: its client order id, the quantity
        risk approved (it may have resized it), or the denial and its reason (fails the parent)."""
        self._pending -= intent.quantity
        if self._pending < 0:
            raise ValidationError("intent", client_id, "was not released by this parent")
        self.children.append(client_id)
        if approved:
            self._working[client_id] = quantity
        else:
            self.fail(f"child {client_id} denied by risk: {reason}")
        self._settle()

    def on_child_update(self, client_id: str, filled_delta: Decimal, terminal: bool, *,
                        price: Decimal | None = None, reason: str = "") -> None:
        """A child filled ``filled_delta`` (at ``price``) and/or ended (``terminal``). A child
        that ends with quantity unfilled fails the parent, unless the parent was stopping."""
        if client_id not in self.children:
            raise ValidationError("client_id", client_id, f"not a child of {self.parent_id}")
        if filled_delta:
            if self.filled + filled_delta > self.quantity:
                raise ValidationError(
                    "filled_delta", filled_delta,
                    f"over-fills parent {self.parent_id} ({self.filled} of {self.quantity} filled)")
            self.filled += filled_delta
            if price is not None:
                self.filled_notional += filled_delta * price
            left = self._working.get(client_id)
            if left is not None:
                self._working[client_id] = max(left - filled_delta, ZERO)
        if terminal and client_id in self._working:
            unfilled = self._working.pop(client_id)
            if unfilled > 0:
                self.fail(f"child {client_id} {reason or 'ended'} with {unfilled} unfilled")
        self._settle()

    def cancel(self, reason: str) -> None:
        """Stop releasing children; ``cancelled`` once none is working."""
        self._stop_with(ParentStatus.CANCELLED, reason)

    def fail(self, reason: str) -> None:
        """Stop releasing children; ``failed`` (with ``reason``) once none is working."""
        self._stop_with(ParentStatus.FAILED, reason)

    def _stop_with(self, status: ParentStatus, reason: str) -> None:
        if self.status is ParentStatus.WORKING and self._stop is None:
            self._stop = (status, reason)
        self._settle()

    def cancels_due(self) -> list[str]:
        """Working children of a stopped parent that nobody has asked to cancel yet."""
        if self._stop is None:
            return []
        out = [c for c in self.working_children() if c not in self._cancel_asked]
        self._cancel_asked.update(out)
        return out

    def _settle(self) -> None:
        if self.status is not ParentStatus.WORKING:
            return
        if self.filled == self.quantity:
            self.status, self.reason = ParentStatus.COMPLETED, "filled"
        elif self._stop is not None and not self._working and not self._pending:
            self.status, self.reason = self._stop

    def summary(self) -> dict[str, Any]:
        """What ``algo.finished`` records (JSON-ready)."""
        avg = self.avg_price
        return {"parent_id": self.parent_id, "status": self.status.value, "reason": self.reason,
                "quantity": str(self.quantity), "filled": str(self.filled),
                "avg_price": None if avg is None else str(avg), "children": len(self.children),
                "child_ids": list(self.children)}
