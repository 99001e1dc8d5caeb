"""Event payloads for orders and fills: one place that turns domain objects into JSON-able
dicts and back, so the live path and a replay read the same thing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lyra.core.enums import Liquidity, OrderEventType, OrderType, Side, TimeInForce
from lyra.core.orders import Fill, Order, OrderEvent, OrderIntent

ORDER_CREATED = "order.created"
ORDER_EVENT_PREFIX = "order."


def order_event_kind(t: OrderEventType) -> str:
    """``order.submit``, ``order.fill``... — the log kind of an order event."""
    return ORDER_EVENT_PREFIX + t.value


def _dec(v: Decimal | None) -> str | None:
    return None if v is None else str(v)


def order_created_payload(order: Order) -> dict[str, Any]:
    i = order.intent
    return {
        "client_order_id": order.client_order_id,
        "instrument_id": i.instrument_id,
        "side": i.side.value,
        "order_type": i.order_type.value,
        "quantity": str(i.quantity),
        "limit_price": _dec(i.limit_price),
        "stop_price": _dec(i.stop_price),
        "time_in_force": i.time_in_force.value,
        "post_only": i.post_only,
        "reduce_only": i.reduce_only,
        "tag": i.tag,
        "created_ts": order.created_ts,
    }


def order_from_created(p: dict[str, Any]) -> Order:
    intent = OrderIntent(
        instrument_id=p["instrument_id"],
        side=Side(p["side"]),
        quantity=Decimal(p["quantity"]),
        order_type=OrderType(p["order_type"]),
        limit_price=None if p["limit_price"] is None else Decimal(p["limit_price"]),
        stop_price=None if p["stop_price"] is None else Decimal(p["stop_price"]),
        time_in_force=TimeInForce(p["time_in_force"]),
        post_only=bool(p["post_only"]),
        reduce_only=bool(p["reduce_only"]),
        tag=p.get("tag", ""),
    )
    return Order(client_order_id=p["client_order_id"], intent=intent, created_ts=int(p["created_ts"]))


def fill_payload(f: Fill) -> dict[str, Any]:
    return {
        "fill_id": f.fill_id,
        "client_order_id": f.client_order_id,
        "instrument_id": f.instrument_id,
        "side": f.side.value,
        "quantity": str(f.quantity),
        "price": str(f.price),
        "fee": str(f.fee),
        "fee_currency": f.fee_currency,
        "liquidity": f.liquidity.value,
        "ts": f.ts,
    }


def fill_from_payload(p: dict[str, Any]) -> Fill:
    return Fill(
        fill_id=p["fill_id"],
        client_order_id=p["client_order_id"],
        instrument_id=p["instrument_id"],
        side=Side(p["side"]),
        quantity=Decimal(p["quantity"]),
        price=Decimal(p["price"]),
        fee=Decimal(p["fee"]),
        fee_currency=p["fee_currency"],
        liquidity=Liquidity(p["liquidity"]),
        ts=int(p["ts"]),
    )


def order_event_payload(client_order_id: str, ev: OrderEvent) -> dict[str, Any]:
    d: dict[str, Any] = {"client_order_id": client_order_id, "ts": ev.ts}
    if ev.reason:
        d["reason"] = ev.reason
    if ev.venue_order_id:
        d["venue_order_id"] = ev.venue_order_id
    if ev.fill is not None:
        d["fill"] = fill_payload(ev.fill)
    return d


def order_event_from_payload(kind: str, p: dict[str, Any]) -> OrderEvent:
    return OrderEvent(
        type=OrderEventType(kind[len(ORDER_EVENT_PREFIX):]),
        ts=int(p["ts"]),
        fill=fill_from_payload(p["fill"]) if "fill" in p else None,
        reason=p.get("reason", ""),
        venue_order_id=p.get("venue_order_id", ""),
    )
