"""The live path (projection tables) equals a replay of the log; failures write nothing."""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lyra.audit import EventLog, Ledger, read_tables, replay, state_as_rows, verify
from lyra.core import (
    Fill,
    IllegalTransition,
    Liquidity,
    Order,
    OrderEvent,
    OrderEventType,
    OrderIntent,
    Side,
    client_order_id,
)
from lyra.testing.ledger import fixture_pen

E = OrderEventType
PEN = fixture_pen()  # the ledger writes orders only with a pen (the gateway's, or a fixture's)
INSTR = ["binance:BTC/USDT", "binance:ETH/USDT"]


def _comparable(tables):
    keep_o = ("client_order_id", "session_id", "status", "filled_quantity", "avg_fill_price", "fees", "quantity")
    keep_p = ("session_id", "instrument_id", "quantity", "avg_price", "realized_pnl", "fees")
    keep_f = ("fill_id", "session_id", "quantity", "price", "fee")
    return {
        "orders": [{k: r[k] for k in keep_o} for r in tables["orders"]],
        "positions": [{k: r[k] for k in keep_p} for r in tables["positions"]],
        "fills": [{k: r[k] for k in keep_f} for r in tables["fills"]],
    }


# A random flow: (session, instrument index, side, quantity in lots, number of fill slices, price)
flows = st.lists(
    st.tuples(st.sampled_from(["s1", "s2"]), st.integers(0, 1), st.sampled_from([Side.BUY, Side.SELL]),
              st.integers(1, 50), st.integers(1, 3), st.integers(90, 110), st.booleans()),
    min_size=1, max_size=12,
)


def run_flow(ledger: Ledger, flow) -> None:
    seqs = {"s1": 0, "s2": 0}
    ts = 1_000
    for sid, ii, side, lots, slices, px, cancel_early in flow:
        seqs[sid] += 1
        cid = client_order_id(sid, seqs[sid])
        qty = Decimal(lots) / 100
        order = Order(cid, OrderIntent(INSTR[ii], side, qty), created_ts=ts)
        with ledger.transaction() as tx:
            tx.create_order(sid, order, pen=PEN)
            tx.order_event(sid, cid, OrderEvent(E.SUBMIT, ts + 1), pen=PEN)
            tx.order_event(sid, cid, OrderEvent(E.ACCEPT, ts + 2), pen=PEN)
        remaining = qty
        for k in range(slices):
            part = remaining if k == slices - 1 else (qty / slices).quantize(Decimal("0.01"))
            if part <= 0:
                continue
            if cancel_early and k == slices - 1 and slices > 1:
                with ledger.transaction() as tx:
                    tx.order_event(sid, cid, OrderEvent(E.REQUEST_CANCEL, ts + 5), pen=PEN)
                    tx.order_event(sid, cid, OrderEvent(E.CANCEL, ts + 6), pen=PEN)
                break
            price = Decimal(px) + Decimal(k)
            f = Fill(f"{cid}-f{k}", cid, INSTR[ii], side, part, price, (part * price / 1000).quantize(
                Decimal("0.00000001")), "USDT", Liquidity.TAKER, ts + 3 + k)
            ev = E.FILL if part == remaining else E.PARTIAL_FILL
            with ledger.transaction() as tx:
                tx.order_event(sid, cid, OrderEvent(ev, f.ts, fill=f), pen=PEN)
            remaining -= part
        ts += 100


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flow=flows)
def test_replay_rebuilds_the_live_projections(engine, flow):
    with engine.begin() as c:  # hypothesis reuses the fixture: start from an empty log
        for t in ("events", "orders", "fills", "positions"):
            c.exec_driver_sql(f"DELETE FROM {t}")
        c.exec_driver_sql("UPDATE audit_head SET seq = 0, hash = '" + "0" * 64 + "'")
    log = EventLog(engine)
    ledger = Ledger(log)
    run_flow(ledger, flow)
    with engine.connect() as c:
        live = _comparable(read_tables(c))
    rebuilt = _comparable(state_as_rows(replay(log.read())))
    assert live == rebuilt
    assert verify(engine).ok


def test_point_in_time_replay(engine):
    log = EventLog(engine)
    ledger = Ledger(log)
    run_flow(ledger, [("s1", 0, Side.BUY, 10, 1, 100, False), ("s1", 0, Side.SELL, 4, 1, 110, False)])
    before_sell = replay(log.read(until_ts=1_050))
    after = replay(log.read())
    assert before_sell.positions[("s1", INSTR[0])].quantity == Decimal("0.10")
    assert after.positions[("s1", INSTR[0])].quantity == Decimal("0.06")
    assert after.positions[("s1", INSTR[0])].realized_pnl == Decimal("0.40")  # 0.04 * (110 - 100)


def test_illegal_transition_leaves_database_unchanged(engine, tmp_path):
    path = tmp_path / "e.jsonl"
    log = EventLog(engine, path)
    ledger = Ledger(log)
    cid = client_order_id("s1", 1)
    with ledger.transaction() as tx:
        tx.create_order("s1", Order(cid, OrderIntent(INSTR[0], Side.BUY, Decimal(1)), created_ts=1), pen=PEN)
    head = log.head()
    with engine.connect() as c:
        before = read_tables(c)
    with pytest.raises(IllegalTransition), ledger.transaction() as tx:
        tx.order_event("s1", cid, OrderEvent(E.SUBMIT, 2), pen=PEN)
        tx.order_event("s1", cid, OrderEvent(E.CANCEL_REJECT, 3), pen=PEN)  # not allowed from SUBMITTED
    assert log.head() == head
    with engine.connect() as c:
        assert read_tables(c) == before
    assert ledger.state.orders[cid].status.value == "initialized"
    assert verify(engine, path).ok


def test_the_ledger_refuses_order_writes_without_the_gateways_pen(engine, tmp_path):
    from lyra.audit.ledger import OrderPen, issue_order_pen

    log = EventLog(engine, tmp_path / "e.jsonl")
    ledger = Ledger(log)
    cid = client_order_id("s1", 1)
    order = Order(cid, OrderIntent(INSTR[0], Side.BUY, Decimal(1)), created_ts=1)
    head = log.head()
    for write in (lambda tx: tx.create_order("s1", order),
                  lambda tx: tx.order_event("s1", cid, OrderEvent(E.SUBMIT, 2)),
                  lambda tx: tx.append("risk.decision", {"client_order_id": cid}, session_id="s1"),
                  lambda tx: tx.append("order.fill", {"client_order_id": cid}, session_id="s1"),
                  lambda tx: tx.create_order("s1", order, pen=object())):  # not a pen
        with pytest.raises(PermissionError, match="only the order gateway"), ledger.transaction() as tx:
            write(tx)
    assert log.head() == head  # nothing written
    # a pen is issued only to the gateway's module (and test fixtures), not made by hand
    with pytest.raises(PermissionError, match="may not write orders"):
        issue_order_pen("me")
    with pytest.raises(PermissionError, match="issued by issue_order_pen"):
        OrderPen("me", object())
    with ledger.transaction() as tx:  # other entries need no pen
        tx.append("session.note", {"x": 1}, session_id="s1")
    assert log.head()[0] == head[0] + 1
