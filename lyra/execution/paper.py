"""PaperBroker: a simulated venue that satisfies the :class:`~lyra.execution.broker.Broker`
protocol, with the matching rules of :mod:`lyra.execution.matching`.

Deterministic given the data, the clock and the latency seed. Time comes only from the
injected clock and from the market events' timestamps:

- ``submit`` and ``cancel`` send at ``clock.now_ms()``; the request reaches the venue
  ``latency.to_venue_ms`` later. Until then the order cannot match.
- At arrival the venue checks the order (known instrument, supported type, the market's tick,
  lot, minimum size and notional, reduce-only against the position, post-only against the
  book, funds) and answers ACCEPT or REJECT with the reason; the report reaches us
  ``latency.to_us_ms`` after the venue produced it.
- ``on_market(event)`` first lets every request that arrived by ``event.ts`` reach the venue,
  then matches the event, then lets requests up to ``clock.now_ms()`` arrive.

Balances are per asset, ``free`` and ``locked``, exact ``Decimal``. What an order locks is
:class:`~lyra.core.costs.CostRule`'s reservation, the rule risk sizes orders by (so an order
risk resized to the balance is never rejected here for funds): a buy locks quote,
``limit × qty × (1 + taker fee)`` for limit orders, ``reference × (1 + market_lock_buffer) ×
qty × (1 + taker fee)`` for market and stop orders (reference: best ask, last price, or the
stop); a sell locks the base quantity. :meth:`PaperBroker.cost_rules` hands the rules to the
session for its risk checks. A fill moves exactly ``qty`` base and ``price × qty``
quote, and charges the fee in quote (the tier of the venue's trailing 30-day volume). A buy
that would cost more than its lock plus the free balance is cut to what is affordable and
the rest cancelled, so balances never go negative. Spot only: no margin, no shorting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Any

from lyra.core.clock import Clock
from lyra.core.costs import MARKET_BUY_BUFFER, CostRule
from lyra.core.enums import Liquidity, OrderEventType, OrderStatus
from lyra.core.errors import InvalidOrder, ValidationError
from lyra.core.instrument import Instrument
from lyra.core.market import Bar, MarketEvent
from lyra.core.orders import Fill, Order
from lyra.core.values import ZERO, is_on_step, quantize_step, to_decimal
from lyra.execution.broker import (
    Balance,
    BrokerCapabilities,
    DuplicateOrder,
    ExecutionReport,
    MissingRiskDecision,
    OrderReport,
    UnknownOrder,
)
from lyra.execution.fees import FeeSchedule, VolumeTracker
from lyra.execution.latency import LatencyModel
from lyra.execution.matching import MatchingConfig, MatchingEngine, WorkingOrder, dec, floor_lot

E = OrderEventType
S = OrderStatus
_RELEASE_QUANTUM = Decimal("1e-12")  # keeps partial lock releases short, so sums stay exact
_ONE = Decimal(1)
_UNKNOWN = Instrument("UNKNOWN/UNKNOWN", "unknown", "UNKNOWN", "UNKNOWN", _ONE, _ONE)
_CLOSED = {E.CANCEL: S.CANCELLED, E.EXPIRE: S.EXPIRED}


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """Settings of the paper venue (the fill model's own knobs are in ``MatchingConfig``)."""

    #: without a book: at most this fraction of a bar's (trade's) volume fills our orders
    max_volume_fraction: float = 0.1
    #: market/stop buys lock ``reference × (1 + buffer)`` per unit, for the price moving
    market_lock_buffer: Decimal = MARKET_BUY_BUFFER
    #: slippage for instruments without an explicit ``FeeSchedule``
    slippage_bps: Decimal = ZERO

    def __post_init__(self) -> None:
        b = to_decimal(self.market_lock_buffer, "market_lock_buffer")
        if b < 0:
            raise ValidationError("market_lock_buffer", b, "must not be negative")
        object.__setattr__(self, "market_lock_buffer", b)
        object.__setattr__(self, "slippage_bps", to_decimal(self.slippage_bps, "slippage_bps"))
        MatchingConfig(self.max_volume_fraction)  # validates


class PaperBroker(MatchingEngine):
    """A paper venue: realistic fills, fees, latency, precision and balances (module doc)."""

    def __init__(
        self,
        instruments: Iterable[Instrument],
        clock: Clock,
        balances: Mapping[str, object] | None = None,
        *,
        fees: Mapping[str, FeeSchedule] | None = None,
        latency: LatencyModel | None = None,
        config: PaperConfig | None = None,
        capabilities: BrokerCapabilities | None = None,
        positions: Mapping[str, object] | None = None,
    ) -> None:
        self.config = config or PaperConfig()
        super().__init__(MatchingConfig(self.config.max_volume_fraction))
        self._clock = clock
        self._instruments: dict[str, Instrument] = {i.id: i for i in instruments}
        fees = fees or {}
        unknown = set(fees) - set(self._instruments)
        if unknown:
            raise ValidationError("fees", sorted(unknown), "fee schedules for unknown instruments")
        self._fees: dict[str, FeeSchedule] = {
            iid: fees.get(iid) or FeeSchedule.flat(i.maker_fee, i.taker_fee, self.config.slippage_bps)
            for iid, i in self._instruments.items()
        }
        # The cost rule per instrument, at the highest taker rate of its schedule: what risk
        # sizes by. Reservations use the rate of the tier that applies at the time (never higher).
        self._rules: dict[str, CostRule] = {
            iid: CostRule.of(i, taker_fee=max(t.taker for t in self._fees[iid].tiers),
                             market_buffer=self.config.market_lock_buffer)
            for iid, i in self._instruments.items()
        }
        self._volume: dict[str, VolumeTracker] = {
            v: VolumeTracker() for v in {i.venue for i in self._instruments.values()}
        }
        self._latency = latency or LatencyModel()
        self._caps = capabilities or BrokerCapabilities()
        self._free: dict[str, Decimal] = {}
        self._locked: dict[str, Decimal] = {}
        # The open time of the last bar seen per instrument: a bar shown twice (the session
        # shows the latest bar again before an operator's order) must not match twice.
        self._bar_seen: dict[str, int] = {}
        for asset, amount in (balances or {}).items():
            d = to_decimal(amount, f"balances.{asset}")
            if d < 0:
                raise ValidationError(f"balances.{asset}", d, "must not be negative")
            self._free[asset] = d
        self._positions: dict[str, Decimal] = {
            k: to_decimal(v, f"positions.{k}") for k, v in (positions or {}).items()
        }
        self._orders: dict[str, WorkingOrder] = {}
        self._open: dict[str, WorkingOrder] = {}
        self._inflight: deque[tuple[int, bool, WorkingOrder]] = deque()  # (arrival, is_cancel, order)
        self._outbox: deque[tuple[int, ExecutionReport]] = deque()  # (delivery time, report)
        self._fills: list[Fill] = []
        self._seq = 0

    @classmethod
    def from_venue(
        cls,
        venue: str,
        clock: Clock,
        balances: Mapping[str, object] | None = None,
        *,
        symbols: Iterable[str] | None = None,
        slippage_bps: object = 0,
        **kwargs: Any,
    ) -> PaperBroker:
        """A paper broker for the recorded markets of ``venue`` (``lyra.execution.markets``),
        with the venue's tick, lot, minimums and fee tiers."""
        from lyra.execution.markets import load_fee_schedule, load_instruments

        instruments = load_instruments(venue)
        if symbols is not None:
            wanted = {f"{venue}:{s}" for s in symbols}
            missing = wanted - set(instruments)
            if missing:
                raise ValidationError("symbols", sorted(missing), f"not in the recorded {venue} markets")
            instruments = {k: v for k, v in instruments.items() if k in wanted}
        fees = {iid: load_fee_schedule(iid, slippage_bps) for iid in instruments}
        return cls(instruments.values(), clock, balances, fees=fees, **kwargs)

    # -- the Broker protocol --------------------------------------------------------------
    @property
    def capabilities(self) -> BrokerCapabilities:
        return self._caps

    def submit(self, order: Order, decision_id: str) -> None:
        cid = order.client_order_id
        if not isinstance(decision_id, str) or not decision_id.strip():
            raise MissingRiskDecision(cid)
        if order.status is not S.SUBMITTED:
            raise ValidationError(
                "order.status", order.status.value, "the broker takes orders in state 'submitted'",
                "apply SUBMIT to the order (and record it) before calling submit()",
            )
        if cid in self._orders:
            raise DuplicateOrder("client_order_id", cid, "already sent to this broker",
                                 "ask get_order() instead of sending it again")
        now = self._clock.now_ms()
        self._seq += 1
        inst = self._instruments.get(order.instrument_id, _UNKNOWN)
        o = WorkingOrder(cid, inst, order.intent, decision_id, self._seq, now, self._latency.arrival(now))
        self._orders[cid] = o
        self._open[cid] = o
        self._inflight.append((o.arrival_ts, False, o))
        self._advance(now)

    def cancel(self, client_order_id: str) -> None:
        o = self._orders.get(client_order_id)
        if o is None:
            raise UnknownOrder("client_order_id", client_order_id, "no such order was submitted here")
        now = self._clock.now_ms()
        self._inflight.append((self._latency.arrival(now), True, o))
        self._advance(now)

    def open_orders(self) -> list[OrderReport]:
        return [self._order_report(o) for o in self._open.values()]

    def get_order(self, client_order_id: str) -> OrderReport | None:
        o = self._orders.get(client_order_id)
        return None if o is None else self._order_report(o)

    def fills_since(self, since_ts: int) -> list[Fill]:
        return [f for f in self._fills if f.ts >= since_ts]

    def balances(self) -> dict[str, Balance]:
        assets = sorted(set(self._free) | set(self._locked))
        return {a: Balance(a, self._free.get(a, ZERO), self._locked.get(a, ZERO)) for a in assets}

    def poll_reports(self) -> list[ExecutionReport]:
        now = self._clock.now_ms()
        self._advance(now)
        box = self._outbox
        out: list[ExecutionReport] = []
        while box and box[0][0] <= now:
            out.append(box.popleft()[1])
        return out

    def on_market(self, event: MarketEvent) -> None:
        iid = event.instrument_id
        if iid not in self._instruments:
            return
        if type(event) is Bar:
            if event.ts <= self._bar_seen.get(iid, -1):
                return  # already seen: matching it again would fill twice
            self._bar_seen[iid] = event.ts
        self._advance(event.ts)
        self._dispatch(event)
        now = self._clock.now_ms()
        if now > event.ts:
            self._advance(now)

    # -- extras of the paper venue --------------------------------------------------------
    def position(self, instrument_id: str) -> Decimal:
        """Net base quantity bought minus sold through this broker (plus the initial one)."""
        return self._positions.get(instrument_id, ZERO)

    def instrument(self, instrument_id: str) -> Instrument | None:
        return self._instruments.get(instrument_id)

    def cost_rule(self, instrument_id: str) -> CostRule:
        """What an order on ``instrument_id`` costs here (fee, market buffer, minimums)."""
        return self._rules[instrument_id]

    def cost_rules(self) -> dict[str, CostRule]:
        """The cost rule of every instrument, by id: give them to risk
        (``RiskContext.costs``) so it sizes orders by what this venue reserves."""
        return dict(self._rules)

    def fee_schedule(self, instrument_id: str) -> FeeSchedule:
        return self._fees[instrument_id]

    def volume_30d(self, venue: str) -> Decimal:
        """Trailing 30-day traded volume (quote) on ``venue``: decides the fee tier."""
        return self._volume[venue].volume(self._clock.now_ms())

    # -- venue side -----------------------------------------------------------------------
    def _advance(self, t: int) -> None:
        q = self._inflight
        while q and q[0][0] <= t:
            at, is_cancel, o = q.popleft()
            if is_cancel:
                if not o.done:  # finished orders already told their story: nothing to add
                    self._close(o, E.CANCEL, "cancelled on request", at)
            else:
                self._arrive(o, at)

    def _arrive(self, o: WorkingOrder, ts: int) -> None:
        reason = self._check(o) or self._lock(o, ts)
        if reason:
            o.done = True
            o.status = S.REJECTED
            o.reason = reason
            del self._open[o.cid]
            self._report(o, E.REJECT, ts, None, reason)
            return
        o.status = S.ACCEPTED
        self._report(o, E.ACCEPT, ts, None, "")
        self._activate(o, ts)

    def _check(self, o: WorkingOrder) -> str:
        inst, intent = o.inst, o.intent
        if inst is _UNKNOWN:
            return f"unknown instrument {intent.instrument_id!r}"
        why = self._caps.unsupported(intent)
        if why:
            return why
        try:
            inst.check_order(o.quantity, o.limit if o.has_limit else None)
            if intent.stop_price is not None and not is_on_step(intent.stop_price, inst.price_increment):
                raise InvalidOrder("stop_price", intent.stop_price,
                                   f"not on the tick grid {inst.price_increment}")
        except InvalidOrder as exc:
            return str(exc)
        if not o.has_limit:  # a limit order's notional was checked at its limit above
            why = self._rules[inst.id].minimum_problem(o.quantity, self._market_reference(o))
            if why:
                return why
        if intent.reduce_only:
            pos = self._positions.get(inst.id, ZERO)
            reducible = pos if not o.is_buy else -pos
            if o.quantity > reducible:
                return (f"reduce-only {intent.side.value} of {o.quantity} would increase the position "
                        f"{pos}")
        if intent.post_only and self.would_cross(o):
            return "post-only order would take liquidity"
        return ""

    def _market_reference(self, o: WorkingOrder) -> Decimal | None:
        """The price a market or stop order is valued at: its stop, else the market's."""
        if o.intent.stop_price is not None:
            return o.intent.stop_price
        ref = self.reference_price(o.inst.id, o.intent.side)
        return None if ref is None else dec(ref)

    def _lock(self, o: WorkingOrder, ts: int) -> str:
        inst = o.inst
        if o.is_buy:
            rule = self._rules[inst.id]
            _, taker = self._fees[inst.id].rates(self._volume[inst.venue].volume(ts))
            px = rule.unit_price(limit=o.limit) if o.has_limit else rule.unit_price(
                market=self._market_reference(o))
            if px is None:
                return "no market price yet to check the funds of a market buy"
            need = rule.reserve(o.quantity, px, taker)
        else:
            need = o.quantity
        asset = o.lock_asset
        free = self._free.get(asset, ZERO)
        if need > free:
            return f"insufficient funds: needs {need} {asset}, {free} free"
        self._free[asset] = free - need
        self._locked[asset] = self._locked.get(asset, ZERO) + need
        o.locked = need
        return ""

    # -- matching hooks -------------------------------------------------------------------
    def _slip(self, o: WorkingOrder, price: Decimal) -> Decimal:
        cm = self._fees[o.inst.id].cost_model()
        p = cm.slipped_price(price, o.intent.side) if cm.slippage_bps else price
        return quantize_step(p, o.inst.price_increment, ROUND_CEILING if o.is_buy else ROUND_FLOOR)

    def _fill(self, o: WorkingOrder, qty: Decimal, price: Decimal, liq: Liquidity, ts: int) -> Decimal:
        inst = o.inst
        iid = inst.id
        kill = ""
        pos = self._positions.get(iid, ZERO)
        if o.intent.reduce_only:
            reducible = pos if not o.is_buy else -pos
            if qty > reducible:
                qty = floor_lot(max(reducible, ZERO), inst.size_increment)
                kill = "reduce-only: the position is closed"
                if qty <= 0:
                    self._close(o, E.CANCEL, kill, ts)
                    return ZERO
        tracker = self._volume[inst.venue]
        cm = self._fees[iid].cost_model(tracker.volume(ts))
        notional = qty * price
        fee = cm.fee(notional, liq)
        quote, base = inst.quote, inst.base
        free = self._free
        if o.is_buy:
            cost = notional + fee
            have = o.locked + free.get(quote, ZERO)
            if cost > have:
                rate = cm.maker_fee if liq is Liquidity.MAKER else cm.taker_fee
                qty = self._rules[iid].affordable(have, price, rate)
                kill = "insufficient funds for the rest of the order"
                if qty <= 0:
                    self._close(o, E.CANCEL, kill, ts)
                    return ZERO
                notional = qty * price
                fee = cm.fee(notional, liq)
                cost = notional + fee
            if qty == o.remaining:
                release = o.locked
            else:
                release = (o.locked * qty / o.remaining).quantize(_RELEASE_QUANTUM, ROUND_DOWN)
            o.locked -= release
            self._locked[quote] -= release
            free[quote] = free.get(quote, ZERO) + release - cost
            free[base] = free.get(base, ZERO) + qty
            self._positions[iid] = pos + qty
        else:
            o.locked -= qty
            self._locked[base] -= qty
            free[quote] = free.get(quote, ZERO) + notional - fee
            self._positions[iid] = pos - qty
        tracker.add(ts, notional)
        if o.booked:
            self._unbook(o, qty)
        o.remaining -= qty
        o.filled_notional += notional
        o.fees += fee
        fill = Fill(f"{o.venue_order_id}-{len(self._fills)}", o.cid, iid, o.intent.side, qty, price,
                    fee, quote, liq, ts)
        self._fills.append(fill)
        if o.remaining == 0:
            o.done = True
            o.status = S.FILLED
            del self._open[o.cid]
            self._unlock(o)
            self._report(o, E.FILL, ts, fill, "")
        else:
            o.status = S.PARTIALLY_FILLED
            self._report(o, E.PARTIAL_FILL, ts, fill, "")
            if kill:
                self._close(o, E.CANCEL, kill, ts)
        return qty

    def _close(self, o: WorkingOrder, etype: OrderEventType, reason: str, ts: int) -> None:
        if o.done:
            return
        if o.booked:
            self._unbook(o, o.remaining)
        o.done = True
        o.status = _CLOSED[etype]
        o.reason = reason
        del self._open[o.cid]
        self._unlock(o)
        self._report(o, etype, ts, None, reason)

    def _unlock(self, o: WorkingOrder) -> None:
        if o.locked:
            a = o.lock_asset
            self._locked[a] -= o.locked
            self._free[a] = self._free.get(a, ZERO) + o.locked
            o.locked = ZERO

    def _report(self, o: WorkingOrder, etype: OrderEventType, ts: int, fill: Fill | None,
                reason: str) -> None:
        o.ts = ts
        self._outbox.append(
            (self._latency.delivery(ts), ExecutionReport(o.cid, etype, ts, fill, reason, o.venue_order_id))
        )

    def _order_report(self, o: WorkingOrder) -> OrderReport:
        filled = o.quantity - o.remaining
        intent = o.intent
        return OrderReport(
            client_order_id=o.cid,
            venue_order_id=o.venue_order_id,
            instrument_id=intent.instrument_id,
            side=intent.side,
            order_type=intent.order_type,
            time_in_force=intent.time_in_force,
            quantity=o.quantity,
            filled_quantity=filled,
            avg_price=o.filled_notional / filled if filled else None,
            limit_price=intent.limit_price,
            stop_price=intent.stop_price,
            status=o.status,
            fees=o.fees,
            decision_id=o.decision_id,
            ts=o.ts,
            reason=o.reason,
        )

