"""Trading costs shared by research backtests and the paper broker: one fee and slippage
model, so that a backtest and a paper session charge the same."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lyra.core.enums import Liquidity, Side
from lyra.core.errors import ValidationError
from lyra.core.values import to_decimal


@dataclass(frozen=True, slots=True)
class CostModel:
    """Fees as a fraction of notional and slippage in basis points of price.

    - ``maker_fee`` / ``taker_fee``: e.g. ``0.001`` for 10 bps (Binance spot default).
    - ``slippage_bps``: adverse price move applied to taker fills (buy higher, sell lower);
      makers get their limit price.
    """

    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.001")
    slippage_bps: Decimal = Decimal("0")

    def __post_init__(self) -> None:
        for name in ("maker_fee", "taker_fee", "slippage_bps"):
            v = to_decimal(getattr(self, name), name)
            if v < 0 or (name != "slippage_bps" and v >= 1):
                raise ValidationError(name, v, "out of range", "fees are fractions in [0, 1); slippage >= 0")
            object.__setattr__(self, name, v)

    # Ledger (Decimal) side -------------------------------------------------------------
    def fee(self, notional: Decimal, liquidity: Liquidity) -> Decimal:
        """Fee in quote currency for a fill of ``notional``."""
        rate = self.maker_fee if liquidity is Liquidity.MAKER else self.taker_fee
        return notional * rate

    def slipped_price(self, price: Decimal, side: Side) -> Decimal:
        """Taker fill price after slippage (before tick rounding)."""
        k = self.slippage_bps / Decimal(10_000)
        return price * (1 + k) if side is Side.BUY else price * (1 - k)

    # Research (float) side -------------------------------------------------------------
    @property
    def taker_fee_float(self) -> float:
        """Taker fee as a float fraction, for vectorbt's ``fees=``."""
        return float(self.taker_fee)

    @property
    def slippage_float(self) -> float:
        """Slippage as a float fraction, for vectorbt's ``slippage=``."""
        return float(self.slippage_bps) / 10_000.0
