"""Metric names in a PromQL expression (for the rule and dashboard checks)."""

from __future__ import annotations

import re

#: Label matchers, grouping and matching clauses: names inside them are labels, not metrics.
_LABEL_PARTS = re.compile(r"\{[^}]*\}|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_STRINGS = re.compile(r'"[^"]*"')
_NAME = re.compile(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b")
_FUNCS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "deriv", "time", "vector",
    "histogram_quantile", "clamp_min", "clamp_max", "abs", "and", "or", "unless", "changes", "bool",
    "label_values", "offset",
}

#: Series Prometheus and prometheus_client's process collector give every target.
STANDARD = {"up", "process_resident_memory_bytes", "process_cpu_seconds_total", "process_start_time_seconds",
            "process_open_fds", "process_virtual_memory_bytes", "process_max_fds", "scrape_duration_seconds"}


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` reads (durations like ``[5m]`` and numbers excluded)."""
    text = _STRINGS.sub("", _LABEL_PARTS.sub(" ", expr))
    text = re.sub(r"\[[^\]]*\]", " ", text)
    return {n for n in _NAME.findall(text) if n not in _FUNCS and not n.startswith("__")}
