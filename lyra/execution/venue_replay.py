"""Real ccxt exchanges that answer from recorded HTTP bodies, for offline tests and notebooks.

This is how ccxt tests itself offline: the exchange class is the real one (it builds and
signs the request, then parses the answer with its own code), only its HTTP ``fetch`` is
replaced by one that returns a recorded body. So ``fetch_order``, ``fetch_my_trades`` or
``fetch_balance`` run exactly as against the venue, and the mappers in
:mod:`lyra.execution.venue_reports` see what a live broker would see.

>>> ex = recorded_exchange("kraken", body={"error": [], "result": {"USDT": {
...     "balance": "25.5", "hold_trade": "5.5"}}}, markets=shipped_markets("kraken"))
>>> bal = ex.fetch_balance()["USDT"]
>>> bal["free"], bal["used"], ex.requested_urls
(20.0, 5.5, ['https://api.kraken.com/0/private/BalanceEx'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ccxt

from lyra.core.errors import ValidationError
from lyra.execution.markets import load_markets
from lyra.venues import get_venue

#: credentials that let ccxt sign requests; nothing is ever sent
_DUMMY_CREDENTIALS = {"apiKey": "key", "secret": "secretsecret", "password": "password", "uid": "uid"}


def recorded_exchange(
    venue: str,
    *,
    body: Any = None,
    by_url: Mapping[str, Any] | None = None,
    markets: Iterable[Mapping[str, Any]] | None = None,
    number: type = float,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """A real ``ccxt.<venue>`` whose every HTTP request is answered from a recording.

    ``body`` answers every request; ``by_url`` maps a fragment of the URL to its body (the
    first fragment found in the URL wins; a URL matching none raises ``LookupError``).
    ``markets`` are ccxt market structures to load (no request is made for them); ``number``
    is ccxt's number type (``str`` keeps the venue's digits). The URLs asked for are kept in
    ``requested_urls``."""
    cls = getattr(ccxt, venue, None)
    if cls is None:
        raise ValidationError("venue", venue, "not a ccxt exchange")
    exchange = cls({**_DUMMY_CREDENTIALS, "enableRateLimit": False,
                    "options": {"adjustForTimeDifference": False, **(options or {})}})
    urls: list[str] = []

    def fetch(url: str, method: str = "GET", headers: Any = None, body_: Any = None) -> Any:
        urls.append(url)
        if by_url is None:
            return body
        for fragment, answer in by_url.items():
            if fragment in url:
                return answer
        raise LookupError(f"no recorded answer for {method} {url}")

    exchange.fetch = fetch
    exchange.requested_urls = urls
    exchange.number = number
    if markets is not None:
        exchange.set_markets([dict(m) for m in markets])
    return exchange


def shipped_markets(venue: str) -> list[dict[str, Any]]:
    """The ccxt markets Lyra ships for ``venue`` (:func:`lyra.execution.markets.load_markets`),
    made loadable by today's ccxt: precision as tick sizes (the Binance recording uses the
    legacy decimal-places form) and the ``linear``/``inverse`` keys current ccxt reads."""
    out = []
    decimals = get_venue(venue).markets_precision == "decimals"
    for market in load_markets(venue).values():
        m = dict(market)
        if decimals:
            m["precision"] = {k: (10.0 ** -v if isinstance(v, int | float) else v)
                              for k, v in m["precision"].items()}
        m.setdefault("linear", None)
        m.setdefault("inverse", None)
        out.append(m)
    return out


def recorded_markets(venue: str, by_url: Mapping[str, Any], **options: Any) -> list[dict[str, Any]]:
    """ccxt's own ``fetch_markets`` run on recorded instrument listings (``by_url`` as in
    :func:`recorded_exchange`; ``options`` go to ``exchange.options``, e.g.
    ``fetchMarkets={"types": ["spot", "linear"]}``)."""
    exchange = recorded_exchange(venue, by_url=by_url, options=options)
    markets: list[dict[str, Any]] = exchange.fetch_markets()
    return markets
