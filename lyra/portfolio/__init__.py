"""Positions, FIFO lots, cash, PnL and the equity curve."""

from lyra.portfolio.lots import ClosedLot, Lot, LotBook
from lyra.portfolio.portfolio import Portfolio, replay_fills

__all__ = ["ClosedLot", "Lot", "LotBook", "Portfolio", "replay_fills"]
