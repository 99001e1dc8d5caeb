"""LiveFeed judges quiet on its clock (the stale alarm), without a network
(the websocket side is tests/integration/feeds/test_live_fake.py)."""

from __future__ import annotations

import pytest

from lyra.core.clock import ManualClock
from lyra.feeds.live import FeedSource, LiveFeed


def test_stale_alarm_once_per_quiet_spell_on_the_feed_clock() -> None:
    clock = ManualClock(1_700_000_000_000)
    alarms: list[tuple[str, float]] = []
    feed = LiveFeed([FeedSource("binance", "BTC/USDT", object()),
                     FeedSource("binance", "ETH/USDT", object(), label="eth")],
                    stale_after=30.0, clock=clock, on_stale=lambda n, q: alarms.append((n, q)))
    assert feed.check_stale() == []
    clock.advance(30.0)
    assert feed.check_stale() == []  # 30 s is not *more* than 30 s
    clock.advance(0.001)
    assert feed.check_stale() == ["binance", "eth"]
    assert alarms == [("binance", pytest.approx(30.001)), ("eth", pytest.approx(30.001))]
    clock.advance(600.0)
    assert feed.check_stale() == []  # the same silence raises no second alarm
    assert [s.stale_alarms for s in feed.stats.values()] == [1, 1]
    # an update on one source ends its quiet spell; the next silence alarms again
    feed._touch(feed.sources[1])
    assert not feed.stats["eth"].stale and feed.stats["binance"].stale
    clock.advance(30.5)
    assert feed.check_stale() == ["eth"]
    assert feed.stats["eth"].stale_alarms == 2 and feed.stats["binance"].stale_alarms == 1

