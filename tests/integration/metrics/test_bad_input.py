"""Metrics are never a reason to stop: a database that cannot record the endpoint, a recorded
endpoint whose process died, a broken feed in the feed collector, a venue-error counter that
fails — each is said clearly, and the work (serving, scheduling, trading) goes on."""

from __future__ import annotations

import urllib.request

import ccxt
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from lyra.metrics import MetricsEndpoint
from lyra.metrics.commission import WARN, _endpoints
from lyra.metrics.execution import VenueErrors
from lyra.metrics.feeds import FeedCollector
from lyra.store import create_engine_for


def test_an_unmigrated_database_is_named_and_the_endpoint_still_answers(tmp_path):
    eng = create_engine_for(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables: `lyra init` never ran
    try:
        with MetricsEndpoint(CollectorRegistry(), kind="session", name="s9", engine=eng) as ep:
            assert ep.port > 0
            (w,) = ep.warnings
            assert "session:s9" in w and "could not record the endpoint" in w and "lyra init" in w
            with urllib.request.urlopen(ep.url, timeout=30) as r:
                assert r.status == 200
    finally:
        eng.dispose()


def test_a_dead_endpoint_is_a_warning_with_its_fix(engine):
    ep = MetricsEndpoint(CollectorRegistry(), kind="session", name="gone", engine=engine).start()

    ep._server.shutdown()  # the process "dies": its row stays, nothing answers on the port
    ep._server.server_close()
    try:
        check = _endpoints(engine)
        assert check.status == WARN and "session:gone" in check.detail and "lyra session resume" in check.fix
    finally:
        ep._server = None
        ep.stop()


def test_a_broken_feed_does_not_break_the_scrape(caplog):
    class Broken:
        sources = (object(),)

        @property
        def clock(self):
            raise RuntimeError("feed torn down mid-scrape")

    reg = CollectorRegistry()
    reg.register(FeedCollector(lambda: [Broken()]))
    text = generate_latest(reg).decode()
    assert "# TYPE lyra_feed_gaps_total counter" in text  # the families are still declared
    assert "cannot read feed" in caplog.text


def test_the_venue_error_counter_never_changes_what_the_broker_sees():
    class Exchange:
        id = "fakevenue"

        def fetch(self, *a, **k):
            raise ccxt.RateLimitExceeded("429 slow down")

    ex = Exchange()
    counter = VenueErrors("fakevenue").attach(ex)
    counter.count = None  # type: ignore[assignment]  # counting itself breaks...
    with pytest.raises(ccxt.RateLimitExceeded, match="slow down"):  # ...the broker still sees the venue's error
        ex.fetch("https://x")
    counter.detach()
    assert "fetch" not in vars(ex)
