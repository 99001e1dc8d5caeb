"""Execution algorithms (TWAP, iceberg, POV): child sizes and times against hand-worked
schedules, exact Decimal accounting, no over-fill, and the specs they refuse."""

from __future__ import annotations

import dataclasses
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyra.core.enums import OrderType, Side
from lyra.core.errors import ValidationError
from lyra.core.instrument import Instrument
from lyra.core.market import Bar
from lyra.core.orders import OrderIntent
from lyra.execution.algos import AlgoSpec, ChildIntent, ParentIntent, ParentOrder, ParentStatus

D = Decimal
T0 = 1_700_000_000_000
HOUR = 3_600_000
BTC = "binance:BTC/USDT"


def inst(step: str = "0.001", min_size: str = "0", min_notional: str = "0") -> Instrument:
    return Instrument("BTC/USDT", "binance", "BTC", "USDT", D("0.01"), D(step), min_size=D(min_size),
                      min_notional=D(min_notional))


def parent(spec: AlgoSpec, qty: str, *, side: Side = Side.BUY, instrument: Instrument | None = None,
           ref: str | None = "20000", intent_kw: dict | None = None) -> ParentOrder:
    it = OrderIntent(BTC, side, D(qty), tag="entry", **(intent_kw or {}))
    return ParentOrder("p1", it, spec, instrument or inst(), T0, None if ref is None else D(ref))


class Venue:
    """Hands out client ids and fills what the test says; checks the parent's invariants."""

    def __init__(self, p: ParentOrder) -> None:
        self.p = p
        self.n = 0
        self.sent: list[tuple[str, ChildIntent, int]] = []  # (cid, child, time)
        self.filled: dict[str, Decimal] = {}

    def send(self, children: list[ChildIntent], now: int, approve: bool = True) -> list[str]:
        out = []
        for c in children:
            assert isinstance(c, ChildIntent)
            assert c.parent_id == "p1"
            self.n += 1
            cid = f"c{self.n}"
            self.p.on_child_sent(c, cid, c.quantity, approve, "" if approve else "max_order_qty: too big")
            self.sent.append((cid, c, now))
            out.append(cid)
            self.check()
        return out

    def fill(self, cid: str, qty: str | Decimal | None = None, price: str = "100") -> None:
        child = next(c for i, c, _ in self.sent if i == cid)
        before = self.filled.get(cid, D(0))
        q = child.quantity - before if qty is None else D(qty)
        self.filled[cid] = before + q
        self.p.on_child_update(cid, q, terminal=(before + q == child.quantity), price=D(price))
        self.check()

    def step(self, event: object, now: int, fill: bool = True) -> list[str]:
        cids = self.send(self.p.on_market(event, now), now)
        if fill:
            for c in cids:
                self.fill(c)
        return cids

    def check(self) -> None:
        p = self.p
        total = sum((c.quantity for _, c, _ in self.sent), D(0))
        assert total <= p.quantity, "children sum above the parent"
        assert p.filled <= p.quantity
        assert p.released <= p.quantity

    @property
    def sizes(self) -> list[Decimal]:
        return [c.quantity for _, c, _ in self.sent]

    @property
    def times(self) -> list[int]:
        return [t for _, _, t in self.sent]


# ----------------------------------------------------------------------------- TWAP
def test_twap_slices_sum_exactly_spaced_by_interval_last_carries_remainder():
    spec = AlgoSpec("twap", duration_ms=HOUR, slices=3)
    p = parent(spec, "1")
    v = Venue(p)
    for k in range(3):
        due = T0 + k * HOUR // 3
        if k:  # nothing before the slice's time
            assert p.on_market(None, due - 1) == []
        v.step(None, due)
    # 1 / 3 = 0.333 on the 0.001 lot; the last slice takes the rounding remainder.
    assert v.sizes == [D("0.333"), D("0.333"), D("0.334")]
    assert v.times == [T0, T0 + 1_200_000, T0 + 2_400_000]
    assert sum(v.sizes) == D("1")
    assert p.status is ParentStatus.COMPLETED and p.reason == "filled"
    assert p.avg_price == D("100")
    assert all(c.order_type is OrderType.MARKET and c.tag == "entry@p1" for _, c, _ in v.sent)
    assert p.on_market(None, T0 + 10 * HOUR) == []


def test_twap_interval_gives_ceil_slices_and_late_data_merges_due_slices():
    spec = AlgoSpec("twap", duration_ms=HOUR, interval_ms=1_000_000)  # 0, 1e6, 2e6, 3e6 ms
    assert spec.slice_count == 4
    p = parent(spec, "1")
    v = Venue(p)
    v.step(None, T0)
    v.step(None, T0 + 2_500_000)  # slices 1 and 2 were both due: one child of 0.5
    v.step(None, T0 + 3_000_000)
    assert v.sizes == [D("0.25"), D("0.5"), D("0.25")]
    assert p.status is ParentStatus.COMPLETED


