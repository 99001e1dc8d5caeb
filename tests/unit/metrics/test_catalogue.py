"""The metric catalogue follows Prometheus naming, and no label can grow without bound."""

from __future__ import annotations

import re

import pytest

from lyra.metrics.catalogue import SPECS, exported_sample_names, sample_names
from lyra.metrics.labels import BoundedLabel, reason_token

# Labels that would create a series per order, fill or person.
UNBOUNDED = {"client_order_id", "order_id", "fill_id", "user", "user_id", "actor", "venue_order_id", "run_id",
             "decision_id", "request_id"}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_prometheus_naming(spec):
    assert re.fullmatch(r"lyra_[a-z][a-z0-9_]*", spec.name)
    assert spec.type in ("counter", "gauge", "histogram", "info")
    assert not spec.name.endswith("_total"), "counters get _total from the client library"
    assert not spec.name.endswith("_info"), "info metrics get _info from the client library"
    assert not re.search(r"_(ms|millis|milliseconds|minutes|hours|bytes_kb|percent)(_|$)", spec.name), \
        "base units: seconds, bytes, ratios"
    if "latency" in spec.name or "duration" in spec.name or spec.name.endswith("_age"):
        assert spec.name.endswith("_seconds")
    assert not set(spec.labels) & UNBOUNDED
    assert spec.help.endswith(".") and len(spec.help) > 10


def test_names_are_unique_and_samples_named():
    names = [s.name for s in SPECS]
    assert len(names) == len(set(names))
    assert "lyra_orders_submitted_total" in exported_sample_names()
    assert sample_names(next(s for s in SPECS if s.name == "lyra_order_ack_latency_seconds"))[0] == \
        "lyra_order_ack_latency_seconds_bucket"


def test_reason_tokens_are_short_and_free_of_numbers():
    assert reason_token("Insufficient funds: need 12.5 USD") == "insufficient_funds"
    assert reason_token("notional 10234.55 > 10000") == "notional"
    assert reason_token("") == "unspecified"
    assert reason_token("  Rate limit exceeded (429)  ") == "rate_limit_exceeded"


def test_bounded_label_caps_distinct_values():
    lbl = BoundedLabel(3)
    out = {lbl(f"reason {chr(97 + i)} x") for i in range(10)}
    assert out == {"reason_a_x", "reason_b_x", "reason_c_x", "other"}
    assert lbl("reason a x") == "reason_a_x"  # a value seen before keeps its label
    raw = BoundedLabel(2, normalise=False)
    assert [raw("halted"), raw("reducing"), raw("active"), raw("halted")] == ["halted", "reducing", "other", "halted"]
