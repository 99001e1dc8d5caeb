"""/fees: Fees (the view lives in :mod:`lyra.dashboards.fees`)."""

ROUTE = "fees"
TITLE = "Fees"
REQUIRES = "view_fees"


def create_app() -> object:
    """A fresh page for one browser session (``lyra serve`` calls this)."""
    from lyra.dashboards.fees import create_app as build

    return build()
