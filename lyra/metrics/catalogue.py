"""Every metric Lyra exports, in one place: name, type and help.

The collectors build their metrics from this table, the dashboards and alert rules are
checked against it (``tests/unit/metrics``), so a metric cannot be renamed in one place and
forgotten in another. Names follow Prometheus conventions: the ``lyra_`` prefix, base units
(seconds, not milliseconds), ``_total`` for counters, ``_info`` for labels-only metrics.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported metric family."""

    name: str  #: the family name (a counter's samples add ``_total``; histograms ``_bucket``...)
    type: str  #: counter, gauge, histogram, info
    help: str
    labels: tuple[str, ...] = ()
    source: str = "session"  #: session (the running process), database (lyra serve), any


def _s(name: str, type_: str, help_: str, *labels: str, source: str = "session") -> MetricSpec:
    return MetricSpec(name, type_, help_, labels, source)


SPECS: tuple[MetricSpec, ...] = (
    # --- every process
    _s("lyra_build", "info", "Lyra version and Python of this process.", "version", "python", source="any"),
    # --- a running session (its own /metrics)
    _s("lyra_session", "info", "The session this process runs.", "session_id", "mode", "strategy", "venue"),
    _s("lyra_session_heartbeat_timestamp_seconds", "gauge", "Wall time of the session's last heartbeat.",
       "session_id"),
    _s("lyra_session_data_timestamp_seconds", "gauge", "Time of the last market event the session processed.",
       "session_id"),
    _s("lyra_session_events_processed", "counter", "Market events the session processed (this run).",
       "session_id"),
    _s("lyra_session_killed", "gauge", "1 if the kill switch was acted on in this session.", "session_id"),
    _s("lyra_session_trading_state", "gauge", "Trading state the session's risk engine sees (1 = current).",
       "session_id", "state"),
    _s("lyra_orders_submitted", "counter", "Orders approved by risk and sent to the broker.", "session_id"),
    _s("lyra_orders_rejected", "counter", "Orders refused, by source (risk or venue) and reason.",
       "session_id", "source", "reason"),
    _s("lyra_orders_cancelled", "counter", "Orders the venue confirmed cancelled.", "session_id"),
    _s("lyra_orders_expired", "counter", "Orders whose time in force ran out.", "session_id"),
    _s("lyra_orders_open", "gauge", "Orders working at the broker right now.", "session_id"),
    _s("lyra_orders_unknown", "gauge", "Orders whose state is unknown (reconciliation must resolve them).",
       "session_id"),
    _s("lyra_fills", "counter", "Fills booked, by liquidity (maker/taker).", "session_id", "liquidity"),
    _s("lyra_fees", "counter", "Fees paid, in the fee currency.", "session_id", "currency"),
    _s("lyra_order_ack_latency_seconds", "histogram", "Submit to venue acknowledgement (session clock).",
       "session_id"),
    _s("lyra_order_fill_latency_seconds", "histogram", "Submit to first fill (session clock).", "session_id"),
    _s("lyra_risk_checks", "counter", "Pre-trade risk decisions, by deciding check and result.",
       "session_id", "check", "result"),
    _s("lyra_kill_switch_activations", "counter", "Kill-switch requests the session acted on.", "session_id"),
    _s("lyra_reconciliations", "counter", "Reconciliations with the venue completed.", "session_id"),
    _s("lyra_reconciliation_differences", "counter", "Differences reconciliation found, by kind.",
       "session_id", "kind"),
    _s("lyra_reconciliation_balances_ok", "gauge", "1 if the last reconciliation's balances matched.",
       "session_id"),
    _s("lyra_risk_limit_drawdown_ratio", "gauge", "The drawdown breaker's limit (ratio), if configured.",
       "session_id"),
    _s("lyra_equity", "gauge", "Account equity at the last marks (quote currency).", "session_id"),
    _s("lyra_equity_peak", "gauge", "Highest equity seen by this process (for drawdown).", "session_id"),
    _s("lyra_drawdown_ratio", "gauge", "1 - equity / peak equity (0 at a new high).", "session_id"),
    _s("lyra_position_quantity", "gauge", "Net position (signed).", "session_id", "instrument"),
    _s("lyra_pnl_realized", "gauge", "Realised PnL, gross of fees (quote currency).", "session_id",
       "instrument"),
    _s("lyra_pnl_unrealized", "gauge", "Unrealised PnL at the last mark (quote currency).", "session_id",
       "instrument"),
    _s("lyra_balance", "gauge", "Cash balance per currency.", "session_id", "currency"),
    _s("lyra_audit_entries_appended", "counter", "Event-log entries this process committed.", "session_id"),
    _s("lyra_audit_append_latency_seconds", "histogram", "Time to commit one batch of event-log entries.",
       "session_id"),
    _s("lyra_instrument_data_timestamp_seconds", "gauge",
       "Time of the last market event the session processed, per instrument.", "session_id", "instrument"),
    _s("lyra_fill_slippage_ratio", "histogram",
       "Fill price against the decision price (the mark the strategy saw), signed: > 0 costs.",
       "session_id"),
    _s("lyra_slippage_cost", "gauge",
       "Sum of (fill - decision price) x quantity, signed as a cost (quote currency).", "session_id"),
    _s("lyra_venue_errors", "counter", "Errors the venue's API answered, by error class.", "session_id",
       "venue", "error"),
    _s("lyra_venue_rate_limits", "counter", "Requests the venue refused for rate limiting.", "session_id",
       "venue"),
    _s("lyra_risk_limit_var", "gauge", "The pre-trade VaR limit (quote currency), if configured.",
       "session_id"),
    _s("lyra_risk_var", "gauge",
       "The book's normal VaR now (quote currency; the pre-trade check's confidence, horizon and "
       "covariance model), when a VaR limit gives the session a model.", "session_id"),
    _s("lyra_breaker_drawdown_ratio", "gauge",
       "Drawdown as the drawdown breaker sees it (from its own peak), if configured.", "session_id"),
    # --- market-data feeds of the process (lyra.metrics.feeds; labels come from the config)
    _s("lyra_feed_messages", "counter", "Websocket messages passed on, by channel (trades, bbo, book).",
       "feed", "instrument", "channel"),
    _s("lyra_feed_last_message_timestamp_seconds", "gauge", "Wall time of the feed's last websocket message.",
       "feed", "instrument"),
    _s("lyra_feed_stale", "gauge", "1 while the feed's stale alarm is raised.", "feed", "instrument"),
    _s("lyra_feed_reconnects", "counter", "Websocket reconnects.", "feed", "instrument"),
    _s("lyra_feed_gaps", "counter", "Trade-id gaps detected (each filled by REST).", "feed", "instrument"),
    _s("lyra_feed_backfilled_trades", "counter", "Trades fetched by REST to fill gaps and reconnects.",
       "feed", "instrument"),
    _s("lyra_feed_bad_messages", "counter", "Malformed messages logged and skipped.", "feed", "instrument"),
    _s("lyra_feed_book_checksum_failures", "counter",
       "Order books whose venue checksum did not match (the feed resubscribed).", "feed", "instrument"),
    # --- the scheduler daemon (its own /metrics)
    _s("lyra_scheduler_up", "gauge", "1 while this scheduler daemon runs its loop.", source="scheduler"),
    _s("lyra_scheduler_tick_timestamp_seconds", "gauge", "Wall time of the daemon's last completed tick.",
       source="scheduler"),
    _s("lyra_scheduler_lag_seconds", "gauge",
       "How late the daemon started its last fire (start - due fire time).", source="scheduler"),
    _s("lyra_scheduler_runs_started", "counter", "Runs this daemon started.", source="scheduler"),
    _s("lyra_scheduler_runs_running", "gauge", "Runs this daemon is running now.", source="scheduler"),
    _s("lyra_scheduler_runs_ended", "counter", "Runs of this daemon that ended, by status.", "status",
       source="scheduler"),
    _s("lyra_scheduler_run_duration_seconds", "histogram", "Duration of the runs this daemon saw end.",
       source="scheduler"),
    _s("lyra_scheduler_db_errors", "counter", "Ticks the database failed (the daemon retried).",
       source="scheduler"),
    # --- the database, as lyra serve sees it (what a dead process cannot report)
    _s("lyra_db_up", "gauge", "1 if the database answered the last collection.", source="database"),
    _s("lyra_db_collect_duration_seconds", "gauge", "Time the database collection took.", source="database"),
    _s("lyra_session_up", "gauge", "Per session marked running: 1 if its owner is alive, 0 if stale.",
       "session_id", source="database"),
    _s("lyra_session_heartbeat_age_seconds", "gauge", "Seconds since the session's last heartbeat.",
       "session_id", source="database"),
    _s("lyra_session_lease_held", "gauge", "1 if the session's lease is held by a live owner.", "session_id",
       source="database"),
    _s("lyra_session_lease_epoch", "gauge", "The session's lease epoch (+1 at every takeover).", "session_id",
       source="database"),
    _s("lyra_sessions", "gauge", "Sessions by effective status.", "status", source="database"),
    _s("lyra_session_orders_unknown", "gauge", "Orders in unknown state, per running session.", "session_id",
       source="database"),
    _s("lyra_trading_state", "gauge", "Trading state per scope (1 = current).", "scope", "state",
       source="database"),
    _s("lyra_kill_switch_engaged", "gauge", "1 while a kill-switch request is open (not re-armed).", "scope",
       source="database"),
    _s("lyra_breaker_tripped", "gauge", "Breaker trips still in force, by breaker.", "breaker",
       source="database"),
    _s("lyra_breaker_trips", "counter", "Breaker trips recorded, by breaker.", "breaker", source="database"),
    _s("lyra_audit_head_seq", "gauge", "Sequence number of the event log's chain head.", source="database"),
    _s("lyra_audit_head_timestamp_seconds", "gauge", "Time of the chain head's entry.", source="database"),
    _s("lyra_audit_head_consistent", "gauge", "1 if the head row matches the last entry's seq and hash.",
       source="database"),
    _s("lyra_audit_verify_ok", "gauge", "1 if the last full `audit verify` found no problem.",
       source="database"),
    _s("lyra_audit_verify_timestamp_seconds", "gauge", "When the last full verification ran.",
       source="database"),
    _s("lyra_backups", "gauge", "Whole backups in the backup folder.", source="database"),
    _s("lyra_backup_last_timestamp_seconds", "gauge", "When the newest backup was taken.", source="database"),
    _s("lyra_backup_last_verified_timestamp_seconds", "gauge",
       "When the newest backup that passed verification was taken.", source="database"),
    _s("lyra_backup_verify_failed", "gauge", "1 if the newest backup's last verification failed.",
       source="database"),
    _s("lyra_runs", "counter", "Notebook runs ended, by status and schedule ('' for ad-hoc).", "status",
       "schedule", source="database"),
    _s("lyra_runs_running", "gauge", "Notebook runs running now.", source="database"),
    _s("lyra_run_duration_seconds", "gauge", "Duration of the last ended run, per schedule.", "schedule",
       source="database"),
    _s("lyra_schedule_next_fire_timestamp_seconds", "gauge", "Next fire time of each active schedule.",
       "schedule", source="database"),
    _s("lyra_schedule_lag_seconds", "gauge",
       "How far past its due fire time an active schedule is (0: not due).",
       "schedule", source="database"),
    _s("lyra_metrics_targets", "gauge", "Metrics endpoints recorded in the database, by kind.", "kind",
       source="database"),
)

BY_NAME: dict[str, MetricSpec] = {s.name: s for s in SPECS}


def sample_names(spec: MetricSpec) -> tuple[str, ...]:
    """The sample names a family produces in the text exposition."""
    n = spec.name
    if spec.type == "counter":
        return (n + "_total", n + "_created")
    if spec.type == "info":
        return (n + "_info",)
    if spec.type == "histogram":
        return (n + "_bucket", n + "_sum", n + "_count", n + "_created")
    return (n,)


def exported_sample_names() -> frozenset[str]:
    """Every sample name Lyra can export (what a dashboard or rule may query)."""
    return frozenset(x for s in SPECS for x in sample_names(s))


__all__ = ["BY_NAME", "SPECS", "MetricSpec", "exported_sample_names", "sample_names"]
