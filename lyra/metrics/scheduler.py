"""The scheduler daemon's own ``/metrics`` (``lyra schedule run``).

The daemon counts as it works (:class:`lyra.ops.scheduler.SchedulerCounts`: ticks, runs
started and how late, runs ended by status and their durations, database errors);
:class:`SchedulerCollector` reads those counts, and the runs it is running, when Prometheus
scrapes. :func:`scheduler_metrics` serves them on loopback and records the endpoint in the
database (kind ``scheduler``), so ``lyra serve``'s targets file lists it beside the sessions.

What the daemon cannot say once it is dead (schedules past due, runs by outcome) comes from
the database collector of ``lyra serve`` (``lyra_schedule_lag_seconds``, ``lyra_runs_total``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from lyra.metrics.catalogue import BY_NAME
from lyra.metrics.endpoint import MetricsEndpoint
from lyra.metrics.hist import PlainHistogram
from lyra.metrics.session import standard_registry

log = logging.getLogger(__name__)

#: Notebook runs: seconds to hours.
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0)
_STATUSES = ("finished", "failed", "timeout")


def _help(name: str) -> str:
    return BY_NAME[name].help


class SchedulerCollector(Collector):
    """``lyra_scheduler_*`` of one :class:`~lyra.ops.scheduler.Scheduler` (module doc)."""

    def __init__(self, scheduler: Any) -> None:
        self.sch = scheduler
        self.hist = PlainHistogram(DURATION_BUCKETS)

    def describe(self) -> list[Any]:
        return []  # collected dynamically

    def collect(self) -> Iterator[Any]:
        k = self.sch.counts
        up = GaugeMetricFamily("lyra_scheduler_up", _help("lyra_scheduler_up"))
        up.add_metric([], 0.0 if self.sch.stopping else 1.0)
        yield up
        tick = GaugeMetricFamily("lyra_scheduler_tick_timestamp_seconds",
                                 _help("lyra_scheduler_tick_timestamp_seconds"))
        if k.last_tick_ms:
            tick.add_metric([], k.last_tick_ms / 1000)
        yield tick
        lag = GaugeMetricFamily("lyra_scheduler_lag_seconds", _help("lyra_scheduler_lag_seconds"))
        if k.last_lag_ms is not None:
            lag.add_metric([], k.last_lag_ms / 1000)
        yield lag
        started = CounterMetricFamily("lyra_scheduler_runs_started", _help("lyra_scheduler_runs_started"))
        started.add_metric([], k.started)
        yield started
        running = GaugeMetricFamily("lyra_scheduler_runs_running", _help("lyra_scheduler_runs_running"))
        running.add_metric([], len(self.sch.children))
        yield running
        ended = CounterMetricFamily("lyra_scheduler_runs_ended", _help("lyra_scheduler_runs_ended"),
                                    labels=["status"])
        by_status = dict(k.ended)
        for status in sorted(set(_STATUSES) | set(by_status)):
            ended.add_metric([status], by_status.get(status, 0))
        yield ended
        durations = k.durations_s
        while durations:  # the daemon appends, the scrape drains into the histogram
            self.hist.observe(durations.pop())
        hist = HistogramMetricFamily("lyra_scheduler_run_duration_seconds",
                                     _help("lyra_scheduler_run_duration_seconds"))
        hist.add_metric([], self.hist.cumulative(), self.hist.sum)
        yield hist
        errors = CounterMetricFamily("lyra_scheduler_db_errors", _help("lyra_scheduler_db_errors"))
        errors.add_metric([], k.db_errors)
        yield errors


def scheduler_metrics(scheduler: Any, *, port: int = 0) -> MetricsEndpoint | None:
    """Serve ``scheduler``'s metrics on loopback (recorded in the database as
    ``scheduler:<owner>``). Never raises: the daemon schedules with or without them."""
    try:
        reg = standard_registry()
        reg.register(SchedulerCollector(scheduler))
        return MetricsEndpoint(reg, kind="scheduler", name=scheduler.owner, port=port,
                               engine=scheduler.engine).start()
    except Exception as exc:
        log.warning("scheduler %s: metrics not served (%s: %s); scheduling goes on", scheduler.owner,
                    type(exc).__name__, exc)
        return None


__all__ = ["DURATION_BUCKETS", "SchedulerCollector", "scheduler_metrics"]
