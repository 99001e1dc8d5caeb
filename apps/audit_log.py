"""/audit: Audit log (the view lives in :mod:`lyra.dashboards.audit_log`)."""

ROUTE = "audit"
TITLE = "Audit log"
REQUIRES = "view_audit"


def create_app() -> object:
    """A fresh page for one browser session (``lyra serve`` calls this)."""
    from lyra.dashboards.audit_log import create_app as build

    return build()
