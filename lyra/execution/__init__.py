"""Execution: the broker protocol, the paper venue and its matching engine, fees, latency and
the venues' recorded market definitions; smart order routing and execution algorithms.
The live broker (it imports ccxt) is in :mod:`lyra.execution.ccxt_broker`, restart
reconciliation in :mod:`lyra.execution.reconcile`, the multi-venue desk in
:mod:`lyra.execution.routed_desk`.

>>> from lyra.core import ReplayClock
>>> from lyra.execution import PaperBroker
>>> broker = PaperBroker.from_venue("binance", ReplayClock(), {"USDT": 10_000})
"""

from lyra.execution.algos import AlgoSpec, ParentIntent
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
    RECORDED_VENUES,
    load_fee_schedule,
    load_instrument,
    load_instruments,
    load_markets,
)
from lyra.execution.matching import MatchingConfig, MatchingEngine
from lyra.execution.paper import PaperBroker, PaperConfig
from lyra.execution.routing import RoutePlan, VenueQuote, plan_route
from lyra.execution.routing_exec import RouteResult, execute_route, planner

__all__ = [
    "RECORDED_VENUES",
    "AlgoSpec",
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
    "ParentIntent",
    "RoutePlan",
    "RouteResult",
    "UnknownOrder",
    "VenueQuote",
    "VolumeTracker",
    "execute_route",
    "load_fee_schedule",
    "load_instrument",
    "load_instruments",
    "load_markets",
    "plan_route",
    "planner",
]