def test_twap_children_below_the_venue_minimum_merge_into_the_next():
    # 0.010 over 10 slices = 0.001 each, but the venue minimum is 0.002: children of 0.002
    # go out at slices 1, 3, 5, 7, 9 (hand-worked).
    spec = AlgoSpec("twap", duration_ms=10 * HOUR, slices=10)
    p = parent(spec, "0.010", instrument=inst(min_size="0.002"))
    v = Venue(p)
    for k in range(10):
        v.step(None, T0 + k * HOUR)
    assert v.sizes == [D("0.002")] * 5
    assert v.times == [T0 + k * HOUR for k in (1, 3, 5, 7, 9)]
    assert p.status is ParentStatus.COMPLETED


def test_twap_small_tail_merges_into_the_last_child_and_min_notional_counts():
    # 0.009 over 3 slices: 0.003 each; minimum 4 USDT at 1000 = 0.004. Slice 0 (0.003) is
    # merged into slice 1 (0.006); the last 0.003 cannot stand alone: one child of 0.009.
    spec = AlgoSpec("twap", duration_ms=3 * HOUR, slices=3)
    p = parent(spec, "0.009", instrument=inst(min_notional="4"), ref="1000")
    assert p.min_quantity == D("0.004")
    v = Venue(p)
    for k in range(3):
        v.step(None, T0 + k * HOUR)
    assert v.sizes == [D("0.009")]
    assert v.times == [T0 + HOUR]


def test_twap_never_overfills_while_limit_children_still_work():
    spec = AlgoSpec("twap", duration_ms=2 * HOUR, slices=2, limit_price=D("19000"))
    p = parent(spec, "1")
    v = Venue(p)
    [c1] = v.step(None, T0, fill=False)
    v.fill(c1, "0.1")  # partly filled, 0.4 still working
    [c2] = v.step(None, T0 + HOUR, fill=False)
    assert v.sizes == [D("0.5"), D("0.5")]
    assert all(c.order_type is OrderType.LIMIT and c.limit_price == D("19000") for _, c, _ in v.sent)
    # Past the schedule with everything working: nothing more goes out.
    assert p.on_market(None, T0 + 5 * HOUR) == []
    assert p.working_quantity == D("0.9")
    v.fill(c2)
    v.fill(c1, "0.4")
    assert p.status is ParentStatus.COMPLETED
    assert p.filled == D("1")


def test_twap_resized_child_leftover_goes_out_with_the_last_slice():
    spec = AlgoSpec("twap", duration_ms=2 * HOUR, slices=2)
    p = parent(spec, "1")
    [c] = p.on_market(None, T0)
    p.on_child_sent(c, "c1", D("0.3"), True)  # risk cut 0.5 to 0.3
    p.on_child_update("c1", D("0.3"), True, price=D("100"))
    [last] = p.on_market(None, T0 + HOUR)
    assert last.quantity == D("0.7")


def test_twap_max_deviation_prices_limit_children_against_the_arrival_price():
    spec = AlgoSpec("twap", duration_ms=HOUR, slices=2, max_deviation_bps=D("25"))
    buy = parent(spec, "1", ref="20000.55")
    sell = parent(spec, "1", side=Side.SELL, ref="20000.55")
    # 20000.55 × 1.0025 = 20050.551375 → down to the tick; × 0.9975 = 19950.548625 → up.
    assert buy.on_market(None, T0)[0].limit_price == D("20050.55")
    assert sell.on_market(None, T0)[0].limit_price == D("19950.55")
    with pytest.raises(ValidationError, match="max_deviation_bps"):
        parent(spec, "1", ref=None)


@settings(max_examples=150, deadline=None)
@given(units=st.integers(1, 10_000), n=st.integers(1, 40), step_exp=st.integers(0, 4),
       min_units=st.integers(1, 50))
