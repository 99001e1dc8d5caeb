"""/rebalancing: Rebalancing (the view lives in :mod:`lyra.dashboards.rebalancing`)."""

ROUTE = "rebalancing"
TITLE = "Rebalancing"
REQUIRES = "view_rebalancing"


def create_app() -> object:
    """A fresh page for one browser session (``lyra serve`` calls this)."""
    from lyra.dashboards.rebalancing import create_app as build

    return build()
