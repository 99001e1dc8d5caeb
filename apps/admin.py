"""/admin: Administration (the view lives in :mod:`lyra.dashboards.admin`)."""

ROUTE = "admin"
TITLE = "Administration"
REQUIRES = "manage_users"


def create_app() -> object:
    """A fresh page for one browser session (``lyra serve`` calls this)."""
    from lyra.dashboards.admin import create_app as build

    return build()
