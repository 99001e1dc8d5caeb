"""Execution-quality and risk-limit metrics of a session: slippage against the decision price,
the venue's errors and rate limits, the VaR limit and the drawdown breaker's view.

All observe from outside, like :mod:`lyra.metrics.session`:

- :class:`DecisionPrices` notes the mark each order was decided at. The gateway's ``submit``
  of this session is wrapped (one dict store per intent): the strategy decided at the mark it
  saw, and ``risk.decision`` entries carry the instrument and that time, so when the committed
  entries come through, each approved order gets its decision price, and each fill its
  slippage. Neither the fill nor the submit entry carries that price, and the mark may have
  moved by the time a batch of entries commits: hence the note at submit time.
- :class:`VenueErrors` wraps ``fetch`` of a ccxt broker's exchange (every REST call of the
  broker passes there): what ccxt raises is counted by class, rate limits separately, then
  raised on unchanged. A paper broker has no exchange: nothing is wrapped.
- :func:`risk_families`, read at scrape time: the configured VaR limit and the drawdown the
  drawdown breaker sees from its own peak (it survives scrapes missing a peak).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from lyra.metrics.catalogue import BY_NAME
from lyra.metrics.labels import BoundedLabel

log = logging.getLogger(__name__)

#: Signed slippage as a ratio of the decision price: improvement below 0, cost above.
SLIPPAGE_BUCKETS = (-0.01, -0.005, -0.002, -0.001, -0.0005, -0.0001, 0.0, 0.0001, 0.0005, 0.001, 0.002,
                    0.005, 0.01, 0.02, 0.05)
#: Decision marks noted but never claimed (intents held back, resumed sessions) are dropped
#: past this many, oldest first.
_MAX_NOTES = 4096


class DecisionPrices:
    """Decision price per order (see the module doc). ``note`` runs on the session's loop;
    ``decided``/``price`` on the commit path of the same loop."""

    def __init__(self, marks: dict[str, Any]) -> None:
        self.marks = marks
        self._at: dict[tuple[str, int], float] = {}  # (instrument, decision time) -> mark
        self._by_order: dict[str, float] = {}  # client order id -> decision price

    def note(self, intents: Any, t: int) -> None:
        """Before the gateway sees ``intents`` at time ``t``: remember the marks they saw."""
        at, marks = self._at, self.marks
        for intent in intents:
            iid = getattr(intent, "instrument_id", None)
            if iid is not None:
                m = marks.get(iid)
                if m is not None:
                    at[(iid, t)] = float(m)
        if len(at) > _MAX_NOTES:
            for k in list(at)[: len(at) - _MAX_NOTES // 2]:
                del at[k]

    def decided(self, cid: str, instrument_id: str, t: int) -> None:
        """An approved ``risk.decision`` committed: the order's decision price is the note."""
        m = self._at.get((instrument_id, t))
        if m is not None and m > 0:
            self._by_order[cid] = m
            if len(self._by_order) > _MAX_NOTES:
                for k in list(self._by_order)[: _MAX_NOTES // 2]:
                    del self._by_order[k]

    def price(self, cid: str) -> float | None:
        return self._by_order.get(cid)

    def done(self, cid: str) -> None:
        self._by_order.pop(cid, None)


class VenueErrors:
    """Counts what the venue's REST API answered with an error (see the module doc)."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.errors: dict[str, int] = {}
        self.rate_limits = 0
        self._label = BoundedLabel(25, normalise=False)
        self._lock = threading.Lock()  # the broker's stream thread calls fetch too
        self._exchange: Any = None

    def attach(self, exchange: Any) -> VenueErrors:
        """Wrap ``exchange.fetch`` (this instance only: the class is untouched)."""
        import ccxt

        inner = exchange.fetch
        rate_limited = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)

        def counted_fetch(*args: Any, **kwargs: Any) -> Any:
            try:
                return inner(*args, **kwargs)
            except ccxt.BaseError as exc:
                try:
                    self.count(type(exc).__name__, isinstance(exc, rate_limited))
                except Exception:  # counting must never change what the broker sees
                    log.debug("metrics: venue error not counted", exc_info=True)
                raise

        exchange.fetch = counted_fetch
        self._exchange = exchange
        return self

    def count(self, error: str, rate_limited: bool) -> None:
        with self._lock:
            label = self._label(error)
            self.errors[label] = self.errors.get(label, 0) + 1
            if rate_limited:
                self.rate_limits += 1

    def detach(self) -> None:
        ex = self._exchange
        if ex is not None and "fetch" in vars(ex):
            del ex.fetch
        self._exchange = None

    def families(self, sid: str) -> Iterator[Any]:
        with self._lock:
            errors, limited = dict(self.errors), self.rate_limits
        e = CounterMetricFamily("lyra_venue_errors", BY_NAME["lyra_venue_errors"].help,
                                labels=["session_id", "venue", "error"])
        for err, n in sorted(errors.items()):
            e.add_metric([sid, self.venue, err], n)
        yield e
        r = CounterMetricFamily("lyra_venue_rate_limits", BY_NAME["lyra_venue_rate_limits"].help,
                                labels=["session_id", "venue"])
        r.add_metric([sid, self.venue], limited)
        yield r


def venue_errors(session: Any) -> VenueErrors | None:
    """A :class:`VenueErrors` on the session's broker, if it talks to a ccxt exchange."""
    exchange = getattr(session.broker, "exchange", None)
    if exchange is None or not callable(getattr(exchange, "fetch", None)):
        return None
    venue = str(getattr(session.broker, "venue_name", "") or getattr(exchange, "id", "venue"))
    return VenueErrors(venue).attach(exchange)


def _portfolio_var(session: Any, cfg: Any) -> float | None:
    """The book's normal VaR as the pre-trade check computes it (its confidence and horizon,
    the session's covariance model at its data time), or None without a model."""
    from lyra.risk.var import incremental_var

    vm = getattr(session, "var_model", None)
    if vm is None or cfg is None:
        return None
    try:
        model, cols = vm.model_at(session.clock.now_ms())
        if model is None:
            return None
        holdings, marks = dict(session.holdings), dict(session.marks)
        v = [float(holdings.get(c, 0)) * float(marks.get(c, 0.0)) for c in cols]
        iv = incremental_var(v, [0.0] * len(cols), model, confidence=cfg.var_confidence,
                             horizon=cfg.var_horizon, include_mean=cfg.var_include_mean)
    except (RuntimeError, ValueError, ArithmeticError):  # changing under us: left out of this scrape
        return None
    return float(iv.var_before)


def risk_families(session: Any) -> Iterator[Any]:
    """``lyra_risk_limit_var``, ``lyra_risk_var`` (the book's VaR now) and
    ``lyra_breaker_drawdown_ratio`` (each left out when not set)."""
    sid = session.sid
    risk = session.risk
    cfg = getattr(risk, "config", None)
    var = GaugeMetricFamily("lyra_risk_limit_var", BY_NAME["lyra_risk_limit_var"].help, labels=["session_id"])
    limit = getattr(getattr(cfg, "defaults", None), "max_var", None)
    if limit is not None:
        var.add_metric([sid], float(limit))
    yield var
    now_var = GaugeMetricFamily("lyra_risk_var", BY_NAME["lyra_risk_var"].help, labels=["session_id"])
    value = _portfolio_var(session, cfg)
    if value is not None:
        now_var.add_metric([sid], value)
    yield now_var
    dd = GaugeMetricFamily("lyra_breaker_drawdown_ratio", BY_NAME["lyra_breaker_drawdown_ratio"].help,
                           labels=["session_id"])
    breakers = getattr(risk, "breakers", None)
    if getattr(getattr(breakers, "config", None), "max_drawdown_pct", None) is not None:
        acct = getattr(breakers, "_accounts", {}).get(getattr(risk, "account_id", sid))
        peak = getattr(acct, "peak", None)
        last = getattr(acct, "last_equity", None)
        if peak is not None and last is not None and peak > 0:
            dd.add_metric([sid], max(0.0, float(1 - last / peak)))
    yield dd


__all__ = ["SLIPPAGE_BUCKETS", "DecisionPrices", "VenueErrors", "risk_families", "venue_errors"]