def test_twap_property_children_sum_to_parent_on_lot_and_above_minimum(units, n, step_exp, min_units):
    step = D(1).scaleb(-step_exp)
    qty = units * step
    minimum = min_units * step
    i = inst(step=str(step), min_size=str(minimum))
    spec = AlgoSpec("twap", duration_ms=n * 1000, slices=n)
    if qty < minimum:
        with pytest.raises(ValidationError, match="below the venue minimum"):
            ParentOrder("p1", OrderIntent(BTC, Side.BUY, qty), spec, i, 0, D(1))
        return
    p = ParentOrder("p1", OrderIntent(BTC, Side.BUY, qty), spec, i, 0, D(1))
    v = Venue(p)
    for k in range(n):
        v.step(None, k * 1000)
    assert sum(v.sizes) == qty
    assert all(s >= minimum and s % step == 0 for s in v.sizes)
    # Brute-force reference: equal floor-to-lot slices, last takes the rest, merged forwards.
    base = (qty / n).quantize(step, rounding=ROUND_DOWN)
    raw = [base] * (n - 1) + [qty - base * (n - 1)]
    ref, acc = [], D(0)
    for s in raw:
        acc += s
        if acc >= minimum:
            ref.append(acc)
            acc = D(0)
    if acc:
        ref[-1] += acc
    assert v.sizes == ref
    assert p.status is ParentStatus.COMPLETED


# ----------------------------------------------------------------------------- iceberg
def test_iceberg_shows_at_most_display_and_releases_the_next_child_only_after_a_fill():
    spec = AlgoSpec("iceberg", display_quantity=D("0.3"), limit_price=D("100.5"))
    p = parent(spec, "1")
    v = Venue(p)
    [c1] = v.step(None, T0, fill=False)
    assert p.on_market(None, T0 + 1) == []  # the first still works
    v.fill(c1, "0.1")
    assert p.on_market(None, T0 + 2) == []  # partly filled: still nothing new
    v.fill(c1, "0.2")
    cids = [c1]
    while p.status is ParentStatus.WORKING:
        [c] = v.step(None, T0 + 3 + len(cids), fill=False)
        assert p.on_market(None, T0 + 100) == []
        v.fill(c)
        cids.append(c)
    assert v.sizes == [D("0.3"), D("0.3"), D("0.3"), D("0.1")]
    assert all(c.order_type is OrderType.LIMIT and c.limit_price == D("100.5") for _, c, _ in v.sent)
    assert max(v.sizes) <= D("0.3")
    assert p.filled == D("1") and p.status is ParentStatus.COMPLETED


def test_iceberg_tail_below_minimum_is_taken_from_the_child_before():
    # 1.05 shown 0.5 at a time with a 0.1 minimum: 0.5, 0.45, 0.1 (none above 0.5, none below 0.1).
    spec = AlgoSpec("iceberg", display_quantity=D("0.5"), limit_price=D("100"))
    p = parent(spec, "1.05", instrument=inst(min_size="0.1"))
    v = Venue(p)
    while p.status is ParentStatus.WORKING:
        v.step(None, T0)
    assert v.sizes == [D("0.5"), D("0.45"), D("0.1")]


def test_iceberg_venue_cancel_of_a_child_fails_the_parent():
    spec = AlgoSpec("iceberg", display_quantity=D("0.5"), limit_price=D("100"))
    p = parent(spec, "1")
    v = Venue(p)
    [c1] = v.step(None, T0, fill=False)
    p.on_child_update(c1, D("0.2"), False, price=D("100"))
    p.on_child_update(c1, D(0), True, reason="cancelled (self-trade prevention)")
    assert p.status is ParentStatus.FAILED
    assert p.reason == "child c1 cancelled (self-trade prevention) with 0.300 unfilled"
    assert p.on_market(None, T0 + 1) == []
    assert p.filled == D("0.2")


# ----------------------------------------------------------------------------- POV
def bar(volume: float, ts: int) -> Bar:
    return Bar(BTC, "1h", ts, 100.0, 101.0, 99.0, 100.0, volume)


def test_pov_children_track_participation_of_observed_volume_hand_worked():
    # p = 10 %, min child 0.05, parent 1 BTC. Cumulative volume 0.3, 0.7, 2.7, 7.7, 17.7:
    # allowance 0.03 (below min: wait), 0.07, 0.27, 0.77, 1 (capped) → children
    # 0.07, 0.20, 0.50, 0.23.
    spec = AlgoSpec("pov", participation=D("0.1"), min_child=D("0.05"))
    p = parent(spec, "1")
    v = Venue(p)
    assert p.on_market(None, T0) == []  # nothing traded yet
    for k, vol in enumerate([0.3, 0.4, 2.0, 5.0, 10.0]):
        v.step(bar(vol, T0 + k * HOUR), T0 + (k + 1) * HOUR)
    assert v.sizes == [D("0.07"), D("0.2"), D("0.5"), D("0.23")]
    assert v.times == [T0 + 2 * HOUR, T0 + 3 * HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR]
    assert p.status is ParentStatus.COMPLETED
    # Other instruments' volume does not count.
    q = parent(spec, "1")
    assert q.on_market(Bar("binance:ETH/USDT", "1h", T0, 1, 1, 1, 1, 1e6), T0 + HOUR) == []


