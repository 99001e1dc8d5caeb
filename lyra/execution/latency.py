"""Network latency between us and a (paper) venue, applied on the session's clock.

``to_venue_ms``: from ``submit``/``cancel`` to the venue seeing the request; the order cannot
match before then. ``to_us_ms``: from the venue doing something (accept, fill, cancel) to us
receiving the report. ``jitter_ms`` adds a uniform ``[0, jitter_ms]`` on each leg, drawn from a
seeded generator so a replay gives the same delays. Each leg is FIFO, as over one TCP
connection: jitter never lets a later message overtake an earlier one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from lyra.core.errors import ValidationError


@dataclass(slots=True)
class LatencyModel:
    """Deterministic order-to-venue and venue-to-us delays in ms (see the module doc)."""

    to_venue_ms: int = 0
    to_us_ms: int = 0
    jitter_ms: int = 0
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _last_out: int = field(init=False, repr=False, default=-(2**62))
    _last_in: int = field(init=False, repr=False, default=-(2**62))

    def __post_init__(self) -> None:
        for name in ("to_venue_ms", "to_us_ms", "jitter_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValidationError(f"latency.{name}", v, "must be a whole number of ms >= 0")
        self._rng = random.Random(self.seed)

    def _jitter(self) -> int:
        return self._rng.randint(0, self.jitter_ms) if self.jitter_ms else 0

    def arrival(self, sent_ms: int) -> int:
        """When a request sent at ``sent_ms`` reaches the venue."""
        t = sent_ms + self.to_venue_ms + self._jitter()
        if t < self._last_out:
            t = self._last_out
        self._last_out = t
        return t

    def delivery(self, venue_ms: int) -> int:
        """When a report the venue produced at ``venue_ms`` reaches us."""
        t = venue_ms + self.to_us_ms + self._jitter()
        if t < self._last_in:
            t = self._last_in
        self._last_in = t
        return t
