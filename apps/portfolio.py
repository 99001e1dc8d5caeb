"""/portfolio: Portfolio (the view lives in :mod:`lyra.dashboards.portfolio`)."""

ROUTE = "portfolio"
TITLE = "Portfolio"
REQUIRES = "view_portfolio"


def create_app() -> object:
    """A fresh page for one browser session (``lyra serve`` calls this)."""
    from lyra.dashboards.portfolio import create_app as build

    return build()