def test_pov_on_real_trades_stays_within_participation(btc_trades):
    spec = AlgoSpec("pov", participation=D("0.2"), min_child=D("0.01"))
    p = parent(spec, "0.5", instrument=inst(step="0.00001"))
    v = Venue(p)
    vol = D(0)
    for tr in btc_trades:
        v.step(tr, tr.ts)
        vol += D(repr(tr.size))
        out = sum(v.sizes, D(0))
        allowance = min(D("0.5"), (D("0.2") * vol).quantize(D("0.00001"), rounding=ROUND_DOWN))
        assert out <= allowance  # never ahead of the participation
        if p.status is ParentStatus.WORKING:
            assert allowance - out < D("0.01")  # and never behind by a whole min child
    assert p.status is ParentStatus.COMPLETED
    assert sum(v.sizes) == D("0.5")
    assert len(v.sizes) > 5


def test_pov_counts_working_children_and_never_overfills():
    spec = AlgoSpec("pov", participation=D("0.5"))
    p = parent(spec, "1")
    v = Venue(p)
    v.step(bar(1.0, T0), T0 + HOUR, fill=False)  # 0.5 working, unfilled
    [c2] = v.step(bar(0.4, T0 + HOUR), T0 + 2 * HOUR, fill=False)  # allowance 0.7: only 0.2 more
    assert v.sizes == [D("0.5"), D("0.2")]
    v.step(bar(100.0, T0 + 2 * HOUR), T0 + 3 * HOUR, fill=False)  # the last 0.3
    assert p.on_market(bar(100.0, T0 + 3 * HOUR), T0 + 4 * HOUR) == []  # everything is out
    assert sum(v.sizes) == D("1")
    for cid, _, _ in v.sent:
        v.fill(cid)
    assert p.status is ParentStatus.COMPLETED
    with pytest.raises(ValidationError, match="over-fills"):
        p.on_child_update(c2, D("0.1"), True, price=D("1"))


def test_pov_max_duration_cancels_and_waits_for_working_children():
    spec = AlgoSpec("pov", participation=D("0.1"), max_duration_ms=2 * HOUR)
    p = parent(spec, "1")
    v = Venue(p)
    [c1] = v.step(bar(2.0, T0), T0 + HOUR, fill=False)
    assert p.on_market(bar(50.0, T0 + HOUR), T0 + 2 * HOUR) == []
    assert p.stopping and p.status is ParentStatus.WORKING  # c1 still works
    assert p.cancels_due() == [c1]
    assert p.cancels_due() == []  # asked once
    p.on_child_update(c1, D("0.05"), False, price=D("100"))
    p.on_child_update(c1, D(0), True, reason="cancelled")
    assert p.status is ParentStatus.CANCELLED
    assert p.reason == "max_duration_ms reached with 0 of 1 filled"
    assert p.summary()["filled"] == "0.05"


# ----------------------------------------------------------------------------- risk, stop
def test_a_denied_child_fails_the_parent_with_the_risk_reason():
    spec = AlgoSpec("twap", duration_ms=3 * HOUR, slices=3)
    p = parent(spec, "0.3")
    v = Venue(p)
    v.step(None, T0)
    v.send(p.on_market(None, T0 + HOUR), T0 + HOUR, approve=False)
    assert p.status is ParentStatus.FAILED
    assert p.reason == "child c2 denied by risk: max_order_qty: too big"
    assert p.on_market(None, T0 + 2 * HOUR) == []
    s = p.summary()
    assert (s["status"], s["filled"], s["children"], s["child_ids"]) == ("failed", "0.100", 2, ["c1", "c2"])


def test_a_failed_parent_asks_to_cancel_its_working_children_then_ends_failed():
    spec = AlgoSpec("twap", duration_ms=2 * HOUR, slices=2, limit_price=D("90"))
    p = parent(spec, "1")
    v = Venue(p)
    [c1] = v.step(None, T0, fill=False)
    v.send(p.on_market(None, T0 + HOUR), T0 + HOUR, approve=False)
    assert p.stopping and p.status is ParentStatus.WORKING  # c1 still rests at the venue
    assert p.cancels_due() == [c1]
    p.on_child_update(c1, D(0), True, reason="cancelled")  # our cancel: no second failure reason
    assert p.status is ParentStatus.FAILED
    assert p.reason == "child c2 denied by risk: max_order_qty: too big"


