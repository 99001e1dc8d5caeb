"""/trading: Trading (the view lives in :mod:`lyra.dashboards.trading`)."""

ROUTE = "trading"
TITLE = "Trading"
REQUIRES = "view_trading"


def create_app() -> object:
    """A fresh page for one browser session (``lyra serve`` calls this)."""
    from lyra.dashboards.trading import create_app as build

    return build()
