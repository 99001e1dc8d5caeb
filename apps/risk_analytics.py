"""/risk_analytics: Risk analytics (the view lives in :mod:`lyra.dashboards.risk_analytics`)."""

ROUTE = "risk_analytics"
TITLE = "Risk analytics"
REQUIRES = "view_risk_analytics"


def create_app() -> object:
    """A fresh page for one browser session (``lyra serve`` calls this)."""
    from lyra.dashboards.risk_analytics import create_app as build

    return build()
