"""Backtesting a VaR model: exceptions, Kupiec POF and Christoffersen independence tests.

Alignment: ``var[t]`` is the VaR (a positive loss) forecast *before* period ``t`` for the P&L
``pnl[t]`` realised over period ``t``. An **exception** is a loss strictly larger than the VaR:
``pnl[t] < -var[t]``.

References: P. Kupiec (1995), "Techniques for verifying the accuracy of risk measurement
models", J. Derivatives 3(2); P. Christoffersen (1998), "Evaluating interval forecasts",
Int. Economic Review 39(4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import xlogy
from scipy.stats import chi2

from lyra.core.errors import ValidationError
from lyra.risk._validate import as_float_array, open_unit


@dataclass(frozen=True, slots=True)
class KupiecResult:
    """Kupiec proportion-of-failures (unconditional coverage) test."""

    n_obs: int
    n_exceptions: int
    expected_rate: float  #: 1 - confidence
    observed_rate: float  #: n_exceptions / n_obs
    lr: float  #: likelihood ratio, χ²(1) under the null
    p_value: float
    reject: bool  #: lr above the χ²(1) critical value at ``test_level``


@dataclass(frozen=True, slots=True)
class ChristoffersenResult:
    """Christoffersen independence test (first-order Markov exceptions) and joint test."""

    n00: int  #: no exception followed by no exception
    n01: int  #: no exception followed by an exception
    n10: int
    n11: int
    lr_ind: float  #: independence LR, χ²(1)
    p_value_ind: float
    lr_cc: float  #: conditional coverage = Kupiec LR + lr_ind, χ²(2)
    p_value_cc: float
    reject_ind: bool
    reject_cc: bool


def find_exceptions(var: ArrayLike, pnl: ArrayLike) -> NDArray[np.bool_]:
    """Boolean array, ``True`` where the realised loss exceeds the VaR (``pnl < -var``)."""
    v = as_float_array("var", var, ndim=(1,))
    p = as_float_array("pnl", pnl, ndim=(1,))
    if v.shape != p.shape:
        raise ValidationError("pnl", f"length {p.size}", f"must match var's length {v.size}")
    return np.asarray(p < -v)


def count_exceptions(var: ArrayLike, pnl: ArrayLike) -> int:
    """Number of periods whose loss exceeded the VaR."""
    return int(find_exceptions(var, pnl).sum())


def kupiec_pof(n_obs: int, n_exceptions: int, confidence: float, *, test_level: float = 0.95) -> KupiecResult:
    """Kupiec POF test: is the exception rate ``x/T`` consistent with ``p = 1 − confidence``?

    ``LR = −2·ln[(1−p)^(T−x)·p^x] + 2·ln[(1−x/T)^(T−x)·(x/T)^x]`` (with ``0·ln 0 = 0``),
    asymptotically χ²(1). It is two-sided: too few exceptions also reject.
    """
    alpha = open_unit("confidence", confidence)
    level = open_unit("test_level", test_level)
    t, x = _counts(n_obs, n_exceptions)
    p = 1.0 - alpha
    phat = x / t
    ll0 = xlogy(t - x, 1.0 - p) + xlogy(x, p)
    ll1 = xlogy(t - x, 1.0 - phat) + xlogy(x, phat)
    lr = max(float(-2.0 * (ll0 - ll1)), 0.0)
    pv = float(chi2.sf(lr, 1))
    return KupiecResult(t, x, p, phat, lr, pv, lr > float(chi2.ppf(level, 1)))


def kupiec_test(
    var: ArrayLike, pnl: ArrayLike, confidence: float, *, test_level: float = 0.95
) -> KupiecResult:
    """:func:`kupiec_pof` on the exceptions of a VaR series against realised P&L."""
    hits = find_exceptions(var, pnl)
    return kupiec_pof(hits.size, int(hits.sum()), confidence, test_level=test_level)


def christoffersen_test(
    exceptions: ArrayLike, confidence: float, *, test_level: float = 0.95
) -> ChristoffersenResult:
    """Independence of exceptions (Christoffersen 1998) from a boolean exception series.

    With transition counts ``n_ij`` (state i then j), ``π01 = n01/(n00+n01)``,
    ``π11 = n11/(n10+n11)`` and ``π = (n01+n11)/(n00+n01+n10+n11)``:
    ``LR_ind = −2·ln[(1−π)^(n00+n10)·π^(n01+n11)] + 2·ln[(1−π01)^n00·π01^n01·(1−π11)^n10·π11^n11]``.
    ``LR_cc = LR_pof + LR_ind`` (χ²(2)), with the POF term on the whole series.
    """
    alpha = open_unit("confidence", confidence)
    level = open_unit("test_level", test_level)
    e = np.asarray(exceptions)
    if e.ndim != 1 or e.size < 2:
        raise ValidationError("exceptions", f"shape {e.shape}", "needs a 1-D series of >= 2")
    if e.dtype != np.bool_:
        if not np.isin(e, (0, 1)).all():
            raise ValidationError("exceptions", "non-boolean values", "pass 0/1 or bool")
        e = e.astype(bool)
    prev, nxt = e[:-1], e[1:]
    n00 = int(np.sum(~prev & ~nxt))
    n01 = int(np.sum(~prev & nxt))
    n10 = int(np.sum(prev & ~nxt))
    n11 = int(np.sum(prev & nxt))
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    ll0 = xlogy(n00 + n10, 1.0 - pi) + xlogy(n01 + n11, pi)
    ll1 = xlogy(n00, 1.0 - pi01) + xlogy(n01, pi01) + xlogy(n10, 1.0 - pi11) + xlogy(n11, pi11)
    lr_ind = max(float(-2.0 * (ll0 - ll1)), 0.0)
    pof = kupiec_pof(e.size, int(e.sum()), alpha, test_level=level)
    lr_cc = pof.lr + lr_ind
    return ChristoffersenResult(
        n00,
        n01,
        n10,
        n11,
        lr_ind,
        float(chi2.sf(lr_ind, 1)),
        lr_cc,
        float(chi2.sf(lr_cc, 2)),
        lr_ind > float(chi2.ppf(level, 1)),
        lr_cc > float(chi2.ppf(level, 2)),
    )


def _counts(n_obs: int, n_exceptions: int) -> tuple[int, int]:
    if isinstance(n_obs, bool) or not isinstance(n_obs, int | np.integer) or n_obs < 1:
        raise ValidationError("n_obs", n_obs, "must be an integer >= 1")
    if (
        isinstance(n_exceptions, bool)
        or not isinstance(n_exceptions, int | np.integer)
        or not 0 <= n_exceptions <= n_obs
    ):
        raise ValidationError("n_exceptions", n_exceptions, f"must be an integer in [0, {n_obs}]")
    return int(n_obs), int(n_exceptions)
