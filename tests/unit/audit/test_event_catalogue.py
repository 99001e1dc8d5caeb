"""The event catalogue (lyra.audit.events): one frozen type per kind the code writes, strict
reading with errors that name the kind and the field, and byte-for-byte writing back."""

from __future__ import annotations

import dataclasses
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lyra.audit import EVENT_TYPES, EventPayloadError, canonical_json, parse_event
from lyra.audit._payload import Payload
from lyra.audit.events import (
    ORDER_TRANSITIONS,
    AuthEntry,
    AuthLockout,
    EquitySnapshot,
    FillRecord,
    OrderCreated,
    OrderFilled,
    OrderSubmitted,
    RiskDecided,
    TradingStateChanged,
    event_type,
    order_transition,
)
from lyra.core.enums import Liquidity, OrderEventType, OrderType, Side, TimeInForce
from lyra.core.orders import Fill, Order, OrderEvent, OrderIntent

LYRA = Path(__file__).resolve().parents[3] / "lyra"
D = Decimal
CID = "s1-00000001"
FILL = {"fill_id": "f1", "client_order_id": CID, "instrument_id": "coinbase:BTC/USD", "side": "buy",
        "quantity": "0.1", "price": "4321.50", "fee": "2.592900000", "fee_currency": "USD",
        "liquidity": "taker", "ts": 1_500_000_000_000}
CREATED = {"client_order_id": CID, "instrument_id": "coinbase:BTC/USD", "side": "buy", "order_type": "limit",
           "quantity": "0.1", "limit_price": "4000.00", "stop_price": None, "time_in_force": "gtc",
           "post_only": False, "reduce_only": False, "tag": "entry", "created_ts": 1_500_000_000_000}


def round_trip(kind: str, payload: dict) -> str:
    text = canonical_json(payload)
    out = canonical_json(parse_event(kind, text).to_payload())
    assert out == text
    return out


# ------------------------------------------------------------------------------ the registry
def test_every_kind_has_one_frozen_type() -> None:
    assert len(EVENT_TYPES) == 60  # session.failover, session.deadman_armed: failover (issue 18)
    for kind, cls in EVENT_TYPES.items():
        assert kind == cls.KIND
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        assert not hasattr(cls, "__dict__") or "__slots__" in cls.__dict__  # slots: no instance dict
    # every order event of the domain has its kind, and only those are transitions
    assert {f"order.{t.value}" for t in OrderEventType} == {c.KIND for c in ORDER_TRANSITIONS.values()}
    assert {t for t in OrderEventType} == set(ORDER_TRANSITIONS)


def test_every_auth_event_kind_has_its_type() -> None:
    from lyra.auth.policy import AuthEventKind
    from lyra.auth.service import event_kind

    auth_kinds = {k for k in EVENT_TYPES if k.startswith("auth.")}
    assert auth_kinds == {event_kind(k) for k in AuthEventKind}
    for k in AuthEventKind:
        cls = EVENT_TYPES[event_kind(k)]
        assert issubclass(cls, AuthEntry) and k.value == cls.AUTH_KIND


# Dotted literals in lyra/ that are config field names, not event kinds.
NOT_KINDS = {"auth.leeway", "auth.signing_key", "auth.signing_key_file", "auth.totp_key",
             "auth.totp_key_file", "order.status", "reconcile.orphans"}
# Kinds built by formatting: f"session.{status}", order_event_kind(t), event_kind(auth kind).
FORMATTED = {"session.finished", "session.stopped"}


def test_the_catalogue_has_every_kind_the_code_writes_and_no_other() -> None:
    """Every dotted kind-like string literal in lyra/ is a catalogue kind (or a known config
    field name), and every catalogue kind is written somewhere."""
    pattern = re.compile(r'"((?:order|risk|session|command|algo|route|live|reconcile|kill|breaker|auth)'
                         r'\.[a-z_]+)"')
    sources = "".join(p.read_text(encoding="utf-8") for p in LYRA.rglob("*.py"))
    written = set(pattern.findall(sources)) - NOT_KINDS
    assert written <= set(EVENT_TYPES), sorted(written - set(EVENT_TYPES))
    families = {k for k in EVENT_TYPES if k.startswith(("auth.", "order."))}  # built from enums
    assert set(EVENT_TYPES) - written - families - FORMATTED == set()
    assert 'f"session.{status}"' in sources  # where FORMATTED's kinds come from


