"""/risk: Live risk (the view lives in :mod:`lyra.dashboards.risk`)."""

ROUTE = "risk"
TITLE = "Live risk"
REQUIRES = "view_risk"


def create_app() -> object:
    """A fresh page for one browser session (``lyra serve`` calls this)."""
    from lyra.dashboards.risk import create_app as build

    return build()
