"""The pieces of the downloader that need no server: the retry decorator, time parsing,
trade conversion (venue capabilities: tests/unit/venues)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import ccxt
import pytest

from lyra.core.errors import NetworkError, RateLimited, ValidationError
from lyra.feeds.download import RETRYABLE, make_exchange, retrier, to_ms, trades_frame


def _flaky(exc: Exception, failures: int) -> tuple[list[int], object]:
    calls: list[int] = []

    @retrier(attempts=4, base_delay=0.001)
    def fn(x: int) -> int:
        calls.append(x)
        if len(calls) <= failures:
            raise exc
        return x * 2

    return calls, fn


@pytest.mark.parametrize("exc", [ccxt.NetworkError("down"), ccxt.DDoSProtection("429"),
                                 ccxt.RateLimitExceeded("slow"), ccxt.RequestTimeout("t"),
                                 ccxt.ExchangeNotAvailable("503")])
def test_retrier_retries_transient_errors(exc: Exception) -> None:
    calls, fn = _flaky(exc, failures=3)
    assert fn(21) == 42  # type: ignore[operator]
    assert len(calls) == 4


def test_retrier_gives_up_with_lyra_errors() -> None:
    calls, fn = _flaky(ccxt.DDoSProtection("429"), failures=10)
    with pytest.raises(RateLimited):
        fn(1)  # type: ignore[operator]
    assert len(calls) == 4
    calls, fn = _flaky(ccxt.RequestTimeout("t"), failures=10)
    with pytest.raises(NetworkError):
        fn(1)  # type: ignore[operator]


def test_retrier_does_not_retry_final_errors() -> None:
    calls, fn = _flaky(ccxt.BadSymbol("nope"), failures=10)
    with pytest.raises(ccxt.BadSymbol):
        fn(1)  # type: ignore[operator]
    assert len(calls) == 1
    assert not issubclass(ccxt.BadSymbol, RETRYABLE)


def test_retrier_wraps_coroutines_with_exponential_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(d: float) -> None:
        slept.append(d)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    calls: list[int] = []

    @retrier(attempts=5, base_delay=0.1, max_delay=0.3)
    async def fn() -> str:
        calls.append(1)
        if len(calls) < 5:
            raise ccxt.NetworkError("x")
        return "ok"

    assert asyncio.run(fn()) == "ok"
    assert slept == pytest.approx([0.1, 0.2, 0.3, 0.3])  # doubled, then capped


def test_to_ms_accepts_int_text_datetime() -> None:
    assert to_ms(1524880320000, "since") == 1524880320000
    assert to_ms("2018-04-28T01:52:00Z", "since") == 1524880320000
    assert to_ms("2018-04-28 01:52", "since") == 1524880320000
    assert to_ms(datetime(2018, 4, 28, 1, 52, tzinfo=UTC), "since") == 1524880320000
    with pytest.raises(ValidationError):
        to_ms("yesterday", "since")
    with pytest.raises(ValidationError, match="since"):
        to_ms(1.5, "since")  # type: ignore[arg-type]


def test_unknown_exchange_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        make_exchange("mtgox")
    assert info.value.field == "exchange"
    assert info.value.value == "mtgox"
    assert "binance" in str(info.value)


def test_trades_frame_from_ccxt_dicts() -> None:
    raw = [{"id": 5, "timestamp": 1610064000278, "price": 39432.48, "amount": 0.000263,
            "side": "sell"},
           {"id": "6", "timestamp": 1610064000310, "price": 39439.44, "amount": 0.004376,
            "side": None}]
    df = trades_frame(raw)
    assert list(df.columns) == ["ts", "price", "size", "side", "trade_id"]
    assert df["trade_id"].tolist() == ["5", "6"]
    assert df["side"].tolist() == ["sell", ""]
    assert str(df["ts"].dtype) == "int64"
    assert str(df["price"].dtype) == "float64"