# ------------------------------------------------------------------------------ strict reading
def test_unknown_kind_and_bad_payloads_name_the_kind_and_the_field() -> None:
    with pytest.raises(EventPayloadError, match=r"order\.teleport='order\.teleport': unknown event kind") as e:
        parse_event("order.teleport", {})
    assert e.value.kind == "order.teleport"
    with pytest.raises(EventPayloadError) as e:
        parse_event("order.created", {k: v for k, v in CREATED.items() if k != "quantity"})
    assert (e.value.field, e.value.problem) == ("order.created.quantity", "missing")
    with pytest.raises(EventPayloadError) as e:
        parse_event("order.created", {**CREATED, "colour": "red"})
    assert (e.value.field, e.value.value, e.value.problem) == ("order.created.colour", "red", "unknown field")
    assert "created_ts" in str(e.value)  # the hint lists the fields it has
    with pytest.raises(EventPayloadError, match=r"order\.created\.quantity=0\.1: must be a decimal number as text"):
        parse_event("order.created", {**CREATED, "quantity": 0.1})
    with pytest.raises(EventPayloadError, match=r"order\.created\.post_only=0: must be true or false"):
        parse_event("order.created", {**CREATED, "post_only": 0})
    with pytest.raises(EventPayloadError, match=r"order\.created\.created_ts=True: must be an integer"):
        parse_event("order.created", {**CREATED, "created_ts": True})
    with pytest.raises(EventPayloadError, match=r"order\.created\.side='hold': is not one of buy, sell"):
        parse_event("order.created", {**CREATED, "side": "hold"})
    # nested: the fill's field, by its path
    bad_fill = {**FILL, "price": "4321.5E0"}
    with pytest.raises(EventPayloadError) as e:
        parse_event("order.fill", {"client_order_id": CID, "ts": 1, "fill": bad_fill})
    assert e.value.field == "order.fill.fill.price"
    assert "not written the way the log writes it" in str(e.value) and "'4321.5'" in str(e.value)
    # the payload as stored text, broken
    with pytest.raises(EventPayloadError, match="is not JSON"):
        parse_event("order.submit", '{"client_order_id": ')
    with pytest.raises(EventPayloadError, match="must be an object"):
        parse_event("order.submit", "[1, 2]")


def test_optional_fields_are_left_out_never_written_empty() -> None:
    sub = {"client_order_id": CID, "ts": 5}
    assert round_trip("order.submit", sub) and parse_event("order.submit", sub).reason == ""
    assert round_trip("order.reject", {**sub, "reason": "no funds", "venue_order_id": "v9"})
    with pytest.raises(EventPayloadError) as e:
        parse_event("order.reject", {**sub, "reason": ""})  # writers leave an empty reason out
    assert (e.value.field, e.value.problem) == ("order.reject.reason", "is the default, which writers leave out")
    with pytest.raises(EventPayloadError, match="risk.decision.quantity=None"):
        parse_event("risk.decision", {"decision_id": "rd-x", "client_order_id": "x", "approved": True,
                                      "reason": "", "quantity": None})
    # a fill belongs to the fill kinds only; they must have one
    with pytest.raises(EventPayloadError, match=r"order\.accept\.fill=.*unknown field"):
        parse_event("order.accept", {**sub, "fill": FILL})
    with pytest.raises(EventPayloadError, match=r"order\.fill\.fill=None: missing"):
        parse_event("order.fill", sub)


def test_renamed_keys_and_auth_kinds() -> None:
    p = {"scope": "account:s1", "from": "active", "to": "halted", "reason": "r", "actor": "ops", "version": 3}
    ev = parse_event("risk.state_change", p)
    assert isinstance(ev, TradingStateChanged) and (ev.from_state, ev.to_state) == ("active", "halted")
    assert ev.to_payload() == p
    auth = {"kind": "account_locked", "subject": "alice", "detail": {"reason": "admin lock"},
            "at": "2026-01-02T03:04:05.123456+00:00"}
    ev2 = parse_event("auth.lockout", auth)
    assert isinstance(ev2, AuthLockout) and ev2.at is not None and ev2.at.year == 2026
    assert round_trip("auth.lockout", auth)
    with pytest.raises(EventPayloadError, match=r"auth\.lockout\.kind='login_ok'.*'account_locked'"):
        parse_event("auth.lockout", {**auth, "kind": "login_ok"})
    with pytest.raises(EventPayloadError, match=r"auth\.lockout\.detail\.reason=\[1\]: must be text or an integer"):
        parse_event("auth.lockout", {**auth, "detail": {"reason": [1]}})
    with pytest.raises(EventPayloadError, match="not written the way"):
        parse_event("auth.lockout", {**auth, "at": "2026-01-02 03:04:05.123456+00:00"})


def test_read_values_are_read_only() -> None:
    ev = parse_event("session.started", {"config": {"symbols": ["BTC/USD"], "risk": {"a": 1}}})
    with pytest.raises(TypeError):
        ev.config["risk"]["a"] = 2  # type: ignore[attr-defined, index]
    assert ev.config["symbols"] == ("BTC/USD",)  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.config = {}  # type: ignore[misc]
    assert ev.to_payload() == {"config": {"symbols": ["BTC/USD"], "risk": {"a": 1}}}


