"""The fake Binance's signed spot API, driven by the real ``ccxt.binance`` and ``ccxt.pro.binance``:
orders against a recorded book (Bybit XRPUSDT top 20, 2024-12-01), fills worked by hand, the
errors ccxt maps, and the faults a live broker must survive."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import pytest

from lyra.testing.fake_account import FakeAccount, load_book_csv
from lyra.testing.fake_exchange import BookTape, FakeExchange, exchange_info_from_recorded, load_bybit_book

FIX = Path(__file__).parents[2] / "fixtures"
INFO = exchange_info_from_recorded(json.loads((FIX / "exchange" / "binance_exchange_info.json").read_text()),
                                   json.loads((FIX / "exchange" / "ccxt_binance_markets.json").read_text()))
BIDS, ASKS = load_book_csv(FIX / "execution" / "bybit_XRPUSDT_snapshot_top20.csv.gz")
SYM = "XRP/USDT"
D = Decimal


def _account(**kw: Any) -> FakeAccount:
    return FakeAccount({"USDT": "50000", "XRP": "1000"}, books={"XRPUSDT": (BIDS, ASKS)}, **kw)


def _sync(fake: FakeExchange, **extra: Any) -> ccxt.binance:
    ex = fake.point_ccxt(ccxt.binance(fake.ccxt_config(**{"timeout": 2000, **extra})))
    ex.load_markets()
    return ex


def _pro(fake: FakeExchange) -> ccxtpro.binance:
    return fake.point_ccxt(ccxtpro.binance(fake.ccxt_config(timeout=2000)))


@pytest.fixture
def venue() -> Iterator[tuple[FakeExchange, FakeAccount, ccxt.binance]]:
    acct = _account()
    with FakeExchange(INFO, account=acct) as fake:
        yield fake, acct, _sync(fake)


def test_the_recorded_book_is_what_the_hand_worked_numbers_assume() -> None:
    assert BIDS[:2] == [["1.9531", "6203.0"], ["1.953", "2409.0"]]
    assert ASKS[:3] == [["1.9532", "10480.0"], ["1.9533", "13701.0"], ["1.9534", "15996.0"]]
    assert len(BIDS) == len(ASKS) == 20


def test_limit_order_rests_and_reads_back_by_id_and_client_id(venue: Any) -> None:
    fake, acct, ex = venue
    o = ex.create_order(SYM, "limit", "buy", 100, 1.95, {"newClientOrderId": "lim-1"})
    assert (o["status"], o["clientOrderId"], o["filled"], o["amount"], o["price"]) == ("open", "lim-1", 0, 100, 1.95)
    by_id = ex.fetch_order(o["id"], SYM)
    by_cid = ex.fetch_order(None, SYM, {"origClientOrderId": "lim-1"})
    assert by_id["id"] == by_cid["id"] == o["id"]
    assert by_cid["clientOrderId"] == "lim-1"
    assert [x["clientOrderId"] for x in ex.fetch_open_orders(SYM)] == ["lim-1"]
    # 100 x 1.95 = 195 USDT locked, plus the 0.1% fee reserved (fee in quote): 195.195
    bal = ex.fetch_balance()
    assert (bal["USDT"]["used"], bal["USDT"]["free"]) == (195.195, 49804.805)
    assert acct.balances()["USDT"].locked == D("195.195")
    # the venue's public book now shows our bid at 1.95 (the recorded bids stop at 1.9512)
    book = ex.fetch_order_book(SYM, 25)
    assert [1.95, 100.0] in book["bids"]
    assert book["asks"][0] == [1.9532, 10480.0]
    assert fake.requests[-1][0] == "/api/v3/depth"
    assert fake.requests[-2][0] == "/api/v3/account"
    assert "signature" not in fake.requests[-2][1]  # recorded without the signature
    assert ex.fetch_my_trades(SYM) == []


def test_market_buy_walks_the_book_taker_fee_in_quote(venue: Any) -> None:
    _fake, acct, ex = venue
    o = ex.create_order(SYM, "market", "buy", 12000, None, {"newClientOrderId": "mkt-1"})
    # hand-worked: 10480 @ 1.9532 = 20469.536, 1520 @ 1.9533 = 2969.016 -> 23438.552 USDT
    assert (o["status"], o["filled"], o["cost"]) == ("closed", 12000, 23438.552)
    assert [(t["price"], t["amount"], t["fee"]["cost"]) for t in o["trades"]] == [
        (1.9532, 10480, 20.469536), (1.9533, 1520, 2.969016)]  # 0.1% of each
    trades = ex.fetch_my_trades(SYM)
    assert [t["takerOrMaker"] for t in trades] == ["taker", "taker"]
    assert int(trades[1]["id"]) == int(trades[0]["id"]) + 1
    assert {t["order"] for t in trades} == {o["id"]}
    assert ex.fetch_order_trades(o["id"], SYM) == trades  # myTrades?orderId=
    # 50000 - 23438.552 - 23.438552 fee; 1000 + 12000 XRP
    assert acct.balances()["USDT"] == (D("26538.009448"), 0)
    assert acct.balances()["XRP"].free == 13000
    bal = ex.fetch_balance()
    assert (bal["USDT"]["free"], bal["XRP"]["free"]) == (26538.009448, 13000.0)
    # liquidity was consumed: 13701 - 1520 = 12181 left at 1.9533
    assert ex.fetch_order_book(SYM, 5)["asks"][0] == [1.9533, 12181.0]


def test_market_buy_by_cost_and_fee_in_received_asset() -> None:
    acct = _account(fee_asset="received")
    with FakeExchange(INFO, account=acct) as fake:
        ex = _sync(fake)
        o = ex.create_market_buy_order_with_cost(SYM, 2000)  # quoteOrderQty=2000
        # floor(2000 / 1.9532) = 1023 XRP (step 1) for 1998.1236 USDT; fee 1.023 XRP (received asset)
        assert (o["status"], o["filled"], o["amount"], o["cost"]) == ("closed", 1023, 1023, 1998.1236)
        assert o["trades"][0]["fee"] == {"currency": "XRP", "cost": 1.023}
        assert acct.balances()["USDT"].free == D("50000") - D("1998.1236")
        assert acct.balances()["XRP"].free == D("1000") + D("1023") - D("1.023")


def test_ioc_keeps_what_it_can_take_fok_takes_nothing(venue: Any) -> None:
    _fake, acct, ex = venue
    before = acct.balances()
    fok = ex.create_order(SYM, "limit", "buy", 20000, 1.9532, {"timeInForce": "FOK"})
    assert (fok["status"], fok["filled"]) == ("expired", 0)  # only 10480 offered up to 1.9532
    assert acct.balances() == before  # FOK: nothing traded, nothing stays locked
    # 1.9532 and 1.9533 hold 10480 + 13701 = 24181: IOC takes it all and expires the rest
    ioc = ex.create_order(SYM, "limit", "buy", 25000, 1.9533, {"timeInForce": "IOC"})
    assert (ioc["status"], ioc["filled"], ioc["remaining"]) == ("expired", 24181, 819)
    # 10480 x 1.9532 + 13701 x 1.9533 = 20469.536 + 26762.1633 = 47231.6993, plus 0.1%
    assert acct.balances()["USDT"] == (D("50000") - D("47231.6993") * D("1.001"), 0)
    assert [o["status"] for o in acct.orders] == ["EXPIRED", "EXPIRED"]
    assert ex.fetch_open_orders(SYM) == []
    reports = [(str(e["i"]), e["x"], e["X"]) for e in acct.events if e["e"] == "executionReport"]
    assert reports == [(fok["id"], "NEW", "NEW"), (fok["id"], "EXPIRED", "EXPIRED"), (ioc["id"], "NEW", "NEW"),
                       (ioc["id"], "TRADE", "PARTIALLY_FILLED"), (ioc["id"], "TRADE", "PARTIALLY_FILLED"),
                       (ioc["id"], "EXPIRED", "EXPIRED")]


def test_cancel_by_client_id(venue: Any) -> None:
    _fake, acct, ex = venue
    ex.create_order(SYM, "limit", "sell", 100, 2.5, {"newClientOrderId": "sell-1"})
    assert acct.balances()["XRP"] == (900, 100)
    c = ex.cancel_order(None, SYM, {"origClientOrderId": "sell-1"})
    assert c["status"] == "canceled"
    # as on Binance, the answer's clientOrderId is the cancel's own id; the order's is origClientOrderId
    assert c["info"]["origClientOrderId"] == "sell-1"
    assert c["clientOrderId"] != "sell-1"
    assert acct.balances()["XRP"] == (1000, 0)
    ev = [e for e in acct.events if e["e"] == "executionReport"][-1]
    assert (ev["x"], ev["X"], ev["c"], ev["C"]) == ("CANCELED", "CANCELED", c["clientOrderId"], "sell-1")
    assert ex.fetch_order(None, SYM, {"origClientOrderId": "sell-1"})["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):  # not open any more
        ex.cancel_order(None, SYM, {"origClientOrderId": "sell-1"})
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        ex.fetch_order(None, SYM, {"origClientOrderId": "never-sent"})


def test_duplicate_client_order_id_is_rejected_while_the_first_is_open(venue: Any) -> None:
    _fake, acct, ex = venue
    ex.create_order(SYM, "limit", "buy", 100, 1.9, {"newClientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent") as err:
        ex.create_order(SYM, "limit", "buy", 100, 1.9, {"newClientOrderId": "dup-1"})
    assert not isinstance(err.value, ccxt.DuplicateOrderId)  # ccxt maps -2010 to InvalidOrder
    subs = [s for s in acct.submissions if s.client_order_id == "dup-1"]
    assert [(s.accepted, s.error_code) for s in subs] == [(True, None), (False, -2010)]
    assert acct.duplicate_client_order_ids() == []
    # once the first is closed Binance accepts the id again: the venue then holds two "dup-1"
    ex.cancel_order(None, SYM, {"origClientOrderId": "dup-1"})
    ex.create_order(SYM, "limit", "buy", 100, 1.9, {"newClientOrderId": "dup-1"})
    assert acct.duplicate_client_order_ids() == ["dup-1"]


@pytest.mark.parametrize(("params", "error", "code"), [
    ({"quantity": "10.5", "price": "1.95"}, ccxt.InvalidOrder, -1013),  # LOT_SIZE step 1
    ({"quantity": "10", "price": "1.95001"}, ccxt.InvalidOrder, -1013),  # PRICE_FILTER tick 0.0001
    ({"quantity": "2", "price": "1.95"}, ccxt.BadRequest, -1013),  # NOTIONAL 3.9 < 5
    ({"quantity": "100000", "price": "1.95"}, ccxt.InsufficientFunds, -2010),  # 195195 > 50000
    ({"quantity": "10", "price": "1.123456789"}, ccxt.BadRequest, -1111),  # 9 decimals
    ({"quantity": "10", "price": "1.95", "newClientOrderId": "no spaces"}, ccxt.BadRequest, -1100),
])
def test_rejects_map_to_ccxt_errors(venue: Any, params: dict[str, str], error: type, code: int) -> None:
    _fake, acct, ex = venue
    with pytest.raises(error):
        ex.privatePostOrder({"symbol": "XRPUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                             **params})
    assert acct.submissions[-1].error_code == code
    assert acct.orders == []


def test_ccxt_create_order_errors_and_the_test_endpoint(venue: Any) -> None:
    fake, acct, ex = venue
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        ex.create_order(SYM, "limit", "buy", 2, 1.95)
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(SYM, "market", "sell", 5000)  # 1000 XRP held
    with pytest.raises(ccxt.OrderImmediatelyFillable):  # post-only at the best ask would take
        ex.create_order(SYM, "limit", "buy", 10, 1.9532, {"postOnly": True})
    ex.create_order(SYM, "limit", "buy", 100, 1.95, {"test": True})  # /order/test: validated only
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        ex.privatePostOrderTest({"symbol": "XRPUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                 "quantity": "1.5", "price": "1.95"})
    assert acct.orders == []
    assert "/api/v3/order/test" in [p for p, _ in fake.requests]


def test_rate_limit_and_5xx_storms_on_signed_endpoints(venue: Any) -> None:
    fake, acct, ex = venue
    fake.faults.fail_next(2, 429)  # venue-wide: signed endpoints count too
    for _ in range(2):
        with pytest.raises(ccxt.DDoSProtection, match="429"):
            ex.fetch_balance()
        assert ex.last_response_headers["Retry-After"] == "1"
    assert ex.fetch_balance()["USDT"]["free"] == 50000
    acct.faults.fail_private_next(2, 503)
    assert ex.fetch_order_book(SYM, 5)["bids"][0] == [1.9531, 6203.0]  # public: unaffected
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.create_order(SYM, "limit", "buy", 100, 1.95, {"newClientOrderId": "x-1"})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.fetch_open_orders(SYM)
    assert acct.submissions == []  # refused before the matching engine
    assert ex.create_order(SYM, "limit", "buy", 100, 1.95, {"newClientOrderId": "x-1"})["status"] == "open"


def test_accepted_at_the_venue_while_the_client_times_out(venue: Any) -> None:
    fake, acct, _ex = venue
    fast = _sync(fake, timeout=300)
    acct.faults.accept_then_timeout(2, 1.0)
    # RequestTimeout: the client gave up at its own 300 ms timeout, not waiting for the 1 s late answer.
    with pytest.raises(ccxt.RequestTimeout):
        fast.create_order(SYM, "limit", "buy", 100, 1.95, {"newClientOrderId": "amb-1"})
    with pytest.raises(ccxt.RequestTimeout):  # a market order fills although the client never hears
        fast.create_order(SYM, "market", "buy", 500, None, {"newClientOrderId": "amb-2"})
    assert [(o["clientOrderId"], o["status"]) for o in acct.orders] == [("amb-1", "NEW"), ("amb-2", "FILLED")]
    # the classic recovery: ask by client id before sending again
    assert fast.fetch_order(None, SYM, {"origClientOrderId": "amb-1"})["status"] == "open"
    assert fast.fetch_order(None, SYM, {"origClientOrderId": "amb-2"})["filled"] == 500
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):  # a blind resend
        fast.create_order(SYM, "limit", "buy", 100, 1.95, {"newClientOrderId": "amb-1"})
    assert acct.duplicate_client_order_ids() == []


def test_venue_down_fills_still_happen_and_are_learned_later(venue: Any) -> None:
    fake, acct, ex = venue
    ex.create_order(SYM, "limit", "buy", 100, 1.95, {"newClientOrderId": "dn-1"})
    fake.faults.down()
    with pytest.raises(ccxt.NetworkError):
        ex.fetch_order(None, SYM, {"origClientOrderId": "dn-1"})
    with pytest.raises(ccxt.NetworkError):
        ex.fetch_order_book(SYM)
    fills = acct.cross("XRPUSDT", "1.9499")  # the market moves while we are cut off
    assert [(f["price"], f["qty"], f["isMaker"]) for f in fills] == [("1.95000000", "100.00000000", True)]
    fake.faults.up()
    o = ex.fetch_order(None, SYM, {"origClientOrderId": "dn-1"})
    assert (o["status"], o["filled"]) == ("closed", 100)
    assert ex.fetch_my_trades(SYM)[0]["takerOrMaker"] == "maker"
    # 195 + 0.195 maker fee paid out of the 195.195 reserved: nothing left locked
    assert acct.balances()["USDT"] == (D("49804.805"), 0)
    assert acct.balances()["XRP"].free == 1100


def test_signed_requests_are_checked() -> None:
    acct = _account(api_key="key-1", secret="secret-1")
    with FakeExchange(INFO, account=acct) as fake:
        ex = _sync(fake)  # ccxt_config carries the account's key and secret
        assert ex.fetch_balance()["XRP"]["free"] == 1000
        bad_secret = _sync(fake, secret="wrong")
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            bad_secret.fetch_balance()
        bad_key = _sync(fake, apiKey="key-2")
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            bad_key.fetch_balance()
        with pytest.raises(ccxt.BadRequest, match="'signature'"):  # a signed endpoint called unsigned
            ex.fetch(f"{fake.url}/api/v3/account?timestamp=1", "GET", {"X-MBX-APIKEY": "key-1"})
        with pytest.raises(ccxt.AuthenticationError, match="-2014"):
            ex.fetch(f"{fake.url}/api/v3/account?timestamp=1&signature=00", "GET", {})

        async def subscribe(secret: str) -> int:  # the websocket API signs sorted parameters
            pro = fake.point_ccxt(ccxtpro.binance(fake.ccxt_config(timeout=2000, secret=secret)))
            try:
                await pro.load_markets()
                watch = asyncio.create_task(pro.watch_orders(SYM))
                waiter = asyncio.create_task(_subscribed(acct))
                await asyncio.wait([watch, waiter], timeout=3, return_when=asyncio.FIRST_COMPLETED)
                if watch.done():
                    watch.result()  # raises the subscription's error
                for t in (watch, waiter):
                    t.cancel()
                return acct.user_ws_subscriptions
            finally:
                await pro.close()

        assert asyncio.run(subscribe("secret-1")) == 1
        # The fake answers {"status": 400, "error": {"code": -1022, ...}} as Binance does. ccxt 4.5.90
        # rejects with AuthenticationError and drops the subscription in handle_ws_error, then
        # ensure_user_data_stream_ws_subscribe_signature deletes it again: what reaches the caller
        # is KeyError('spot'). Pinned so that a ccxt upgrade that fixes it is noticed.
        with pytest.raises(KeyError, match="spot"):
            asyncio.run(subscribe("wrong"))


# -- the user-data stream (ccxt.pro: websocket API, userDataStream.subscribe.signature) ---------
#: a deadline for what must happen (a subscription, a watcher registered), not a speed target
WAIT_S = 30.0


async def _subscribed(acct: FakeAccount) -> None:
    deadline = time.monotonic() + WAIT_S
    while acct.user_ws_subscriptions < 1:
        assert time.monotonic() < deadline, "no user-data subscription"
        await asyncio.sleep(0.005)


async def _watching(ex: Any, *hashes: str) -> None:
    """Until ``ex`` has a pending watch for each ccxt message hash (e.g. ``orders:XRP/USDT``):
    the watch calls are waiting, so an event sent now reaches them."""
    def pending(h: str) -> bool:
        return any(h in c.futures and not c.futures[h].done() for c in ex.clients.values())

    deadline = time.monotonic() + WAIT_S
    while not all(pending(h) for h in hashes):
        assert time.monotonic() < deadline, f"no pending watch for {hashes}"
        await asyncio.sleep(0.005)


def test_watch_orders_and_my_trades_receive_the_fills_of_a_cross() -> None:
    acct = _account()

    def view(orders: list[dict[str, Any]]) -> list[tuple[str, str, float]]:
        # ccxt updates its cached order dicts in place: copy what each call returned
        return [(o["clientOrderId"], o["status"], o["filled"]) for o in orders]

    async def run(fake: FakeExchange) -> dict[str, Any]:
        ex = _pro(fake)
        try:
            await ex.load_markets()
            watch = asyncio.create_task(ex.watch_orders(SYM))
            await _subscribed(acct)
            await ex.create_order(SYM, "limit", "buy", 100, 1.95, {"newClientOrderId": "w-1"})
            new = view(await asyncio.wait_for(watch, WAIT_S))
            acct.cross("XRPUSDT", "1.9499", qty=40)
            part = view(await asyncio.wait_for(ex.watch_orders(SYM), WAIT_S))
            trades = asyncio.create_task(ex.watch_my_trades(SYM))
            orders = asyncio.create_task(ex.watch_orders(SYM))
            await _watching(ex, f"myTrades:{SYM}", f"orders:{SYM}")  # both waiting before the market moves
            acct.cross("XRPUSDT", "1.9499")
            last, done = await asyncio.wait_for(asyncio.gather(trades, orders), WAIT_S)
            return {"orders": new + part + view(done), "last": last}
        finally:
            await ex.close()

    with FakeExchange(INFO, account=acct) as fake:
        got = asyncio.run(run(fake))
    assert got["orders"] == [("w-1", "open", 0), ("w-1", "open", 40), ("w-1", "closed", 100)]
    t = got["last"][-1]
    assert (t["amount"], t["price"], t["takerOrMaker"], t["fee"]) == (60, 1.95, "maker",
                                                                      {"cost": 0.117, "currency": "USDT"})
    # the raw events, field for field
    reports = [e for e in acct.events if e["e"] == "executionReport"]
    assert [(e["x"], e["X"], e["l"], e["z"], e["L"]) for e in reports] == [
        ("NEW", "NEW", "0.00000000", "0.00000000", "0.00000000"),
        ("TRADE", "PARTIALLY_FILLED", "40.00000000", "40.00000000", "1.95000000"),
        ("TRADE", "FILLED", "60.00000000", "100.00000000", "1.95000000")]
    assert [(e["t"], e["n"], e["N"], e["m"]) for e in reports[1:]] == [
        (tr["id"], tr["commission"], "USDT", True) for tr in acct.trades]
    assert {e["c"] for e in reports} == {"w-1"}
    assert [e["e"] for e in acct.events].count("outboundAccountPosition") == 3
    assert acct.events[-1]["B"] == [{"a": "USDT", "f": "49804.80500000", "l": "0.00000000"},
                                    {"a": "XRP", "f": "1100.00000000", "l": "0.00000000"}]


def test_a_user_websocket_dropped_during_a_fill_is_recovered_through_rest() -> None:
    acct = _account()

    def view(orders: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(o["clientOrderId"], o["status"]) for o in orders]

    async def place_and_watch(ex: Any, fake: FakeExchange, cid: str) -> list[tuple[str, str]]:
        watch = asyncio.create_task(ex.watch_orders(SYM))
        await _subscribed(acct)
        await ex.create_order(SYM, "limit", "buy", 100, 1.95, {"newClientOrderId": cid})
        return view(await asyncio.wait_for(watch, WAIT_S))

    async def cut(ex: Any, act: Any) -> None:
        watch = asyncio.create_task(ex.watch_orders(SYM))
        await _watching(ex, f"orders:{SYM}")
        act()
        with pytest.raises(ccxt.NetworkError):  # the socket closes under the waiting call
            await asyncio.wait_for(watch, WAIT_S)

    async def run(fake: FakeExchange) -> dict[str, Any]:
        ex = _pro(fake)
        out: dict[str, Any] = {}
        try:
            await ex.load_markets()
            out["d-1"] = await place_and_watch(ex, fake, "d-1")
            acct.faults.drop_user_ws_during_fill()
            await cut(ex, lambda: acct.cross("XRPUSDT", "1.9499"))  # d-1 fills, its events never sent
            out["rest d-1"] = (await ex.fetch_order(None, SYM, {"origClientOrderId": "d-1"}))["status"]
            out["d-2"] = await place_and_watch(ex, fake, "d-2")  # a new connection: new events only
            await cut(ex, fake.faults.down)  # the venue goes dark and drops the stream...
            acct.cross("XRPUSDT", "1.9499")  # ...while d-2 fills
            fake.faults.up()
            out["d-3"] = await place_and_watch(ex, fake, "d-3")
            out["rest d-2"] = (await ex.fetch_order(None, SYM, {"origClientOrderId": "d-2"}))["status"]
            return out
        finally:
            await ex.close()

    with FakeExchange(INFO, account=acct) as fake:
        out = asyncio.run(run(fake))
    # the stream never said d-1 filled, nor replays d-2's fill of the downtime: REST knows both
    assert out == {"d-1": [("d-1", "open")], "rest d-1": "closed", "d-2": [("d-2", "open")],
                   "d-3": [("d-3", "open")], "rest d-2": "closed"}
    assert acct.user_ws_connections == 3
    assert len(acct.drop_marks) == 1
    assert [e["X"] for e in acct.events if e["e"] == "executionReport" and e["c"] == "d-2"] == ["NEW", "FILLED"]


# -- several venues, each with its own real book ---------------------------------------------
def test_venues_with_different_recorded_books() -> None:
    tape = load_bybit_book(FIX / "orderbook" / "bybit_XRPUSDT_ob500_2024-12-01.json.gz")
    static = BookTape(7, BIDS[:5], ASKS[:5], [])
    a, b = _account(), FakeAccount({"USDT": "50000"})  # b's book comes from its recorded tape
    with FakeExchange(INFO, account=a) as va, FakeExchange(INFO, books={"XRPUSDT": tape}, account=b) as vb, \
            FakeExchange(INFO, books={"XRPUSDT": static}) as vc:
        exa, exb, exc = _sync(va), _sync(vb), _sync(vc)
        book_b = exb.fetch_order_book(SYM, 1000)
        assert exa.fetch_order_book(SYM, 1)["asks"] == [[1.9532, 10480.0]]
        static_view = exc.fetch_order_book(SYM, 10)  # a static snapshot, no account: served as given
        assert static_view["nonce"] == 7
        assert static_view["bids"] == [[float(p), float(q)] for p, q in BIDS[:5]]
        assert static_view["asks"] == [[float(p), float(q)] for p, q in ASKS[:5]]
        # b: the snapshot after its 49 recorded deltas, a different book from a's
        state = vb._book_state("XRPUSDT", 5000)
        assert book_b["asks"][:3] == [[float(p), float(q)] for p, q in state["asks"][:3]]
        assert book_b["asks"][:3] != exa.fetch_order_book(SYM, 3)["asks"]
        # a market buy at b fills at b's best ask, level by level
        best_px, best_qty = book_b["asks"][0]
        o = exb.create_order(SYM, "market", "buy", 50, None)
        assert o["trades"][0]["price"] == best_px
        assert exb.fetch_order_book(SYM, 1)["asks"][0] == [best_px, best_qty - 50]
        assert exa.fetch_order_book(SYM, 1)["asks"][0] == [1.9532, 10480.0]  # venue a untouched
