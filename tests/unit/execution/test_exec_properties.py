"""Properties over random order sequences: balances never go negative, value is conserved
minus fees, and every report sequence is legal under the core TRANSITIONS table."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lyra.core import AggressorSide, Bar, OrderStatus, ReplayClock, Side, Trade
from lyra.execution import LatencyModel, PaperBroker
from lyra.execution.testkit import BrokerDriver, book

BTC = "binance:BTC/USDT"
START = {"USDT": D("5000"), "BTC": D("0.5")}

order_st = st.tuples(
    st.just("order"),
    st.sampled_from(["buy", "sell"]),
    st.sampled_from(["market", "limit", "stop_market", "stop_limit"]),
    st.sampled_from(["gtc", "ioc", "fok"]),
    st.integers(6, 300),  # quantity in 0.001 BTC (>= the 5 USDT minimum notional)
    st.integers(-30, 30),  # price offset in ticks of 0.5 from the mid
    st.integers(0, 4).map(lambda x: x == 0),  # reduce-only, sometimes
)
market_st = st.tuples(
    st.sampled_from(["book", "trade", "bar"]),
    st.integers(-20, 20),  # mid move
    st.integers(1, 300),  # size in 0.01 BTC
    st.booleans(),
)
cancel_st = st.tuples(st.just("cancel"), st.integers(0, 50))
step_st = st.lists(st.one_of(order_st, order_st, market_st, market_st, cancel_st), min_size=1, max_size=40)


def _check(d: BrokerDriver, start: dict[str, D]) -> None:
    bal = d.broker.balances()
    for b in bal.values():
        assert b.free >= 0, b
        assert b.locked >= 0, b
    fills = d.broker.fills_since(0)
    base = start["BTC"] + sum((f.quantity * f.side.sign for f in fills), D(0))
    quote = start["USDT"] - sum((f.quantity * f.price * f.side.sign for f in fills), D(0)) - sum(
        (f.fee for f in fills), D(0))
    assert bal["BTC"].total == base
    assert bal["USDT"].total == quote


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=step_st, latency=st.sampled_from([0, 3]), with_book=st.booleans())
def test_random_order_flows_keep_the_ledger_exact_and_the_reports_legal(
    steps: list[tuple[object, ...]], latency: int, with_book: bool
) -> None:
    clock = ReplayClock(0)
    broker = PaperBroker.from_venue("binance", clock, START, slippage_bps=5,
                                    latency=LatencyModel(latency, latency, jitter_ms=latency, seed=7))
    d = BrokerDriver(broker, clock)  # applies every report through Order.apply
    mid, t = 1000.0, 1
    d.feed(book(BTC, t, [(mid - 0.5, 0.5)], [(mid + 0.5, 0.5)]) if with_book
           else Bar(BTC, "1m", t, mid, mid, mid, mid, 10.0))
    for step in steps:
        t += 2
        kind = step[0]
        if kind == "order":
            _, side, otype, tif, q, off, ro = step
            px = D(repr(mid)) + D(off) / 2  # type: ignore[operator]
            kw: dict[str, object] = {"order_type": otype, "reduce_only": ro}
            if otype in ("limit", "stop_limit"):
                kw["limit_price"] = px
                kw["time_in_force"] = tif
            elif otype == "market":
                kw["time_in_force"] = tif
            if otype in ("stop_market", "stop_limit"):
                kw["stop_price"] = px + (D(1) if side == "buy" else D(-1))
            clock.advance_to(t)
            d.submit(BTC, side, D(q) / 1000, **kw)  # type: ignore[operator]
            d.poll()
        elif kind == "cancel":
            working = [o for o in d.orders.values()
                       if o.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)]
            if working:
                d.cancel(working[step[1] % len(working)])  # type: ignore[operator]
        else:
            _, move, size, flag = step
            mid = max(mid + float(move) / 2, 900.0)  # type: ignore[arg-type]
            s = float(size) / 100  # type: ignore[arg-type]
            if kind == "book":
                d.feed(book(BTC, t, [(mid - 0.5, s), (mid - 1.0, 2 * s)], [(mid + 0.5, s), (mid + 1.0, 2 * s)]))
            elif kind == "trade":
                d.feed(Trade(BTC, t, mid, s, AggressorSide.SELL if flag else AggressorSide.BUY))
            else:
                d.feed(Bar(BTC, "1m", t, mid, mid + 2, mid - 2, mid, s * 10))
        _check(d, START)
    # Wind down: cancel what still works, let every report arrive.
    t += 100
    d.at(t)
    for o in list(d.orders.values()):
        if o.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            d.cancel(o)
    d.at(t + 100)
    _check(d, START)
    event(f"fills: {min(len(d.broker.fills_since(0)), 5)}+ ; cancels/rejects seen: "
          f"{min(sum(r.type.value in ('cancel', 'reject') for r in d.reports), 3)}+")
    assert d.broker.open_orders() == []
    assert all(b.locked == 0 for b in d.broker.balances().values())
    for o in d.orders.values():
        assert o.status.is_terminal, o
        venue = d.broker.get_order(o.client_order_id)
        assert venue is not None
        assert venue.filled_quantity == o.filled_quantity
    assert d.broker.position(BTC) == sum(
        (f.quantity * (1 if f.side is Side.BUY else -1) for f in d.broker.fills_since(0)), D(0))