# ------------------------------------------------------------------------------ the domain
def test_orders_and_fills_convert_to_and_from_the_domain() -> None:
    intent = OrderIntent("coinbase:BTC/USD", Side.BUY, D("0.1"), OrderType.LIMIT, D("4000.00"),
                         time_in_force=TimeInForce.GTC, tag="entry")
    order = Order(CID, intent, created_ts=1_500_000_000_000)
    created = OrderCreated.from_order(order)
    assert created.to_payload() == CREATED
    again = parse_event("order.created", json.loads(canonical_json(CREATED)))
    assert isinstance(again, OrderCreated) and again == created
    assert again.to_order().intent == intent
    fill = Fill("f1", CID, "coinbase:BTC/USD", Side.BUY, D("0.1"), D("4321.50"), D("2.592900000"), "USD",
                Liquidity.TAKER, 1_500_000_000_000)
    assert FillRecord.from_fill(fill).to_payload() == FILL
    assert FillRecord.from_payload(FILL).to_fill() == fill
    for t in OrderEventType:
        ev = OrderEvent(t, 7, fill if t in (OrderEventType.FILL, OrderEventType.PARTIAL_FILL) else None,
                        "why" if t is OrderEventType.REJECT else "", "v1" if t is OrderEventType.ACCEPT else "")
        entry = order_transition(CID, ev)
        assert f"order.{t.value}" == entry.KIND and type(entry) is ORDER_TRANSITIONS[t]
        back = parse_event(entry.KIND, json.loads(canonical_json(entry.to_payload())))
        assert back == entry and back.to_event() == ev  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="carries no fill"):
        order_transition(CID, OrderEvent(OrderEventType.ACCEPT, 1, fill))
    with pytest.raises(ValueError, match="needs a fill"):
        order_transition(CID, OrderEvent(OrderEventType.FILL, 1))


def test_hand_written_payloads_equal_the_generic_ones() -> None:
    """The order path's types write their payloads by hand (speed); the generic writer, driven
    by the fields, must give the same dict, so the two cannot drift apart."""
    fill = FillRecord.from_payload(FILL)
    samples: list[Payload] = [
        fill, OrderCreated.from_payload(CREATED), OrderCreated.from_payload({**CREATED, "limit_price": None,
                                                                               "stop_price": "1.5"}),
        OrderSubmitted(client_order_id=CID, ts=1), OrderSubmitted(client_order_id=CID, ts=1, reason="r",
                                                                 venue_order_id="v"),
        OrderFilled(client_order_id=CID, ts=2, fill=fill, venue_order_id="v"),
        RiskDecided(decision_id="rd-1", client_order_id=CID, approved=False, reason="no"),
        RiskDecided(decision_id="rd-1", client_order_id=CID, approved=True, reason="", check="",
                    quantity=D("0.1")),
        RiskDecided(decision_id="rd-1", client_order_id=CID, approved=True, reason="resized", check="max_qty",
                    quantity=D("0.05"), account_id="s1", instrument_id="coinbase:BTC/USD",
                    requested_quantity=D("0.1"), state="active", ts=9),
    ]
    for s in samples:
        assert s.to_payload() == Payload.to_payload(s), type(s).__name__


# ------------------------------------------------------------------------------ byte for byte
@given(st.decimals(allow_nan=True, allow_infinity=True))
def test_any_decimal_as_str_reads_back_to_the_same_text(d: Decimal) -> None:
    p = {**CREATED, "quantity": str(d)}
    assert round_trip("order.created", p)


@given(st.text(alphabet="0123456789.-+eE", min_size=1, max_size=8))
def test_decimal_text_is_accepted_only_if_it_writes_back_the_same(text: str) -> None:
    try:
        ev = parse_event("order.created", {**CREATED, "quantity": text})
    except EventPayloadError:
        return
    assert isinstance(ev, OrderCreated) and str(ev.quantity) == text


@given(st.floats(allow_nan=False), st.decimals(allow_nan=False, allow_infinity=False, places=8))
def test_equity_marks_are_float_text_and_read_back(mark: float, equity: Decimal) -> None:
    p = {"equity": str(equity), "positions": {"coinbase:BTC/USD": "0.1"}, "marks": {"coinbase:BTC/USD": repr(mark)}}
    snap = parse_event("session.equity", p)
    assert isinstance(snap, EquitySnapshot) and snap.marks["coinbase:BTC/USD"] == mark
    assert round_trip("session.equity", p)


def test_plain_decimals_are_checked_as_plain() -> None:
    assert round_trip("live.baseline", {"balances": {"USDT": "50000", "XRP": "0.00000001"}})
    with pytest.raises(EventPayloadError, match=r"live\.baseline\.balances\.XRP='1E-8'.*expected '0\.00000001'"):
        parse_event("live.baseline", {"balances": {"XRP": "1E-8"}})
    with pytest.raises(EventPayloadError, match=r"live\.baseline\.balances\.USDT='5\.0'"):
        parse_event("live.baseline", {"balances": {"USDT": "5.0"}})


def test_event_type_lookup() -> None:
    assert event_type("order.fill") is OrderFilled
    with pytest.raises(EventPayloadError, match="known: algo.*, auth.*"):
        event_type("nope")
