"""Prometheus metrics from every long-running Lyra process.

- :func:`session_metrics` -- attach to a session and serve its ``/metrics`` on loopback
  (``lyra session start`` and ``lyra.open_session(...).run()`` do it).
- :class:`DatabaseCollector` -- what a dead process cannot report, read from the database
  (stale sessions, leases, kill switch, breakers, audit chain, runs and schedules); served by
  ``lyra serve`` (:func:`serve_metrics`) and ``lyra metrics serve``.
- :func:`write_targets` -- the Prometheus ``file_sd`` targets file of every recorded endpoint.
- :class:`FeedCollector` -- ``lyra_feed_*`` of the live feeds in this process (sessions serve it).
- :func:`scheduler_metrics` -- the scheduler daemon's own ``/metrics`` (``lyra schedule run``).
- :data:`SPECS` -- every metric exported (name, type, help, labels).

Environment: ``LYRA_METRICS=off`` switches session metrics off, ``LYRA_METRICS_PORT`` picks a
session's port (default 0: ephemeral, recorded in the database), ``LYRA_METRICS_LINGER_S``
keeps a finished session's ``/metrics`` up a little longer for a last scrape.
"""

from lyra.metrics.catalogue import SPECS, MetricSpec, exported_sample_names
from lyra.metrics.database import DatabaseCollector
from lyra.metrics.endpoint import MetricsEndpoint, read_endpoints
from lyra.metrics.feeds import FeedCollector
from lyra.metrics.scheduler import scheduler_metrics
from lyra.metrics.serve import ServeMetrics, serve_metrics, write_targets
from lyra.metrics.session import SessionMetrics, session_metrics

__all__ = [
    "SPECS",
    "DatabaseCollector",
    "FeedCollector",
    "MetricSpec",
    "MetricsEndpoint",
    "ServeMetrics",
    "SessionMetrics",
    "exported_sample_names",
    "read_endpoints",
    "scheduler_metrics",
    "serve_metrics",
    "session_metrics",
    "write_targets",
]
