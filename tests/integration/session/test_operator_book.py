"""Operator orders in their own book, and rebalances executed by the session (issue 21, items
1, 3 and 5): a real paced paper session in another process takes a ticket buy, a ticket risk
denies and a rebalance; its strategy trades exactly as the same session without them would,
the operator's fills are the operator book's, every order went through the one gateway (one
``risk.decision`` shape), and bad rebalances are refused with the field and value, nothing
written."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from lyra.audit import EventLog
from lyra.auth.permissions import PermissionDenied, Principal, Role
from lyra.core.enums import Side
from lyra.core.errors import ValidationError
from lyra.core.orders import OrderIntent
from lyra.session.commands import CommandQueue
from lyra.session.config import load_session_config
from lyra.session.factory import open_session
from lyra.session.gateway import is_operator_tag, operator_book
from lyra.session.registry import SessionRegistry
from lyra.store.tables_session import session_commands
from lyra.testing.sessions import paced_toml, session_process, wait_for

D = Decimal
IID = "coinbase:BTC/USD"
TRADER = Principal("tina", Role.TRADER)
VIEWER = Principal("vic", Role.VIEWER)

def config_toml(sid: str) -> str:
    """About 15 s of hourly bars at this pace (3.6 ms a bar); risk refuses more than 1 BTC per
    order."""
    return paced_toml(sid, speed=1_000_000.0, fast=10, slow=30, start="2018-01-01", end="2018-07-01",
                      max_order_qty="1")


def strategy_trades(engine: Any, sid: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The strategy's own orders and fills (operator orders left out), without the ids (an
    operator order takes a sequence number, so the strategy's ids shift)."""
    tags: dict[str, str] = {}
    orders, fills = [], []
    for r in EventLog(engine).read(session_id=sid, kinds=("order.created", "order.fill", "order.deny")):
        d = r.data()
        if r.kind == "order.created":
            tags[d["client_order_id"]] = d.get("tag") or ""
            if not is_operator_tag(tags[d["client_order_id"]]):
                orders.append((d["side"], d["quantity"], d["order_type"], d["created_ts"]))
        elif r.kind == "order.deny":
            assert is_operator_tag(tags[d["client_order_id"]]), f"a strategy order was denied: {d}"
        elif not is_operator_tag(tags[d["fill"]["client_order_id"]]):
            f = d["fill"]
            fills.append((f["side"], f["quantity"], f["price"], f["ts"]))
    return orders, fills


@pytest.mark.subprocess
@pytest.mark.slow
def test_operator_orders_never_change_the_strategy(session_home, tmp_path):
    h = session_home
    eng = h["engine"]
    sid = "opbook1"
    cfg = tmp_path / f"{sid}.toml"
    cfg.write_text(config_toml(sid))
    proc = session_process(h["env"], "start", "--config", str(cfg))
    procs = [proc]
    q = CommandQueue(eng, h["home"] / "audit" / "events.jsonl")
    reg = SessionRegistry(eng)
    try:
        # once the strategy has traded (the venue knows the price), the operator steps in
        wait_for(lambda: any(True for _ in EventLog(eng).read(session_id=sid, kinds=("order.fill",))),
                 120, "the strategy's first fill", procs=procs)
        buy = q.wait(q.submit_order(sid, OrderIntent(IID, Side.BUY, D("0.05")), TRADER, "hedge").id, 60)
        assert buy.status == "done", buy.result
        big = q.wait(q.submit_order(sid, OrderIntent(IID, Side.BUY, D("2")), TRADER).id, 60)
        assert big.status == "refused" and "max_order_qty" in big.result, big.result

        # Bad rebalances: refused at once, naming the field and the value; nothing queued.
        with eng.connect() as c:
            before = c.execute(sa.select(sa.func.count()).select_from(session_commands)).scalar_one()
        with pytest.raises(ValidationError, match="fraction of equity") as e:
            q.submit_rebalance(sid, {IID: "1.2"}, TRADER)
        assert (e.value.field, e.value.value) == (f"weights[{IID}]", "1.2")
        with pytest.raises(ValidationError, match="not traded by this session") as e:
            q.submit_rebalance(sid, {"coinbase:ETH/USD": "0.1"}, TRADER)
        assert e.value.field == "weights[coinbase:ETH/USD]"
        with pytest.raises(PermissionDenied):
            q.submit_rebalance(sid, {IID: "0.1"}, VIEWER)
        with eng.connect() as c:
            assert c.execute(sa.select(sa.func.count()).select_from(session_commands)).scalar_one() == before

        # A real rebalance: 2% of equity in BTC (under the 1 BTC limit), sized net of fees, through risk, filled.
        reb = q.wait(q.submit_rebalance(sid, {IID: "0.02"}, TRADER).id, 60)
        assert reb.status == "done", reb.result
        rcid = reb.client_order_id
        assert rcid.startswith(f"{sid}-") and "buy" in reb.result
        wait_for(lambda: [r for r in EventLog(eng).read(session_id=sid, kinds=("order.fill",))
                          if r.data()["client_order_id"] == rcid], 60, "the rebalance's fill")
        _out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            reg.request_stop(sid)
            proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert reg.get(sid)["status"] == "finished"

    log = list(EventLog(eng).read(session_id=sid))
    created = {r.data()["client_order_id"]: r.data() for r in log if r.kind == "order.created"}
    assert created[buy.client_order_id]["tag"] == "manual:tina"
    assert created[rcid]["tag"] == "rebalance:tina"
    # The rebalance buy was sized to fit 2% of equity with the fee and the market buffer.
    [reb_fill] = [r.data()["fill"] for r in log if r.kind == "order.fill"
                  and r.data()["client_order_id"] == rcid]
    assert D(reb_fill["quantity"]) > 0

    # The operator book holds exactly the ticket's and the rebalance's fills.
    strategy, operator = operator_book(log)
    assert operator == {IID: D("0.05") + D(reb_fill["quantity"])}
    assert strategy.get(IID, D(0)) in (D(0), D("0.01"))  # long-only sma cross: flat or long

    # The same session without any operator order: the strategy's orders and fills are identical.
    ref = tomllib.loads(config_toml("opbook-ref"))
    ref.pop("speed")
    s = open_session(load_session_config(ref), engine=eng, market_dir=h["home"] / "market")
    s.run()
    assert strategy_trades(eng, sid) == strategy_trades(eng, "opbook-ref")
    assert strategy_trades(eng, sid)[0], "the strategy traded"

    # Strategy, ticket and rebalance orders: one risk.decision shape (the engine's).
    shapes = {frozenset(r.data()) for r in log if r.kind == "risk.decision"}
    assert len(shapes) == 1 and len(next(iter(shapes))) == 11, shapes
