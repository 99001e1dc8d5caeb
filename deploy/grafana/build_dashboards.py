# ruff: noqa: E501 - PromQL expressions read best on one line each
"""Lyra's Grafana dashboards, as code (grafana-foundation-sdk), written to ``dashboards/``.

    .venv/bin/python deploy/grafana/build_dashboards.py          # regenerate the JSON files
    .venv/bin/python deploy/grafana/build_dashboards.py --check  # exit 1 if they are stale

Three dashboards, each with a fixed uid (links and alert annotations point at them):
``lyra-trading`` (orders, fills, fees, latency, slippage, venue errors and rate limits, equity
and PnL), ``lyra-risk`` (decisions by check, refusals, kill switch, breakers, drawdown, trading
state) and ``lyra-operations`` (targets up, sessions up or stale, heartbeats, market-data
feeds, audit chain and verification, backups, runs, schedules and scheduler daemons,
event-log commit latency, process memory). The datasource is the one the
provisioning file declares (uid ``lyra-prometheus``). Edit this file, never the JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DS = DataSourceRef(type_val="prometheus", uid="lyra-prometheus")
SEL = 'session_id=~"$session"'


#: Panel ids, numbered from 1 in each dashboard (reset by ``base``), so they are stable.
_ids = itertools.count(1)


def q(expr: str, legend: str = "") -> Dataquery:
    d = Dataquery().expr(expr).datasource(DS)
    return d.legend_format(legend) if legend else d


def ts(title: str, unit: str, *queries: Dataquery, desc: str = "") -> Timeseries:
    p = Timeseries().id(next(_ids)).title(title).unit(unit).datasource(DS).height(8).span(12)
    for ref, query in zip("ABCDEFGH", queries, strict=False):
        p = p.with_target(query.ref_id(ref))
    return p.description(desc) if desc else p


def stat(title: str, unit: str, query: Dataquery, desc: str = "") -> Stat:
    p = (Stat().id(next(_ids)).title(title).unit(unit).datasource(DS).height(4).span(6)
         .with_target(query.ref_id("A")))
    return p.description(desc) if desc else p


def row(title: str) -> Row:
    return Row(title).id(next(_ids))


def base(uid: str, title: str, desc: str, sessions: bool = True) -> Dashboard:
    global _ids
    _ids = itertools.count(1)
    d = (Dashboard(title).uid(uid).tags(["lyra"]).description(desc).refresh("30s").time("now-6h", "now")
         .readonly())
    if sessions:
        d = d.with_variable(
            QueryVariable("session").label("Session").datasource(DS)
            .query("label_values(lyra_session_info, session_id)").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True).include_all(True))
    return d


def trading() -> Dashboard:
    return (
        base("lyra-trading", "Lyra / Trading", "Orders, fills, fees, latency, equity and PnL of running sessions.")
        .with_row(row("Orders"))
        .with_panel(stat("Orders submitted", "short", q(f"sum(lyra_orders_submitted_total{{{SEL}}})")))
        .with_panel(stat("Fills", "short", q(f"sum(lyra_fills_total{{{SEL}}})")))
        .with_panel(stat("Open orders", "short", q(f"sum(lyra_orders_open{{{SEL}}})")))
        .with_panel(stat("Unknown orders", "short", q(f"sum(lyra_orders_unknown{{{SEL}}})"),
                         desc="Orders a venue timeout left unresolved: reconciliation must settle them."))
        .with_panel(ts("Order flow", "ops",
                       q(f"sum by (session_id) (rate(lyra_orders_submitted_total{{{SEL}}}[$__rate_interval]))",
                         "submitted {{session_id}}"),
                       q(f"sum by (session_id) (rate(lyra_fills_total{{{SEL}}}[$__rate_interval]))",
                         "fills {{session_id}}"),
                       q(f"sum by (session_id) (rate(lyra_orders_cancelled_total{{{SEL}}}[$__rate_interval]))",
                         "cancelled {{session_id}}")))
        .with_panel(ts("Refusals by source and reason", "ops",
                       q(f"sum by (source, reason) (rate(lyra_orders_rejected_total{{{SEL}}}[$__rate_interval]))",
                         "{{source}}: {{reason}}")))
        .with_panel(ts("Ack latency (p50, p99)", "s",
                       q(f"histogram_quantile(0.5, sum by (le) (rate(lyra_order_ack_latency_seconds_bucket"
                         f"{{{SEL}}}[$__rate_interval])))", "p50"),
                       q(f"histogram_quantile(0.99, sum by (le) (rate(lyra_order_ack_latency_seconds_bucket"
                         f"{{{SEL}}}[$__rate_interval])))", "p99")))
        .with_panel(ts("Fill latency (p50, p99)", "s",
                       q(f"histogram_quantile(0.5, sum by (le) (rate(lyra_order_fill_latency_seconds_bucket"
                         f"{{{SEL}}}[$__rate_interval])))", "p50"),
                       q(f"histogram_quantile(0.99, sum by (le) (rate(lyra_order_fill_latency_seconds_bucket"
                         f"{{{SEL}}}[$__rate_interval])))", "p99")))
        .with_row(row("Execution quality"))
        .with_panel(ts("Slippage against the decision price (p50, p90)", "percentunit",
                       q(f"histogram_quantile(0.5, sum by (le) (rate(lyra_fill_slippage_ratio_bucket"
                         f"{{{SEL}}}[$__rate_interval])))", "p50"),
                       q(f"histogram_quantile(0.9, sum by (le) (rate(lyra_fill_slippage_ratio_bucket"
                         f"{{{SEL}}}[$__rate_interval])))", "p90"),
                       desc="Fill price against the mark the strategy decided at; above 0 costs."))
        .with_panel(ts("Slippage cost", "short", q(f"lyra_slippage_cost{{{SEL}}}", "{{session_id}}"),
                       desc="Sum of (fill - decision price) x quantity, quote currency; below 0 is improvement."))
        .with_panel(ts("Venue errors and rate limits", "short",
                       q(f"sum by (session_id, error) (increase(lyra_venue_errors_total{{{SEL}}}[5m]))",
                         "{{session_id}} {{error}} / 5m"),
                       q(f"sum by (session_id) (increase(lyra_venue_rate_limits_total{{{SEL}}}[5m]))",
                         "{{session_id}} rate limited / 5m")))
        .with_row(row("Portfolio"))
        .with_panel(ts("Equity", "currencyUSD", q(f"lyra_equity{{{SEL}}}", "{{session_id}}")))
        .with_panel(ts("Fees paid", "short",
                       q(f"sum by (session_id, currency) (increase(lyra_fees_total{{{SEL}}}[1h]))",
                         "{{session_id}} {{currency}} / h")))
        .with_panel(ts("Realised PnL by instrument", "short",
                       q(f"lyra_pnl_realized{{{SEL}}}", "{{session_id}} {{instrument}}")))
        .with_panel(ts("Unrealised PnL by instrument", "short",
                       q(f"lyra_pnl_unrealized{{{SEL}}}", "{{session_id}} {{instrument}}")))
        .with_panel(ts("Positions", "short", q(f"lyra_position_quantity{{{SEL}}}", "{{session_id}} {{instrument}}")))
        .with_panel(ts("Balances", "short", q(f"lyra_balance{{{SEL}}}", "{{session_id}} {{currency}}")))
    )


def risk() -> Dashboard:
    return (
        base("lyra-risk", "Lyra / Risk", "Pre-trade decisions, refusals, kill switch, breakers and drawdown.")
        .with_row(row("State"))
        .with_panel(stat("Kill switch engaged (scopes)", "short", q("sum(lyra_kill_switch_engaged)"),
                         desc="Scopes with an open kill-switch request; `lyra risk rearm` to re-arm."))
        .with_panel(stat("Breakers tripped", "short", q("sum(lyra_breaker_tripped)")))
        .with_panel(stat("Scopes halted", "short", q('sum(lyra_trading_state{state="halted"})')))
        .with_panel(stat("Max drawdown", "percentunit", q(f"max(lyra_drawdown_ratio{{{SEL}}})")))
        .with_row(row("Decisions"))
        .with_panel(ts("Risk decisions by check and result", "ops",
                       q(f"sum by (check, result) (rate(lyra_risk_checks_total{{{SEL}}}[$__rate_interval]))",
                         "{{check}} {{result}}")))
        .with_panel(ts("Refusal ratio", "percentunit",
                       q(f'sum by (session_id) (rate(lyra_risk_checks_total{{{SEL},result="denied"}}'
                         f"[$__rate_interval])) / sum by (session_id) (rate(lyra_risk_checks_total{{{SEL}}}"
                         "[$__rate_interval]))", "{{session_id}}")))
        .with_panel(ts("Drawdown against its limit", "percentunit",
                       q(f"lyra_drawdown_ratio{{{SEL}}}", "drawdown {{session_id}}"),
                       q(f"lyra_risk_limit_drawdown_ratio{{{SEL}}}", "limit {{session_id}}"),
                       q(f"lyra_breaker_drawdown_ratio{{{SEL}}}", "breaker's view {{session_id}}")))
        .with_panel(ts("Kill-switch activations", "short",
                       q(f"increase(lyra_kill_switch_activations_total{{{SEL}}}[1h])", "{{session_id}} / h")))
        .with_panel(ts("Trading state per scope", "short", q("lyra_trading_state == 1", "{{scope}} {{state}}")))
        .with_panel(ts("Breaker trips", "short", q("lyra_breaker_trips_total", "{{breaker}}")))
        .with_panel(ts("Reconciliation differences", "short",
                       q(f"increase(lyra_reconciliation_differences_total{{{SEL}}}[1h])",
                         "{{session_id}} {{kind}} / h"),
                       q(f"lyra_reconciliation_balances_ok{{{SEL}}}", "balances ok {{session_id}}")))
    )


def operations() -> Dashboard:
    return (
        base("lyra-operations", "Lyra / Operations",
             "Every Lyra process: targets, sessions (up or stale), heartbeats, audit chain, backups, runs.",
             sessions=False)
        .with_row(row("Health"))
        .with_panel(stat("Targets down", "short", q('count(up{job="lyra"} == 0) or vector(0)')))
        .with_panel(stat("Stale sessions", "short", q('lyra_sessions{status="stale"}')))
        .with_panel(stat("Audit chain verified", "bool", q("lyra_audit_verify_ok"),
                         desc="The last full `lyra audit verify` run by lyra serve (1 = intact)."))
        .with_panel(stat("Newest verified backup age", "s",
                         q("time() - lyra_backup_last_verified_timestamp_seconds")))
        .with_row(row("Sessions"))
        .with_panel(ts("Sessions by status", "short", q("lyra_sessions", "{{status}}")))
        .with_panel(ts("Session up (from the database)", "short", q("lyra_session_up", "{{session_id}}")))
        .with_panel(ts("Heartbeat age", "s", q("lyra_session_heartbeat_age_seconds", "{{session_id}}"),
                       q("time() - lyra_session_heartbeat_timestamp_seconds", "{{session_id}} (own)")))
        .with_panel(ts("Events processed", "ops",
                       q("rate(lyra_session_events_processed_total[$__rate_interval])", "{{session_id}}")))
        .with_row(row("Market data"))
        .with_panel(ts("Time since the last feed message", "s",
                       q("time() - lyra_feed_last_message_timestamp_seconds", "{{feed}} {{instrument}}")))
        .with_panel(ts("Feed messages", "ops",
                       q("sum by (feed, instrument, channel) (rate(lyra_feed_messages_total[$__rate_interval]))",
                         "{{feed}} {{instrument}} {{channel}}")))
        .with_panel(ts("Reconnects, gaps and backfills", "short",
                       q("increase(lyra_feed_reconnects_total[15m])", "reconnects {{feed}} {{instrument}}"),
                       q("increase(lyra_feed_gaps_total[15m])", "gaps {{feed}} {{instrument}}"),
                       q("increase(lyra_feed_backfilled_trades_total[15m])", "backfilled {{feed}} {{instrument}}")))
        .with_panel(ts("Bad messages and book checksum failures", "short",
                       q("increase(lyra_feed_bad_messages_total[15m])", "bad {{feed}} {{instrument}}"),
                       q("increase(lyra_feed_book_checksum_failures_total[15m])", "checksum {{feed}} {{instrument}}")))
        .with_panel(ts("Data time per instrument (behind now)", "s",
                       q("time() - lyra_instrument_data_timestamp_seconds", "{{session_id}} {{instrument}}")))
        .with_row(row("Stores"))
        .with_panel(ts("Event-log commit latency (p99)", "s",
                       q("histogram_quantile(0.99, sum by (le, session_id) "
                         "(rate(lyra_audit_append_latency_seconds_bucket[$__rate_interval])))", "{{session_id}}")))
        .with_panel(ts("Event-log entries", "ops",
                       q("rate(lyra_audit_entries_appended_total[$__rate_interval])", "{{session_id}}"),
                       q("deriv(lyra_audit_head_seq[5m])", "chain head")))
        .with_panel(ts("Database", "short", q("lyra_db_up", "up"), q("lyra_audit_head_consistent", "head consistent")))
        .with_panel(ts("Process memory", "bytes",
                       q('process_resident_memory_bytes{job="lyra"}', "{{lyra_kind}} {{lyra_name}}")))
        .with_row(row("Runs and schedules"))
        .with_panel(ts("Runs ended", "short", q("increase(lyra_runs_total[1h])", "{{schedule}} {{status}} / h")))
        .with_panel(ts("Schedule lag", "s", q("lyra_schedule_lag_seconds", "{{schedule}}")))
        .with_panel(ts("Last run duration", "s", q("lyra_run_duration_seconds", "{{schedule}}")))
        .with_panel(ts("Running runs", "short", q("lyra_runs_running", "running")))
        .with_panel(ts("Scheduler daemons: since last tick, start lag", "s",
                       q("time() - lyra_scheduler_tick_timestamp_seconds", "since tick {{lyra_name}}"),
                       q("lyra_scheduler_lag_seconds", "start lag {{lyra_name}}")))
        .with_panel(ts("Scheduler daemons: runs", "short",
                       q("increase(lyra_scheduler_runs_ended_total[1h])", "{{lyra_name}} {{status}} / h"),
                       q("lyra_scheduler_runs_running", "{{lyra_name}} running"),
                       q("increase(lyra_scheduler_db_errors_total[1h])", "{{lyra_name}} db errors / h")))
    )


DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "lyra-trading": trading, "lyra-risk": risk, "lyra-operations": operations}


def render(name: str) -> str:
    """The JSON of one dashboard, as written to ``dashboards/<name>.json``."""
    return JSONEncoder(sort_keys=True, indent=2).encode(DASHBOARDS[name]().build()) + "\n"


def rendered() -> dict[str, Any]:
    """Every dashboard as parsed JSON, by file name."""
    return {f"{n}.json": json.loads(render(n)) for n in DASHBOARDS}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if dashboards/ differs from the code")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    stale = []
    for n in DASHBOARDS:
        path = OUT / f"{n}.json"
        text = render(n)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}; run {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
