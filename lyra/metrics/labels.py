"""Label values that cannot grow without bound.

Prometheus keeps one time series per label combination: a label fed with order ids, user ids
or free-text reasons ("notional 10234.55 > 10000") would create a series per order. Reasons
and check names go through :class:`BoundedLabel`: normalised to a short token, and past
``limit`` distinct values everything new is ``other``.
"""

from __future__ import annotations

import re

#: What values past the limit become.
OTHER = "other"
_NOT_TOKEN = re.compile(r"[^a-z0-9_]+")


def reason_token(text: str) -> str:
    """A short token for a free-text reason: its first words, lower case, digits dropped
    (``"Insufficient funds: need 12.5 USD"`` -> ``insufficient_funds``)."""
    head = re.split(r"[:(\[\d]", text.strip().lower(), maxsplit=1)[0]
    words = [w for w in _NOT_TOKEN.sub(" ", head).split() if w][:3]
    return "_".join(words)[:40] or "unspecified"


class BoundedLabel:
    """Maps values to at most ``limit`` distinct label values (then ``other``)."""

    def __init__(self, limit: int = 25, *, normalise: bool = True) -> None:
        self.limit = limit
        self.normalise = normalise
        self._seen: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        got = self._seen.get(value)
        if got is not None:
            return got
        token = reason_token(value) if self.normalise else (value[:40] or "unspecified")
        distinct = set(self._seen.values())
        if token not in distinct and len(distinct) >= self.limit:
            token = OTHER
        if len(self._seen) < 10 * self.limit:  # the cache itself stays bounded too
            self._seen[value] = token
        return token


__all__ = ["BoundedLabel", "reason_token"]
