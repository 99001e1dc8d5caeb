"""Instruments: what can be traded where, and the venue's precision rules."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lyra.core.errors import InvalidOrder, ValidationError
from lyra.core.values import ZERO, is_on_step, to_decimal


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable market on a venue, with the venue's tick, lot and minimums.

    ``id`` is ``"<venue>:<symbol>"``, e.g. ``"binance:BTC/USDT"``.
    """

    symbol: str
    venue: str
    base: str
    quote: str
    price_increment: Decimal
    size_increment: Decimal
    min_size: Decimal = ZERO
    min_notional: Decimal = ZERO
    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.001")

    def __post_init__(self) -> None:
        for name in ("symbol", "venue", "base", "quote"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise ValidationError(f"instrument.{name}", v, "must be a non-empty string")
        for name in ("price_increment", "size_increment"):
            d = to_decimal(getattr(self, name), f"instrument.{name}")
            if d <= 0:
                raise ValidationError(f"instrument.{name}", d, "must be positive")
            object.__setattr__(self, name, d)
        for name in ("min_size", "min_notional", "maker_fee", "taker_fee"):
            d = to_decimal(getattr(self, name), f"instrument.{name}")
            if d < 0:
                raise ValidationError(f"instrument.{name}", d, "must not be negative")
            object.__setattr__(self, name, d)
        if self.symbol != f"{self.base}/{self.quote}" and not self.symbol.startswith(
            f"{self.base}/{self.quote}:"
        ):
            raise ValidationError(
                "instrument.symbol", self.symbol, f"does not match base/quote {self.base}/{self.quote}"
            )

    @property
    def id(self) -> str:
        return f"{self.venue}:{self.symbol}"

    def check_order(self, quantity: Decimal, price: Decimal | None) -> None:
        """Raise ``InvalidOrder`` if size/price break the venue's grid or minimums."""
        if quantity <= 0:
            raise InvalidOrder("quantity", quantity, "must be positive")
        if not is_on_step(quantity, self.size_increment):
            raise InvalidOrder(
                "quantity", quantity, f"not a multiple of the lot size {self.size_increment}"
            )
        if quantity < self.min_size:
            raise InvalidOrder("quantity", quantity, f"below the minimum size {self.min_size}")
        if price is not None:
            if price <= 0:
                raise InvalidOrder("price", price, "must be positive")
            if not is_on_step(price, self.price_increment):
                raise InvalidOrder("price", price, f"not on the tick grid {self.price_increment}")
            if quantity * price < self.min_notional:
                raise InvalidOrder(
                    "notional", quantity * price, f"below the minimum notional {self.min_notional}"
                )

    @classmethod
    def from_ccxt_market(
        cls, venue: str, market: dict[str, Any], precision_mode: str = "tick"
    ) -> Instrument:
        """Build from a ccxt unified market (``exchange.markets[symbol]``).

        ccxt gives precision as a step (``precision_mode="tick"``, ccxt's TICK_SIZE, e.g. 0.01)
        or as a number of decimals (``"decimals"``, ccxt's DECIMAL_PLACES, e.g. 2); the
        exchange's ``precisionMode`` says which.
        """
        if precision_mode not in ("tick", "decimals"):
            raise ValidationError("precision_mode", precision_mode, "use 'tick' or 'decimals'")
        try:
            prec = market["precision"]
            limits = market.get("limits") or {}
            price_inc = _precision_to_step(prec["price"], precision_mode)
            size_inc = _precision_to_step(prec["amount"], precision_mode)
            min_size = to_decimal((limits.get("amount") or {}).get("min") or 0)
            min_notional = to_decimal((limits.get("cost") or {}).get("min") or 0)
            return cls(
                symbol=market["symbol"],
                venue=venue,
                base=market["base"],
                quote=market["quote"],
                price_increment=price_inc,
                size_increment=size_inc,
                min_size=min_size,
                min_notional=min_notional,
                maker_fee=to_decimal(market.get("maker") if market.get("maker") is not None else "0.001"),
                taker_fee=to_decimal(market.get("taker") if market.get("taker") is not None else "0.001"),
            )
        except KeyError as exc:
            raise ValidationError(
                f"market.{exc.args[0]}", market.get("symbol"), "missing from the market definition"
            ) from None


def _precision_to_step(p: object, mode: str) -> Decimal:
    if p is None:
        raise ValidationError("precision", p, "missing")
    d = to_decimal(p, "precision")
    if mode == "decimals":
        if d != d.to_integral_value() or d < 0:
            raise ValidationError("precision", p, "decimal places must be a whole number >= 0")
        return Decimal(1).scaleb(-int(d))
    if d <= 0:
        raise ValidationError("precision", p, "must be positive")
    return d
