"""/hft: HFT / microstructure (the view lives in :mod:`lyra.dashboards.hft`)."""

ROUTE = "hft"
TITLE = "HFT / microstructure"
REQUIRES = "view_hft"


def create_app() -> object:
    """A fresh page for one browser session (``lyra serve`` calls this)."""
    from lyra.dashboards.hft import create_app as build

    return build()