def test_cancel_waits_for_working_children_then_reports_cancelled():
    spec = AlgoSpec("iceberg", display_quantity=D("0.2"), limit_price=D("100"))
    p = parent(spec, "1")
    v = Venue(p)
    [c1] = v.step(None, T0, fill=False)
    p.cancel("kill switch")
    assert p.status is ParentStatus.WORKING and p.working_children() == [c1]
    p.on_child_update(c1, D(0), True, reason="cancelled (kill switch)")
    assert p.status is ParentStatus.CANCELLED and p.reason == "kill switch"


# ----------------------------------------------------------------------------- specs
@pytest.mark.parametrize(("kw", "field", "problem"), [
    ({"kind": "pov", "participation": 0}, "participation", "must be positive"),
    ({"kind": "pov", "participation": "0.51"}, "participation", "must be > 0 and <= 0.5"),
    ({"kind": "pov"}, "participation", "required for pov"),
    ({"kind": "iceberg", "display_quantity": "0.1"}, "limit_price", "required for iceberg"),
    ({"kind": "iceberg", "limit_price": "100"}, "display_quantity", "required for iceberg"),
    ({"kind": "twap", "duration_ms": -5, "slices": 2}, "duration_ms", "must be positive"),
    ({"kind": "twap", "slices": 2}, "duration_ms", "required for twap"),
    ({"kind": "twap", "duration_ms": 1000}, "slices", "slices or interval_ms"),
    ({"kind": "twap", "duration_ms": 1000, "slices": 2, "interval_ms": 500}, "slices", "slices or interval_ms"),
    ({"kind": "twap", "duration_ms": 1000, "interval_ms": 5000}, "interval_ms", "longer than duration_ms"),
    ({"kind": "twap", "duration_ms": 1000, "slices": 2.5}, "slices", "whole number"),
    ({"kind": "twap", "duration_ms": 1000, "slices": 2, "participation": "0.1"}, "participation",
     "not used by twap"),
    ({"kind": "twap", "duration_ms": 1000, "slices": 2, "limit_price": 1, "max_deviation_bps": 5},
     "max_deviation_bps", "not both"),
    ({"kind": "vwap"}, "kind", "unknown execution algorithm"),
    ({"kind": "twap", "duration_ms": 1000, "slices": 2, "speed": 3}, "speed", "unknown key"),
    ({"duration_ms": 1000}, "kind", "required"),
])
def test_bad_specs_are_refused_naming_the_field(kw, field, problem):
    with pytest.raises(ValidationError) as err:
        AlgoSpec.from_dict(kw)
    assert err.value.field == field
    assert problem in err.value.problem


def test_display_larger_than_the_parent_or_below_the_minimum_is_refused():
    spec = AlgoSpec("iceberg", display_quantity=D("2"), limit_price=D("100"))
    with pytest.raises(ValidationError, match="larger than the parent quantity 1") as err:
        parent(spec, "1")
    assert err.value.field == "display_quantity"
    small = AlgoSpec("iceberg", display_quantity=D("0.05"), limit_price=D("100"))
    with pytest.raises(ValidationError, match="below the venue minimum 0.1"):
        parent(small, "1", instrument=inst(min_size="0.1"))
    twap = AlgoSpec("twap", duration_ms=HOUR, slices=2)
    with pytest.raises(ValidationError, match="lot size"):
        parent(twap, "1.0005")
    with pytest.raises(ValidationError, match="market or limit"):
        ParentIntent(OrderIntent(BTC, Side.BUY, D(1), OrderType.STOP_MARKET, stop_price=D(5)), twap)


def test_spec_is_frozen_hashable_and_round_trips_through_its_dict():
    spec = AlgoSpec.from_dict({"kind": "pov", "participation": 0.1, "min_child": "0.01", "max_duration_ms": 60000})
    assert spec.participation == D("0.1") and spec.max_duration_ms == 60_000
    assert spec.to_dict() == {"kind": "pov", "max_duration_ms": 60000, "participation": "0.1", "min_child": "0.01"}
    assert AlgoSpec.from_dict(spec.to_dict()) == spec
    assert hash(spec) == hash(AlgoSpec.from_dict(spec.to_dict()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.participation = D("0.2")  # type: ignore[misc]


def test_limit_intent_price_becomes_the_childrens_limit():
    spec = AlgoSpec("twap", duration_ms=HOUR, slices=2)
    p = parent(spec, "1", intent_kw={"order_type": OrderType.LIMIT, "limit_price": D("99.5")})
    [c] = p.on_market(None, T0)
    assert (c.order_type, c.limit_price, c.quantity) == (OrderType.LIMIT, D("99.5"), D("0.5"))
