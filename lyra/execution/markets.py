"""Instruments and fee schedules from the recorded ccxt market definitions.

The package ships the ccxt unified markets of three venues (``venue_markets/*.json``; where
they come from is in ``venue_markets/PROVENANCE.txt``). They give each market's tick, lot,
minimum size and notional and its fee tiers, exactly as the venue's ccxt definition says:

>>> inst = load_instrument("binance:BTC/USDT")
>>> inst.price_increment, inst.size_increment, inst.min_notional
(Decimal('0.01'), Decimal('0.00001'), Decimal('5'))

How each file states precision is a venue fact, :attr:`lyra.venues.Venue.markets_precision`.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from lyra.core.errors import ValidationError
from lyra.core.instrument import Instrument
from lyra.execution.fees import FeeSchedule
from lyra.venues import VENUES

#: Venues whose recorded markets ship with Lyra (those with a ``markets_precision``).
RECORDED_VENUES: tuple[str, ...] = tuple(n for n, v in VENUES.items() if v.markets_precision)


def _precision(venue: str) -> str:
    mode = VENUES[venue].markets_precision if venue in VENUES else None
    if mode is None:
        raise ValidationError("venue", venue, "no recorded markets",
                              f"venues with recorded markets: {', '.join(RECORDED_VENUES)}")
    return mode


@cache
def _markets(venue: str) -> dict[str, dict[str, Any]]:
    _precision(venue)  # refuses a venue without recorded markets
    text = resources.files("lyra.execution").joinpath("venue_markets", f"{venue}.json").read_text("utf-8")
    data: dict[str, dict[str, Any]] = json.loads(text)
    return data


def load_markets(venue: str) -> dict[str, dict[str, Any]]:
    """The raw ccxt unified markets of ``venue``, keyed by symbol (a copy)."""
    return {k: dict(v) for k, v in _markets(venue).items()}


def _split(instrument_id: str) -> tuple[str, str]:
    venue, sep, symbol = instrument_id.partition(":")
    if not sep or not symbol:
        raise ValidationError("instrument_id", instrument_id, "expected '<venue>:<symbol>'",
                              "e.g. 'binance:BTC/USDT'")
    return venue, symbol


def _market(instrument_id: str) -> tuple[str, dict[str, Any]]:
    venue, symbol = _split(instrument_id)
    markets = _markets(venue)
    if symbol not in markets:
        raise ValidationError("instrument_id", instrument_id, f"unknown symbol on {venue}",
                              f"recorded: {', '.join(sorted(markets))}")
    return venue, markets[symbol]


def load_instrument(instrument_id: str) -> Instrument:
    """The :class:`Instrument` of ``"<venue>:<symbol>"`` from the recorded market definition."""
    venue, market = _market(instrument_id)
    return Instrument.from_ccxt_market(venue, market, _precision(venue))


def load_instruments(venue: str) -> dict[str, Instrument]:
    """All recorded instruments of ``venue``, keyed by instrument id."""
    mode = _precision(venue)
    out = [Instrument.from_ccxt_market(venue, m, mode) for m in _markets(venue).values()]
    return {i.id: i for i in out}


def load_fee_schedule(instrument_id: str, slippage_bps: object = 0) -> FeeSchedule:
    """The maker/taker fee tiers of ``"<venue>:<symbol>"`` from its market definition."""
    _, market = _market(instrument_id)
    return FeeSchedule.from_ccxt_market(market, slippage_bps)
