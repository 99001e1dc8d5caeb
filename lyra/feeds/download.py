"""Historical candles and trades from an exchange (through ccxt) into the local store.

A real venue over the network, so not run as a doctest (the tests run it against
:class:`~lyra.testing.fake_exchange.FakeExchange`)::

    from lyra.feeds.download import download_ohlcv
    from lyra.feeds.store import MarketStore

    download_ohlcv("binance", "BTC/USDT", "1h", "2024-01-01", store=MarketStore(root))

Downloads are paginated with the venue's candle limit (:mod:`lyra.venues`) and
**resumable**: a second run starts after the store's last timestamp and fetches only what is
missing. The still-open last candle (open time + timeframe > now) is never stored, because its
values will still change. Requests go through ccxt's own rate limiter (``enableRateLimit``)
and :func:`retrier`, the one place where transient failures (network, 429/418, 5xx, timeouts)
are retried with exponential backoff. Unknown exchange, symbol or timeframe raise
:class:`~lyra.core.errors.ValidationError` naming the value.

The exchange may be a name (``"binance"``) or a ready ccxt instance, which is how tests point
the download at :class:`lyra.testing.fake_exchange.FakeExchange`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import ccxt
import pandas as pd
from tqdm import tqdm

from lyra.core.errors import NetworkError, RateLimited, ValidationError
from lyra.core.timeutil import datetime_to_ms, parse_utc, timeframe_to_ms, utc_now_ms
from lyra.venues import Venue, get_venue

if TYPE_CHECKING:
    from lyra.feeds.store import MarketStore

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: The ccxt errors worth retrying. Everything else (bad symbol, auth...) is final.
RETRYABLE: tuple[type[Exception], ...] = (
    ccxt.NetworkError, ccxt.DDoSProtection, ccxt.RateLimitExceeded, ccxt.RequestTimeout,
)


def retrier(
    attempts: int = 5, base_delay: float = 0.5, max_delay: float = 30.0
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry a sync or async call on :data:`RETRYABLE` ccxt errors with exponential backoff
    (``base_delay * 2**n``, capped at ``max_delay``). After the last attempt the error is
    re-raised as Lyra's :class:`RateLimited` or :class:`NetworkError` (both ``TemporaryError``).

    ``base_delay`` may be overridden per call with the keyword ``_retry_delay`` (tests).
    """

    def final(exc: Exception) -> Exception:
        if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            return RateLimited(f"rate limited after {attempts} attempts: {exc}")
        return NetworkError(f"gave up after {attempts} attempts: {exc}")

    def delay(n: int, base: float) -> float:
        return float(min(max_delay, base * 2**n))

    def deco(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                base = kwargs.pop("_retry_delay", base_delay)
                for n in range(attempts):
                    try:
                        return await fn(*args, **kwargs)
                    except RETRYABLE as exc:
                        if n == attempts - 1:
                            raise final(exc) from exc
                        log.warning("%s failed (%s), retry %d in %.2fs", fn.__name__, exc, n + 1,
                                    delay(n, base))
                        await asyncio.sleep(delay(n, base))
                raise AssertionError("unreachable")

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            base = kwargs.pop("_retry_delay", base_delay)
            for n in range(attempts):
                try:
                    return fn(*args, **kwargs)
                except RETRYABLE as exc:
                    if n == attempts - 1:
                        raise final(exc) from exc
                    log.warning("%s failed (%s), retry %d in %.2fs", fn.__name__, exc, n + 1,
                                delay(n, base))
                    time.sleep(delay(n, base))
            raise AssertionError("unreachable")

        return wrapper

    return deco


@retrier()
def _call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return method(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """What a download did. ``resumed_from`` is the store's last timestamp before the run."""

    exchange: str
    symbol: str
    timeframe: str  #: a candle size, or ``"trades"``
    requests: int  #: data requests sent (not counting load_markets)
    fetched: int  #: rows kept from the venue's answers (open candle and duplicates removed)
    written: int  #: rows the store reports as written
    first_ts: int | None
    last_ts: int | None
    resumed_from: int | None
    dropped_open: int = 0  #: still-open candles left out


# -- exchange and argument checks --------------------------------------------------------------
def make_exchange(name: str, config: dict[str, Any] | None = None, *,
                  api_url: str | None = None) -> Any:
    """A sync ccxt exchange for a known venue, with ccxt's rate limiter on. ``api_url``
    points its REST URLs at another host (see :func:`point_rest_urls`)."""
    caps = get_venue(name, field="exchange")
    if caps.ccxt_id not in ccxt.exchanges:
        raise ValidationError("exchange", name, "not available in this ccxt version")
    ex = getattr(ccxt, caps.ccxt_id)({"enableRateLimit": True, **(config or {})})
    if api_url is not None:
        point_rest_urls(ex, api_url)
    return ex


def point_rest_urls(ex: Any, base_url: str) -> Any:
    """Point every REST URL of ``ex`` at ``base_url`` (``http(s)://host[:port]``), keeping
    each URL's path: a mirror, a proxy, or a local fake of the venue. Websocket URLs stay."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValidationError("--api-url", base_url, "not a base URL",
                              "use http(s)://host[:port], e.g. http://127.0.0.1:8081")
    root = f"{parts.scheme}://{parts.netloc}"

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            u = urlsplit(value)
            return root + u.path + (f"?{u.query}" if u.query else "")
        return value

    ex.urls["api"] = swap(ex.urls["api"])
    return ex


def spot_markets_only(ex: Any) -> Any:
    """Make ``load_markets`` fetch the venue's spot markets only, where its ccxt class lists
    the market families to load (``options.fetchMarkets.types``): one request instead of one
    per family (futures, swaps, options) for a spot download."""
    fm = ex.options.get("fetchMarkets") if isinstance(ex.options, dict) else None
    if isinstance(fm, dict) and "spot" in (fm.get("types") or []):
        ex.options["fetchMarkets"] = {**fm, "types": ["spot"]}
    return ex


def _resolve(exchange: str | Any) -> tuple[Any, Venue]:
    ex = make_exchange(exchange) if isinstance(exchange, str) else exchange
    return ex, get_venue(ex.id, field="exchange")


def check_symbol(ex: Any, symbol: str, retry_delay: float = 0.5) -> None:
    """Load markets (retried) and refuse a symbol the venue does not list."""
    markets = _call(ex.load_markets, _retry_delay=retry_delay)
    if symbol not in markets:
        base = symbol.split("/")[0]
        near = sorted(s for s in markets if s.startswith(base + "/"))[:5]
        raise ValidationError("symbol", symbol, f"unknown symbol on {ex.id}",
                              f"e.g. {', '.join(near)}" if near else "check the venue's markets")


def check_timeframe(ex: Any, timeframe: str) -> int:
    """Refuse a timeframe the venue does not serve; return its length in ms."""
    tfs = getattr(ex, "timeframes", None) or {}
    if timeframe not in tfs:
        raise ValidationError("timeframe", timeframe, f"unsupported timeframe on {ex.id}",
                              f"use one of {', '.join(tfs)}")
    return timeframe_to_ms(timeframe)


def to_ms(value: int | str | datetime | None, field: str) -> int | None:
    """int ms, ISO text or aware datetime -> int ms UTC (None stays None)."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return datetime_to_ms(value)
    if isinstance(value, str):
        return datetime_to_ms(parse_utc(value))
    raise ValidationError(field, value, "not a time", "pass int ms, ISO text or an aware datetime")


def _bar(total: int, desc: str, enabled: bool) -> tqdm[Any]:
    return tqdm(total=max(total, 0), desc=desc, unit="row", disable=not enabled, leave=False)


# -- OHLCV -------------------------------------------------------------------------------------
def download_ohlcv(
    exchange: str | Any,
    symbol: str,
    timeframe: str,
    since: int | str | datetime,
    until: int | str | datetime | None = None,
    store: MarketStore | None = None,
    *,
    progress: bool = True,
    now_ms: int | None = None,
    retry_delay: float = 0.5,
) -> DownloadResult:
    """Fetch candles with open time in ``[since, until)`` (``until`` defaults to now) into
    ``store``, resuming after the store's last candle. ``now_ms`` overrides the wall clock
    (which candle is still open); ``retry_delay`` is the first backoff step in seconds.
    Returns a :class:`DownloadResult`."""
    if store is None:
        raise ValidationError("store", None, "a MarketStore is required")
    ex, caps = _resolve(exchange)
    check_symbol(ex, symbol, retry_delay)
    tf_ms = check_timeframe(ex, timeframe)
    now = utc_now_ms() if now_ms is None else now_ms
    start = to_ms(since, "since")
    assert start is not None
    end = min(to_ms(until, "until") or now, now + tf_ms)
    resumed = store.last_timestamp(ex.id, symbol, timeframe)
    if resumed is not None:
        start = max(start, resumed + tf_ms)
    requests = fetched = written = dropped = 0
    first: int | None = None
    last: int | None = None
    cursor = start
    with _bar((end - start) // tf_ms, f"{ex.id} {symbol} {timeframe}", progress) as bar:
        while cursor < end:
            rows = _call(ex.fetch_ohlcv, symbol, timeframe, since=cursor, limit=caps.candle_limit,
                         _retry_delay=retry_delay)
            requests += 1
            rows = [r for r in rows if cursor <= r[0] < end]
            if not rows:
                break  # nothing at or after the cursor: the venue has no more candles
            closed = [r for r in rows if r[0] + tf_ms <= now]
            dropped += len(rows) - len(closed)
            if closed:
                df = pd.DataFrame(closed, columns=["ts", "open", "high", "low", "close", "volume"])
                df = df.astype({"ts": "int64", "open": "float64", "high": "float64",
                                "low": "float64", "close": "float64", "volume": "float64"})
                written += store.write_bars(ex.id, symbol, timeframe, df)
                fetched += len(df)
                first = first if first is not None else int(df["ts"].iloc[0])
                last = int(df["ts"].iloc[-1])
                bar.update(len(df))
            if len(closed) < len(rows):
                break  # reached the open candle: everything after it is open too
            cursor = rows[-1][0] + tf_ms
    return DownloadResult(ex.id, symbol, timeframe, requests, fetched, written, first, last,
                          resumed, dropped)


# -- trades ------------------------------------------------------------------------------------
_TRADE_COLS = ["ts", "price", "size", "side", "trade_id"]


def trades_frame(trades: list[dict[str, Any]]) -> pd.DataFrame:
    """ccxt unified trades -> the store's trade frame (ts, price, size, side, trade_id)."""
    df = pd.DataFrame(
        {"ts": [int(t["timestamp"]) for t in trades],
         "price": [float(t["price"]) for t in trades],
         "size": [float(t["amount"]) for t in trades],
         "side": [t.get("side") or "" for t in trades],
         "trade_id": [str(t["id"]) for t in trades]},
        columns=_TRADE_COLS,
    )
    return df.astype({"ts": "int64", "price": "float64", "size": "float64"})


def _stored_ids_at(store: Any, exchange: str, symbol: str, ts: int) -> set[str]:
    """Trade ids already stored at exactly ``ts`` (resuming at a ms shared by several trades)."""
    reader = getattr(store, "read_trades", None)
    if reader is None:
        return set()
    df = reader(exchange, symbol, start=ts, end=ts + 1)
    if df is None or len(df) == 0:
        return set()
    return {str(x) for x in df["trade_id"]}


def _trade_pages(ex: Any, caps: Venue, symbol: str, start: int, end: int,
                 by_id: bool, counter: list[int], retry_delay: float) -> Iterator[list[dict[str, Any]]]:
    """Yield pages of ccxt trades in time order from ``start`` until ``end``."""
    cursor = start
    next_id: int | None = None
    while cursor < end:
        if next_id is not None:
            page = _call(ex.fetch_trades, symbol, limit=caps.trade_limit,
                         params={"fromId": next_id}, _retry_delay=retry_delay)
        else:
            page = _call(ex.fetch_trades, symbol, since=cursor, limit=caps.trade_limit,
                         _retry_delay=retry_delay)
        counter[0] += 1
        page = [t for t in page if t["timestamp"] >= cursor and t["timestamp"] < end]
        if not page:
            if next_id is not None or not by_id:
                return
            cursor += 3_600_000  # Binance's time window is one hour: look in the next one
            continue
        yield page
        if by_id:
            next_id = int(page[-1]["id"]) + 1
            cursor = page[-1]["timestamp"]
        elif page[-1]["timestamp"] > cursor:
            # same-ms trades may straddle pages: ask again from the last ms, dedupe by id
            cursor = page[-1]["timestamp"]
        elif len(page) >= caps.trade_limit:
            raise ValidationError("trades", cursor, "more trades in one ms than one page holds")
        else:
            cursor += 1  # this millisecond is complete


def download_trades(
    exchange: str | Any,
    symbol: str,
    since: int | str | datetime,
    until: int | str | datetime | None = None,
    store: MarketStore | None = None,
    *,
    progress: bool = True,
    now_ms: int | None = None,
    retry_delay: float = 0.5,
    page_by: str = "auto",
) -> DownloadResult:
    """Fetch public trades with time in ``[since, until)`` into ``store`` (resumable).

    Venues whose trade ids are consecutive (capability ``trade_ids_sequential``) are paged by
    id, others by time (``page_by="id"``/``"time"`` forces one); trades already stored are
    never written twice.
    """
    if page_by not in ("auto", "id", "time"):
        raise ValidationError("page_by", page_by, "unknown paging", "use auto, id or time")
    if store is None:
        raise ValidationError("store", None, "a MarketStore is required")
    ex, caps = _resolve(exchange)
    check_symbol(ex, symbol, retry_delay)
    now = utc_now_ms() if now_ms is None else now_ms
    start = to_ms(since, "since")
    assert start is not None
    end = min(to_ms(until, "until") or now, now)
    resumed = store.last_timestamp(ex.id, symbol, "trades")
    seen: set[str] = set()
    if resumed is not None and resumed >= start:
        start = resumed  # inclusive: other trades may share that millisecond
        seen = _stored_ids_at(store, ex.id, symbol, resumed)
    by_id = caps.trade_ids_sequential if page_by == "auto" else page_by == "id"
    counter = [0]
    fetched = written = 0
    first: int | None = None
    last: int | None = None
    with _bar(end - start, f"{ex.id} {symbol} trades (ms)", progress) as bar:
        for page in _trade_pages(ex, caps, symbol, start, end, by_id, counter, retry_delay):
            new = [t for t in page if str(t["id"]) not in seen]
            seen.update(str(t["id"]) for t in page)
            if len(seen) > 100_000:  # only ids near the cursor matter for dedup
                seen = {str(t["id"]) for t in page}
            if not new:
                continue
            df = trades_frame(new)
            written += store.write_trades(ex.id, symbol, df)
            fetched += len(df)
            first = first if first is not None else int(df["ts"].iloc[0])
            bar.update(int(df["ts"].iloc[-1]) - (last if last is not None else start))
            last = int(df["ts"].iloc[-1])
    return DownloadResult(ex.id, symbol, "trades", counter[0], fetched, written, first, last,
                          resumed)
