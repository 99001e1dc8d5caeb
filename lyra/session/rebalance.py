"""A rebalance, executed by the session that was asked for it (a ``rebalance`` command).

The dashboard queues target weights (:meth:`lyra.session.commands.CommandQueue.submit_rebalance`);
the session takes the command at its heartbeat and, at its own marks and holdings:

* sells what is above its target (down to the lot grid), first, so the cash is there for
  the buys;
* buys what is below, sized **net of fees and slippage** with the one cost rule
  (:class:`lyra.core.costs.CostRule`, the paper broker's own when it has one): the buy's
  reservation -- price plus the market buffer, plus the taker fee -- fits the target value and
  the cash, so a 100% target leaves room for its fees and the broker never refuses it for funds;
* sends every order through the session's order gateway (risk, ledger, broker), tagged
  ``rebalance:<user>``: booked to the operator book, never to the strategy.

Everything follows from the session's state at the event the command was taken at, so a
resumed run re-does it identically.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lyra.core.costs import CostRule
from lyra.core.enums import OrderStatus, Side
from lyra.core.orders import OrderIntent
from lyra.core.values import ZERO, plain_str, to_decimal

if TYPE_CHECKING:
    from lyra.session.runtime import Session


def _rule(s: Session, iid: str) -> CostRule:
    get = getattr(s.broker, "cost_rule", None)  # the broker's own rule (its highest fee tier)
    if get is not None:
        rule = get(iid)
        if isinstance(rule, CostRule):
            return rule
    return CostRule.of(s.instruments[iid])


def plan(s: Session, weights: dict[str, Decimal]) -> tuple[list[OrderIntent], list[str]]:
    """The orders that bring the session to ``weights`` (sells first), and notes on what is
    left out (no price yet, below the venue's minimums)."""
    from lyra.session.commands import parse_weights

    weights = parse_weights({k: str(v) for k, v in weights.items()}, s.instruments)
    equity = s.equity()
    sells: list[OrderIntent] = []
    buys: list[tuple[str, Decimal, CostRule, Decimal]] = []
    notes: list[str] = []
    proceeds = ZERO
    for iid in sorted(weights):
        mark_f = s.marks.get(iid)
        if mark_f is None:
            notes.append(f"{iid}: no market price yet, left out")
            continue
        mark = to_decimal(mark_f, "mark")
        rule = _rule(s, iid)
        held = s.holdings.get(iid, ZERO)
        target = weights[iid] * equity
        have = held * mark
        if have > target:
            q = rule.floor(held - target / mark)
            why = rule.minimum_problem(q, mark)
            if why:
                notes.append(f"{iid}: sell left out ({why})")
                continue
            sells.append(OrderIntent(iid, Side.SELL, q))
            proceeds += q * mark * (1 - rule.taker_fee)
        elif target > have:
            buys.append((iid, target - have, rule, mark))
    quote_cash = {inst.quote: s.cash.get(inst.quote, ZERO) for inst in s.instruments.values()}
    out = list(sells)
    for iid, budget, rule, mark in buys:
        quote = s.instruments[iid].quote
        funds = min(budget, quote_cash[quote] + proceeds)
        unit = rule.unit_price(market=mark)
        q = rule.affordable(funds, unit) if unit is not None else ZERO
        why = rule.minimum_problem(q, mark)
        if why:
            notes.append(f"{iid}: buy left out ({why})")
            continue
        spent = rule.reserve(q, unit) if unit is not None else ZERO
        quote_cash[quote] -= spent
        out.append(OrderIntent(iid, Side.BUY, q))
    return out, notes


def rebalance(s: Session, info: dict[str, Any], t: int) -> tuple[str, str, str]:
    """Execute a logged ``rebalance`` command: (status, result for the operator, first order id)."""
    weights = {k: Decimal(v) for k, v in info["payload"]["weights"].items()}
    intents, notes = plan(s, weights)
    tag = f"rebalance:{info['actor']}"
    first = ""
    lines: list[str] = []
    accepted = 0
    for it in intents:
        s.show_market(it.instrument_id, t)  # priced at the current market, not a stale one
        cid = s.gateway.next_client_id()
        first = first or cid
        s._submit([OrderIntent(it.instrument_id, it.side, it.quantity, tag=tag)], t)
        order = s.ledger.state.orders[cid]
        if order.status is OrderStatus.DENIED:
            lines.append(f"{cid} {it.side.value} {plain_str(it.quantity)} {it.instrument_id} denied by risk: "
                         f"{order.history[-1].reason}")
        else:
            accepted += 1
            lines.append(f"{cid} {it.side.value} {plain_str(it.quantity)} {it.instrument_id} "
                         f"{order.status.value}")
    text = "; ".join(lines + notes) or "nothing to trade: on target"
    if intents and not accepted:
        return "refused", f"rebalance denied: {text}", first
    return "done", f"rebalance: {text}", first


__all__ = ["plan", "rebalance"]
