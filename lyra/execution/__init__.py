"""Execution: the broker protocol, the paper venue and its matching engine, fees, latency and
the venues' recorded market definitions.

>>> from lyra.core import ReplayClock
>>> from lyra.execution import PaperBroker
>>> broker = PaperBroker.from_venue("binance", ReplayClock(), {"USDT": 10_000})
"""

from lyra.execution.broker import (
    Balance,
    Broker,
    BrokerCapabilities,
    DuplicateOrder,
    ExecutionReport,
    MissingRiskDecision,
    OrderReport,
    UnknownOrder,
)
from lyra.execution.costs import CostModel
from lyra.execution.fees import FeeSchedule, FeeTier, VolumeTracker
from lyra.execution.latency import LatencyModel
from lyra.execution.markets import (
    VENUES,
    load_fee_schedule,
    load_instrument,
    load_instruments,
    load_markets,
)
from lyra.execution.matching import MatchingConfig, MatchingEngine
from lyra.execution.paper import PaperBroker, PaperConfig

__all__ = [
    "VENUES",
    "Balance",
    "Broker",
    "BrokerCapabilities",
    "CostModel",
    "DuplicateOrder",
    "ExecutionReport",
    "FeeSchedule",
    "FeeTier",
    "LatencyModel",
    "MatchingConfig",
    "MatchingEngine",
    "MissingRiskDecision",
    "OrderReport",
    "PaperBroker",
    "PaperConfig",
    "UnknownOrder",
    "VolumeTracker",
    "load_fee_schedule",
    "load_instrument",
    "load_instruments",
    "load_markets",
]
