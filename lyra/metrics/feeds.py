"""Market-data feed metrics, read from the feeds' own counters when Prometheus scrapes.

A :class:`~lyra.feeds.live.LiveFeed` already counts, per source, the messages it passed on,
its reconnects, the trade-id gaps it found and the trades it fetched by REST to fill them, the
books whose venue checksum failed, and when its last websocket message came. Every LiveFeed
registers itself in :mod:`lyra.feeds.observer`; :class:`FeedCollector` turns those counters
into ``lyra_feed_*`` families at scrape time, so the feed's loop pays nothing for them.

Labels are ``feed`` (the source's name: the venue, or the label given to tell two sources on
one venue apart) and ``instrument`` (``venue:symbol``): both come from the configuration, not
from the data, and are capped anyway (:class:`~lyra.metrics.labels.BoundedLabel`).

A replayed feed has no connection to lose: its progress is ``lyra_session_events_processed``
and, per instrument, ``lyra_instrument_data_timestamp_seconds`` (from the session).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lyra.feeds.observer import live_feeds
from lyra.metrics.catalogue import BY_NAME
from lyra.metrics.labels import BoundedLabel

log = logging.getLogger(__name__)

#: SourceStats field -> counter family (labels feed, instrument)
_COUNTERS = (
    ("reconnects", "lyra_feed_reconnects"),
    ("gaps", "lyra_feed_gaps"),
    ("backfilled", "lyra_feed_backfilled_trades"),
    ("bad_messages", "lyra_feed_bad_messages"),
    ("checksum_failures", "lyra_feed_book_checksum_failures"),
)


def _family(kind: type, name: str) -> Any:
    spec = BY_NAME[name]
    return kind(name, spec.help, labels=list(spec.labels))


class FeedCollector(Collector):
    """``lyra_feed_*`` of every live feed in this process (see the module doc). ``feeds``
    (default: :func:`lyra.feeds.observer.live_feeds`) is injectable for tests."""

    def __init__(self, feeds: Callable[[], list[Any]] = live_feeds) -> None:
        self._feeds = feeds
        self._feed = BoundedLabel(20, normalise=False)
        self._instrument = BoundedLabel(200, normalise=False)

    def describe(self) -> list[Any]:
        return []  # collected dynamically

    def collect(self) -> Iterator[Any]:
        msgs = _family(CounterMetricFamily, "lyra_feed_messages")
        last = _family(GaugeMetricFamily, "lyra_feed_last_message_timestamp_seconds")
        stale = _family(GaugeMetricFamily, "lyra_feed_stale")
        counters = {field: _family(CounterMetricFamily, name) for field, name in _COUNTERS}
        for feed in self._feeds():
            try:
                self._one(feed, msgs, last, stale, counters)
            except Exception:  # a scrape must not fail on one odd feed
                log.warning("metrics: cannot read feed %r", feed, exc_info=True)
        yield msgs
        yield last
        yield stale
        yield from counters.values()

    def _one(self, feed: Any, msgs: Any, last: Any, stale: Any, counters: dict[str, Any]) -> None:
        clock = feed.clock
        # The feed stamps its last message on its monotonic clock; its wall time is then
        # now - (how long ago), both on the feed's own clock (a test's ManualClock included).
        now_s, mono = clock.now_ms() / 1000, clock.monotonic_s()
        for src in feed.sources:
            st = feed.stats.get(src.name)
            if st is None:
                continue
            labels = [self._feed(src.name), self._instrument(src.instrument_id)]
            for channel, n in (("trades", st.trades - st.backfilled), ("bbo", st.quotes), ("book", st.books)):
                if channel in src.channels:
                    msgs.add_metric([*labels, channel], n)
            if st.trades - st.backfilled or st.quotes or st.books:  # else no message yet: no time
                last.add_metric(labels, now_s - max(0.0, mono - st.last_update))
            stale.add_metric(labels, 1.0 if st.stale else 0.0)
            for field, fam in counters.items():
                fam.add_metric(labels, getattr(st, field))


__all__ = ["FeedCollector"]
