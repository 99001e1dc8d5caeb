"""/executive: Executive (the view lives in :mod:`lyra.dashboards.executive`)."""

ROUTE = "executive"
TITLE = "Executive"
REQUIRES = "view_executive"


def create_app() -> object:
    """A fresh page for one browser session (``lyra serve`` calls this)."""
    from lyra.dashboards.executive import create_app as build

    return build()
