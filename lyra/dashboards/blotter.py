"""The trading blotter's tables: fills, positions and open orders with human column names,
times as UTC text and each row's prices and sizes at its instrument's precision (as text,
right-aligned, sorting as numbers); money columns as numbers."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import panel as pn
from bokeh.models.widgets import NumberFormatter

from lyra.dashboards.base import NUMBER, TABLE_OPTS
from lyra.dashboards.theme import Precision

#: Table columns (human names) whose values are text at each row's instrument precision:
#: right-aligned and sorted as numbers.
NUMERIC_TEXT = ("Quantity", "Price", "Avg price", "Mark", "Limit price", "Filled", "Fee")
MONEY = {c: NumberFormatter(format=NUMBER) for c in ("Notional", "Market value", "Realized PnL",
                                                      "Unrealized PnL", "Fees")}
FILL_COLUMNS = ("Time (UTC)", "Order id", "Instrument", "Side", "Quantity", "Price", "Fee", "Liquidity",
                 "Notional")
POSITION_COLUMNS = ("Venue", "Instrument", "Quantity", "Avg price", "Mark", "Market value", "Realized PnL",
                     "Unrealized PnL", "Fees")
ORDER_COLUMNS = ("Time (UTC)", "Order id", "Session", "Instrument", "Side", "Type", "Quantity",
                  "Limit price", "Filled", "Status")



def utc_text(ts: pd.Series) -> pd.Series:
    """Times as UTC text (``2017-11-10 00:00:00``): what a blotter shows, never epoch ms."""
    return pd.to_datetime(ts.astype("int64"), unit="ms").dt.strftime("%Y-%m-%d %H:%M:%S")


def blotter_table(name: str, columns: tuple[str, ...]) -> pn.widgets.Tabulator:
    text = [c for c in columns if c in NUMERIC_TEXT]
    return pn.widgets.Tabulator(
        pd.DataFrame({c: pd.Series(dtype="float64" if c in MONEY else "object") for c in columns}),
        formatters={c: f for c, f in MONEY.items() if c in columns},
        text_align={c: "right" for c in (*text, *(c for c in MONEY if c in columns))},
        # numbers shown as text (each row at its own precision) still sort as numbers
        configuration={"columns": [{"field": c, "sorter": "number",
                                    "sorterParams": {"thousandSeparator": ","}} for c in text]},
        css_classes=["lyra-table", name], **TABLE_OPTS)


def set_if_changed(table: pn.widgets.Tabulator, frame: pd.DataFrame) -> None:
    # Re-sending an unchanged table costs the browser a full re-render.
    old = table.value
    if old is None or list(old.columns) != list(frame.columns) or not old.equals(frame):
        table.value = frame


def positions_frame(pos: pd.DataFrame, precision: Callable[[str], Precision]) -> pd.DataFrame:
    """The positions table."""
    precs = [precision(i) for i in pos["instrument_id"]]
    return pd.DataFrame({
        "Venue": pos["venue"].to_numpy(),
        "Instrument": pos["symbol"].to_numpy(),
        "Quantity": [p.size_text(q, ascii=True) for p, q in zip(precs, pos["quantity"], strict=True)],
        "Avg price": [p.price_text(v, ascii=True) for p, v in zip(precs, pos["avg_price"], strict=True)],
        "Mark": [p.price_text(v, ascii=True) for p, v in zip(precs, pos["mark"], strict=True)],
        **{c: pos[k].to_numpy(dtype="float64") for c, k in (("Market value", "market_value"),
                                                           ("Realized PnL", "realized_pnl"),
                                                           ("Unrealized PnL", "unrealized_pnl"),
                                                           ("Fees", "fees"))},
    }, columns=list(POSITION_COLUMNS))


def orders_frame(o: pd.DataFrame, precision: Callable[[str], Precision]) -> pd.DataFrame:
    """The open-orders table."""
    precs = [precision(i) for i in o["instrument_id"]]
    return pd.DataFrame({
        "Time (UTC)": utc_text(o["created_ts"]).to_numpy(),
        "Order id": o["client_order_id"].to_numpy(),
        "Session": o["session_id"].to_numpy(),
        "Instrument": o["symbol"].to_numpy(),
        "Side": o["side"].to_numpy(),
        "Type": o["order_type"].to_numpy(),
        "Quantity": [p.size_text(q, ascii=True) for p, q in zip(precs, o["quantity"], strict=True)],
        "Limit price": [p.price_text(v, ascii=True) if v == v else "" for p, v in
                        zip(precs, o["limit_price"], strict=True)],
        "Filled": [p.size_text(q, ascii=True) for p, q in zip(precs, o["filled_quantity"], strict=True)],
        "Status": o["status"].to_numpy(),
    }, columns=list(ORDER_COLUMNS))
