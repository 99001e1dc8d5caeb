"""The live feeds running in this process, for whoever reports on them.

Every :class:`~lyra.feeds.live.LiveFeed` registers itself here when it is built; the metrics
(:mod:`lyra.metrics.feeds`) read each feed's :class:`~lyra.feeds.live.SourceStats` when
Prometheus scrapes. The feed keeps counting as it always did, so watching it costs its loop
nothing. A feed is reported from the moment it is built until it is closed (:func:`unregister`,
called by ``LiveFeed.close``); the registry holds weak references only, so one dropped without
closing disappears too.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

_lock = threading.Lock()
_feeds: weakref.WeakSet[Any] = weakref.WeakSet()


def register(feed: Any) -> None:
    """Note ``feed`` (a LiveFeed) as running in this process (called by LiveFeed itself)."""
    with _lock:
        _feeds.add(feed)


def unregister(feed: Any) -> None:
    """``feed`` is closed: no longer report it (its series end with it)."""
    with _lock:
        _feeds.discard(feed)


def live_feeds() -> list[Any]:
    """The LiveFeeds of this process that are still alive (in no particular order)."""
    with _lock:  # a feed built on another thread must not change the set while we copy it
        return list(_feeds)


__all__ = ["live_feeds", "register", "unregister"]
