"""A session's /metrics on both databases: served on loopback, recorded in the database, and
its counters equal to what the database holds (counted independently with SQL)."""

from __future__ import annotations

import socket
import urllib.request
from decimal import Decimal

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from lyra.metrics import SessionMetrics, read_endpoints, session_metrics
from lyra.metrics.catalogue import exported_sample_names
from lyra.session.factory import open_session
from lyra.store.tables import events, fills
from lyra.testing.sessions import demo_config

# Small limits make risk deny some orders, so rejections by check are exercised too.
RISK = {"defaults": {"max_order_notional": "200"}}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    total = 0.0
    found = False
    for (n, lbls), v in samples.items():
        d = dict(lbls)
        if n == name and all(d.get(k) == v2 for k, v2 in labels.items()):
            total += v
            found = True
    assert found, f"{name} {labels} not exported"
    return total


def kinds(engine, sid: str) -> dict[str, int]:
    with engine.connect() as c:
        return dict(c.execute(sa.select(events.c.kind, sa.func.count()).where(events.c.session_id == sid)
                              .group_by(events.c.kind)).all())


def test_session_metrics_match_the_database(session_home, tmp_path):
    engine = session_home["engine"]
    home = session_home["home"]
    cfg = demo_config(session_id="m1", end="2017-10-01", quantity="0.05", risk=RISK)
    session = open_session(cfg, engine=engine, market_dir=home / "market",
                           jsonl_path=home / "audit" / "events.jsonl")
    with session_metrics(session, port=0) as attached:
        ep = attached.endpoint
        assert ep is not None and ep.port > 0
        rows = read_endpoints(engine)
        assert [(r["target"], r["address"], r["port"]) for r in rows] == [("session:m1", "127.0.0.1", ep.port)]
        result = session.run()
        samples = scrape(ep.url)
    # Stopped cleanly: the record is gone, the port closed.
    assert read_endpoints(engine) == []
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", ep.port), timeout=5):
        pass

    k = kinds(engine, "m1")
    assert result.orders > 5 and k.get("order.deny", 0) > 0, (result, k)
    assert value(samples, "lyra_orders_submitted_total", session_id="m1") == k["order.submit"]
    assert value(samples, "lyra_orders_rejected_total", source="risk") == k["order.deny"]
    assert value(samples, "lyra_fills_total") == k.get("order.fill", 0) + k.get("order.partial_fill", 0)
    decisions = k["risk.decision"]
    assert value(samples, "lyra_risk_checks_total") == decisions
    assert value(samples, "lyra_risk_checks_total", result="denied") == k["order.deny"]
    with engine.connect() as c:
        fee_sum = sum((Decimal(f) for (f,) in c.execute(sa.select(fills.c.fee).where(fills.c.session_id == "m1"))),
                      Decimal(0))
    assert value(samples, "lyra_fees_total") == pytest.approx(float(fee_sum), rel=1e-9)
    assert value(samples, "lyra_equity", session_id="m1") == pytest.approx(float(result.equity), rel=1e-9)
    assert value(samples, "lyra_session_events_processed_total") == result.events
    assert value(samples, "lyra_order_fill_latency_seconds_count") == k["order.submit"] - k.get("order.cancel", 0) \
        - k.get("order.reject", 0) - k.get("order.expire", 0)
    assert value(samples, "lyra_session_info", mode="paper", strategy="sma_cross") == 1
    # Nothing exported that the catalogue does not know (dashboards and rules rely on it).
    ours = {n for (n, _l) in samples if n.startswith("lyra_")}
    assert ours <= exported_sample_names(), ours - exported_sample_names()


def test_a_resumed_session_counts_from_its_log(session_home):
    engine = session_home["engine"]
    home = session_home["home"]
    cfg = demo_config(session_id="m2", end="2017-09-15")
    open_session(cfg, engine=engine, market_dir=home / "market").run(max_events=200)
    k = kinds(engine, "m2")
    assert k.get("order.submit", 0) > 0
    # A new process on the same session: its counters start from what the log holds.
    s2 = open_session(cfg, engine=engine, market_dir=home / "market")
    m = SessionMetrics(s2).attach()
    try:
        assert m.counts[("lyra_orders_submitted",)] == k["order.submit"]
    finally:
        m.detach()
    assert "mirror" not in vars(s2.log) and "poll" not in vars(s2.control)


def test_a_port_in_use_falls_back_and_the_session_runs(session_home):
    engine = session_home["engine"]
    home = session_home["home"]
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    try:
        session = open_session(demo_config(session_id="m3", end="2017-08-15"), engine=engine,
                               market_dir=home / "market")
        with session_metrics(session, port=busy) as attached:
            ep = attached.endpoint
            assert ep is not None
            assert ep.port not in (0, busy)
            assert any(f"port {busy}" in w and "ephemeral" in w for w in ep.warnings), ep.warnings
            result = session.run()
            assert value(scrape(ep.url), "lyra_orders_submitted_total") == kinds(engine, "m3").get("order.submit", 0)
        assert result.events > 0
    finally:
        taken.close()


def test_metrics_off_leaves_the_session_untouched(session_home, monkeypatch):
    engine = session_home["engine"]
    home = session_home["home"]
    monkeypatch.setenv("LYRA_METRICS", "off")
    session = open_session(demo_config(session_id="m4", end="2017-08-10"), engine=engine, market_dir=home / "market")
    with session_metrics(session) as attached:
        assert attached.endpoint is None
        assert "mirror" not in vars(session.log) and "commit" not in vars(session.recorder.group)
        result = session.run()
    assert result.events > 0 and read_endpoints(engine) == []
