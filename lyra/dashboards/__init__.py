"""lyra.dashboards: the desk's screens as Panel views, the same in ``lyra serve``, in JupyterLab
and over a research backtest.

In a notebook::

    import panel as pn
    pn.extension("tabulator")
    from lyra.dashboards import TradingView
    TradingView(session="demo")                    # a live or finished session of LYRA_HOME
    TradingView(source=research_source(result))    # a vectorbt / lyra.research result

Each view reads through a *data source*: :class:`lyra.readside.ReadModel` (the sessions in a
database) or :func:`research_source` (a finished backtest, held in memory). Views poll one
shared :class:`LiveStore` per process, so ten open pages cost the database what one does.
``apps/*.py`` are the thin entry files ``lyra serve`` publishes.

Importing this package imports no Panel, and configures no logging: the names load on first
use.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    "LiveView": "base",
    "LiveStore": "live_store",
    "live_store": "live_store",
    "page": "base",
    "TradingView": "trading",
    "RiskView": "risk",
    "ExecutiveView": "executive",
    "HftView": "hft",
    "PortfolioView": "portfolio",
    "RiskAnalyticsView": "risk_analytics",
    "RebalancingView": "rebalancing",
    "FeesView": "fees",
    "AuditLogView": "audit_log",
    "AdminView": "admin",
    "OrderBookView": "book",
    "SpreadDepthView": "book",
    "HealthPanel": "health",
    "research_source": "sources",
    "ResearchSource": "sources",
    "DashboardSource": "sources",
    "CombinedSource": "combined",
    "research_results": "combined",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lyra.dashboards' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lyra.dashboards.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
