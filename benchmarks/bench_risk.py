"""Timings of lyra.risk on portfolio-sized inputs; prints p50/p99 per call and ratios.

Run: ``.venv/bin/python benchmarks/bench_risk.py`` (about 30 s on 2 cores).
Data are synthetic float64 returns from a 5-factor model (fat-tailed t(4) noise), so the
covariance is full rank and realistic in structure; timings do not depend on the values.
Each figure has a reference measured in the same run (plain numpy/scipy doing the
textbook computation), so the ratio means something on any machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from scipy import optimize

from lyra.risk import (
    CovarianceModel,
    cornish_fisher_var,
    historical_var,
    incremental_var,
    monte_carlo_var,
    normal_var,
    risk_parity_weights,
)


def timings(fn: Callable[[], object], repeat: int, warmup: int = 2) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(repeat)
    for i in range(repeat):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def show(label: str, secs: np.ndarray, target: str = "", unit: str = "ms") -> None:
    k = 1e3 if unit == "ms" else 1e6
    p50, p99 = np.percentile(secs, [50, 99]) * k
    print(f"{label:<58} p50 {p50:9.3f} {unit}  p99 {p99:9.3f} {unit}  (n={secs.size}) {target}")


def factor_returns(t: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = rng.standard_t(4, (t, 5)) * 0.01
    load = rng.normal(0.8, 0.4, (5, n))
    eps = rng.standard_t(4, (t, n)) * rng.uniform(0.005, 0.03, n)
    return np.clip(f @ load + eps, -0.9, None)


def main() -> None:
    t, n = 1000, 500
    r = factor_returns(t, n)
    v = np.random.default_rng(1).normal(1e4, 5e3, n)
    print(f"portfolio: T={t} days × N={n} instruments, float64\n")

    # --- historical: reference = the same P&L and numpy's sort-based quantile
    h = timings(lambda: historical_var(r, v, confidence=0.99), 50)
    ref = timings(lambda: np.quantile(-(r @ v), 0.99, method="inverted_cdf"), 50)
    show("historical VaR+ES 99%, 1 day", h, "[target <= 100 ms]")
    show("  reference: r @ v + np.quantile", ref)
    h10 = timings(lambda: historical_var(r, v, confidence=0.99, horizon=10), 10)
    show("historical VaR+ES 99%, 10 days overlapping", h10)

    # --- parametric: O(T·N) via the P&L series; reference builds the covariance O(T·N²)
    p = timings(lambda: normal_var(r, v, confidence=0.99), 50)
    ref = timings(lambda: np.sqrt(v @ np.cov(r, rowvar=False) @ v), 10)
    show("parametric normal VaR+ES 99% (from returns)", p, "[target <= 100 ms]")
    show("  reference: sqrt(v' np.cov(r) v)", ref)
    cf = timings(lambda: cornish_fisher_var(r, v, confidence=0.99), 50)
    show("Cornish-Fisher VaR+ES 99%", cf)
    build = timings(lambda: CovarianceModel.from_returns(r), 10)
    show("CovarianceModel.from_returns (500×500, once per refresh)", build)
    model = CovarianceModel.from_returns(r)
    pm = timings(lambda: normal_var(model, v, confidence=0.99), 200)
    show("parametric normal VaR from the cached model", pm)

    # --- Monte Carlo 100k paths (Cholesky, contracted to O(N) per path)
    mc_model = CovarianceModel.from_returns(r)
    mc = timings(
        lambda: monte_carlo_var(mc_model, v, confidence=0.99, n_paths=100_000, seed=0),
        5,
        warmup=1,
    )
    show("Monte Carlo VaR+ES 99%, 100,000 paths × 500 dims", mc, "[target <= 2 s]")
    cpu0 = time.process_time()
    monte_carlo_var(mc_model, v, confidence=0.99, n_paths=100_000, seed=0)
    print(
        f"  CPU time of one MC call (excludes waiting for a shared core): "
        f"{(time.process_time() - cpu0) * 1e3:.0f} ms"
    )

    def draws_only() -> None:  # the floor: the 5e7 standard normals themselves
        rng = np.random.default_rng(0)
        for _ in range(5):
            rng.standard_normal((20_000, n))

    show("  floor: drawing the 100k×500 float64 normals alone", timings(draws_only, 3, warmup=1))
    chol = np.linalg.cholesky(mc_model.cov)

    def materialised() -> None:  # reference: every instrument's scenario, then the P&L
        rng = np.random.default_rng(0)
        for _ in range(5):
            x = rng.standard_normal((20_000, n)) @ chol.T
            x @ v

    full = timings(materialised, 3, warmup=1)
    show("  reference: materialise 100k×500 scenarios (Z @ Lᵀ) @ v", full)
    nv = normal_var(mc_model, v, confidence=0.99).var
    mcv = monte_carlo_var(mc_model, v, confidence=0.99, n_paths=100_000, seed=0).var
    print(f"  MC / normal VaR on the same covariance: {mcv / nv:.4f} (sampling error ~0.5%)")

    # --- incremental VaR per call, 50 positions
    r50 = factor_returns(1000, 50, seed=2)
    m50 = CovarianceModel.from_returns(r50)
    v50 = np.random.default_rng(3).normal(1e4, 5e3, 50)
    d50 = np.zeros(50)
    d50[7] = 2_500.0
    inc = timings(lambda: incremental_var(v50, d50, m50, confidence=0.99), 20_000, warmup=100)
    show("incremental VaR (50 positions, cached covariance)", inc, "[target p99 <= 2 ms]")
    naive = timings(
        lambda: (normal_var(r50, v50, confidence=0.99), normal_var(r50, v50 + d50, confidence=0.99)),
        500,
    )
    show("  reference: two normal VaRs from 1000×50 returns", naive)

    # --- risk parity, 50 assets
    cov50 = m50.cov
    rp = timings(lambda: risk_parity_weights(cov50), 200)
    res = risk_parity_weights(cov50)
    rc = res.weights * (cov50 @ res.weights)
    spread = float(np.max(np.abs(rc / rc.mean() - 1.0)))
    show("risk parity (ERC) solve, 50 assets, Newton", rp)
    print(f"  iterations {res.n_iter}, max |RC_i / mean RC − 1| = {spread:.2e}")

    def slsqp() -> None:
        def obj(w: np.ndarray) -> float:
            c = w * (cov50 @ w)
            return float(np.sum((c / c.sum() - 1 / 50) ** 2)) * 1e6

        optimize.minimize(
            obj,
            np.full(50, 1 / 50),
            method="SLSQP",
            bounds=[(1e-9, 1)] * 50,
            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
            options={"ftol": 1e-14, "maxiter": 500},
        )

    ref = timings(slsqp, 3, warmup=0)
    show("  reference: scipy SLSQP on the squared RC spread", ref)


if __name__ == "__main__":
    main()
