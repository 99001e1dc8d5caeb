"""The dashboards' look, shared by every page: dark tables and pagers (Tabulator's ``midnight``
theme, served by Panel from its own bundle, plus the few rules it gets wrong on our dark
template), and numbers at an instrument's precision.

>>> p = instrument_precision({"instruments": {"BTC/USD": {"price_increment": "0.01",
...                                                      "size_increment": "1E-8"}}}, "BTC/USD")
>>> p.price_text(4587.0), p.size_text(0.001), p.size_text(2.0)
('4,587.00', '0.001', '2')
>>> instrument_precision({}, "DOGE/USD")   # nothing in the config: 2 price, 8 size decimals
Precision(price=2, size=8)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

#: Tabulator's dark theme; its CSS ships in Panel's bundle (``dist/bundled/datatabulator``)
#: and is served by the Panel server itself, so it loads offline and under the proxy's CSP.
TABLE_THEME = "midnight"

#: Rules added inside each table's shadow root (page-level CSS cannot reach it): the
#: midnight theme draws the pager's buttons dark-on-dark and the rows on its own greys; these
#: put the tables on the template's colours, with readable filter boxes and pager.
TABLE_CSS = """
.tabulator { background-color: #1b1f24; border: 1px solid #30363d; font-size: 13px; }
.tabulator .tabulator-header, .tabulator .tabulator-header .tabulator-col {
  background-color: #22272e; color: #c9d1d9; border-color: #30363d; }
.tabulator .tabulator-header .tabulator-col .tabulator-header-filter input,
.tabulator .tabulator-header .tabulator-col .tabulator-header-filter select {
  background: #0d1117; color: #c9d1d9; border: 1px solid #444c56; border-radius: 3px; padding: 2px 4px; }
.tabulator .tabulator-tableholder, .tabulator .tabulator-tableholder .tabulator-table {
  background-color: #1b1f24; color: #c9d1d9; }
.tabulator-row, .tabulator-row.tabulator-row-odd { background-color: #1b1f24; color: #c9d1d9; }
.tabulator-row.tabulator-row-even { background-color: #20262d; }
.tabulator-row .tabulator-cell { border-right: 1px solid #2a3038; font-variant-numeric: tabular-nums; }
@media (hover:hover) and (pointer:fine) {
  .tabulator-row.tabulator-selectable:hover { background-color: #2d333b; } }
.tabulator .tabulator-footer { background-color: #22272e; color: #c9d1d9; border-top: 1px solid #30363d; }
.tabulator .tabulator-footer .tabulator-paginator, .tabulator .tabulator-footer .tabulator-page-counter,
.tabulator .tabulator-footer .tabulator-paginator label { color: #c9d1d9; }
.tabulator .tabulator-footer .tabulator-page, .tabulator .tabulator-footer .tabulator-page-size {
  background: #2d333b; color: #c9d1d9; border: 1px solid #444c56; }
.tabulator .tabulator-footer .tabulator-page.active {
  background: #4f8cc9; color: #fff; border-color: #4f8cc9; }
@media (hover:hover) and (pointer:fine) {
  .tabulator .tabulator-footer .tabulator-page:not(disabled):hover { background: #444c56; color: #fff; } }
.tabulator .tabulator-tableholder .tabulator-placeholder span { color: #9aa4af; }
"""

#: Decimals shown when a session's config gives no increment: cents for prices, and 8 for
#: sizes (a satoshi), trimmed of trailing zeros.
DEFAULT_PRICE_DECIMALS = 2
DEFAULT_SIZE_DECIMALS = 8
_MAX_DECIMALS = 12


def dark_tables(root: Any) -> int:
    """Give every Tabulator under ``root`` (a Panel object or Viewer) the dark theme and its
    extra rules; returns how many tables it found. :func:`lyra.dashboards.base.page` calls it,
    so a page that builds its tables without ``TABLE_OPTS`` is dark too."""
    import panel as pn

    found = pn.panel(root).select(pn.widgets.Tabulator)  # type: ignore[attr-defined]
    for table in found:
        if table.theme != TABLE_THEME:
            table.theme = TABLE_THEME
        if TABLE_CSS not in table.stylesheets:
            table.stylesheets = [*table.stylesheets, TABLE_CSS]
    return len(found)


def decimals_of(increment: object, default: int) -> int:
    """The decimals an increment implies (``"0.01"`` -> 2, ``"1E-8"`` -> 8, ``"5"`` -> 0);
    ``default`` when it is missing or not a positive number."""
    try:
        inc = Decimal(str(increment))
    except (InvalidOperation, ValueError):
        return default
    if increment is None or not inc.is_finite() or inc <= 0:
        return default
    exponent = inc.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite: never 'n', 'N' or 'F'
    return min(max(0, -exponent), _MAX_DECIMALS)


@dataclass(frozen=True)
class Precision:
    """How many decimals an instrument's prices and sizes are shown with."""

    price: int = DEFAULT_PRICE_DECIMALS
    size: int = DEFAULT_SIZE_DECIMALS

    def price_text(self, v: float | None, *, ascii: bool = False) -> str:
        """``4,587.00`` at the price precision; an en dash for a missing value. ``ascii``: a
        plain ``-`` for negatives (tables sort the text as numbers), else a minus sign."""
        return _fixed(v, self.price, ascii)

    def size_text(self, v: float | None, *, ascii: bool = False, least: int = 0) -> str:
        """``0.001``: up to the size precision, trailing zeros trimmed down to ``least``
        decimals; an en dash for a missing value (``ascii`` as in :meth:`price_text`)."""
        text = _fixed(v, self.size, ascii)
        if "." in text:
            whole, _, frac = text.partition(".")
            frac = frac.rstrip("0").ljust(min(least, self.size), "0")
            text = f"{whole}.{frac}" if frac else whole
        return "0" if text in ("−0", "-0") else text


def _fixed(v: float | None, digits: int, ascii: bool = False) -> str:
    if v is None or not math.isfinite(float(v)):
        return "–"
    text = f"{float(v):,.{digits}f}"
    return text if ascii else text.replace("-", "−")


def instrument_precision(config: Mapping[str, Any], symbol: str) -> Precision:
    """The precision of ``symbol`` from a session's stored config
    (``config["instruments"][symbol]["price_increment"/"size_increment"]``), else defaults."""
    instruments = config.get("instruments") if isinstance(config, Mapping) else None
    spec = instruments.get(symbol) if isinstance(instruments, Mapping) else None
    if not isinstance(spec, Mapping):
        return Precision()
    return Precision(decimals_of(spec.get("price_increment"), DEFAULT_PRICE_DECIMALS),
                     decimals_of(spec.get("size_increment"), DEFAULT_SIZE_DECIMALS))
