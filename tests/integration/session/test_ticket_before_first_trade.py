"""A ticket market order taken before the strategy's first trade fills at the current market,
and the ticket's answer follows the order to its fill (price and fee).

The session shows its broker bars only while it has work; an operator's order must still be
priced at the bar the session is on, not refused for want of a price."""

from __future__ import annotations

import re
from decimal import Decimal

from lyra.audit import EventLog
from lyra.auth.permissions import Principal, Role
from lyra.core.enums import Side
from lyra.core.orders import OrderIntent
from lyra.session.commands import CommandQueue
from lyra.session.factory import open_session
from lyra.testing.sessions import demo_config

IID = "coinbase:BTC/USD"


def test_a_ticket_before_any_strategy_trade_fills_at_the_current_bar(session_home):
    h = session_home
    # Slow averages: the strategy cannot trade in its first 2,000 bars. Paced (3.6 ms of wall
    # time per hourly bar), as a session a person watches, so it takes commands on time.
    cfg = demo_config(session_id="tkt", params={"fast": 600, "slow": 2000}, end="2018-06-01",
                      speed=1_000_000.0)
    s = open_session(cfg, engine=h["engine"], market_dir=h["home"] / "market",
                     jsonl_path=h["home"] / "audit" / "events.jsonl")
    q = CommandQueue(h["engine"])
    sent: dict[str, int] = {}

    def at_poll(n: int) -> None:  # called at the session's heartbeat, where it takes commands
        if not sent:
            sent["id"] = q.submit_order("tkt", OrderIntent(IID, Side.BUY, Decimal("0.05")),
                                        Principal("tina", Role.TRADER)).id
        elif " filled " in q.get(sent["id"]).result:  # the answer followed the order to its fill
            s.registry.request_stop("tkt")

    s.run(on_progress=at_poll)
    cmd = q.get(sent["id"])
    assert cmd.status == "done", cmd.result
    entries = [e for e in EventLog(h["engine"]).read(session_id="tkt")
               if e.data().get("client_order_id") == cmd.client_order_id]
    kinds = [e.kind for e in entries]
    assert "order.reject" not in kinds, [e.data() for e in entries]
    fills = [e.data()["fill"] for e in entries if e.kind == "order.fill"]
    assert fills, kinds
    # filled at the bar the session was on when it took the ticket: the close it marks
    taken = next(e for e in entries if e.kind == "order.created")
    bars = s.feed.sources[0].bars
    k = int((bars.ts + s.tf_ms <= taken.ts).sum()) - 1  # the last bar closed at that moment
    lo, hi = float(bars.low[k:k + 2].min()), float(bars.high[k:k + 2].max())
    px = float(fills[0]["price"])
    assert lo * 0.99 <= px <= hi * 1.01, (px, lo, hi)
    # and no strategy order before it: this was the session's first order
    assert cmd.client_order_id.endswith("00000001")
    # the ticket's answer: accepted by risk, then filled, at the logged fill's price and fee
    cid = cmd.client_order_id
    m = re.fullmatch(rf"order {cid} accepted by risk \(status accepted\); {cid} filled 0\.05 at "
                     r"([0-9.]+), fee ([0-9.]+) USD", cmd.result)
    assert m, cmd.result
    assert Decimal(m[1]) == Decimal(fills[0]["price"]) and Decimal(m[2]) == Decimal(fills[0]["fee"])
    done = [e.data() for e in EventLog(h["engine"]).read(session_id="tkt", kinds=("command.done",))]
    assert [d["result"] for d in done] == [f"order {cid} accepted by risk (status accepted)", cmd.result]
