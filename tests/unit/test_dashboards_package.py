"""lyra.dashboards as a library: every exported name resolves, and importing it (or a view)
changes nothing global — no Panel loaded up front, the notebook's logging left alone."""

from __future__ import annotations

import subprocess
import sys

import lyra.dashboards as dashboards

PROBE = """
import logging, sys
logging.basicConfig(level=logging.WARNING, format="NOTEBOOK %(message)s")
before = (list(logging.root.handlers), logging.root.level, [h.formatter._fmt for h in logging.root.handlers])
import lyra.dashboards
assert "panel" not in sys.modules, "importing lyra.dashboards loaded Panel"
from lyra.dashboards import TradingView, RiskView, research_source  # the views themselves
after = (list(logging.root.handlers), logging.root.level, [h.formatter._fmt for h in logging.root.handlers])
assert after == before, (before, after)
print("clean")
"""


def test_every_exported_name_resolves() -> None:
    assert dashboards.__all__ == sorted(dashboards.__all__)
    for name in dashboards.__all__:
        assert getattr(dashboards, name) is not None, name
    assert {"TradingView", "LiveStore", "research_source", "DashboardSource"} <= set(dashboards.__all__)


def test_importing_the_views_leaves_logging_and_panel_alone() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "clean", out.stderr[-2000:]
