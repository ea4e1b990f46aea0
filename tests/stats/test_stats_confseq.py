"""Normal-mixture confidence sequences: formulas pinned by hand, and time-uniform coverage by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rollguard.stats import (
    difference_cs,
    difference_cs_many,
    estimator_variance,
    mixture_log_bayes_factor,
    mixture_p_value,
    normal_mixture_halfwidth,
    optimal_ratio,
    optimal_tau2,
    regularised_bernoulli_variance,
    samples_to_decide,
)
from rollguard.stats.confseq import _variance_for_halfwidth

# ----------------------------------------------------------------------------- formulas


def test_halfwidth_hand_values() -> None:
    # sqrt(2 v (v+τ²)/τ² (log 1/α + ½ log((v+τ²)/v)))
    assert normal_mixture_halfwidth(1.0, 1.0, 0.05) == pytest.approx(
        math.sqrt(4 * (math.log(20) + 0.5 * math.log(2))), rel=1e-14
    )
    assert normal_mixture_halfwidth(0.01, 0.04, 0.01) == pytest.approx(0.3677598, rel=1e-6)
    assert normal_mixture_halfwidth(0.0, 1.0, 0.05) == 0.0
    assert normal_mixture_halfwidth(math.inf, 1.0, 0.05) == math.inf
    arr = normal_mixture_halfwidth(np.array([0.0, 1.0, 0.01]), 1.0, 0.05)
    assert arr[0] == 0.0
    assert arr[1] == pytest.approx(normal_mixture_halfwidth(1.0, 1.0, 0.05), rel=1e-14)


def test_halfwidth_increases_with_variance() -> None:
    v = np.geomspace(1e-12, 1e6, 2000)
    for alpha in (0.5, 0.05, 1e-6):
        h = normal_mixture_halfwidth(v, 0.3, alpha)
        assert np.all(np.diff(h) > 0)


def test_boundary_is_where_the_mixture_reaches_one_over_alpha() -> None:
    d, v, tau2, alpha = 0.3, 0.02, 0.05, 0.01
    h = normal_mixture_halfwidth(v, tau2, alpha)
    for delta0 in (d - h, d + h):
        assert mixture_log_bayes_factor(d, v, tau2, delta0) == pytest.approx(math.log(1 / alpha), rel=1e-12)
        assert mixture_p_value(d, v, tau2, delta0) == pytest.approx(alpha, rel=1e-10)
    assert mixture_p_value(d, v, tau2, d) == 1.0


def test_mixture_equals_johari_msprt_and_the_numerical_integral() -> None:
    # Johari et al.: Λ_n = sqrt(V/(V+nτ²)) exp(n² τ² Ȳ² / (2V(V+nτ²))) with V the per-observation variance.
    big_v, n, tau2, ybar = 2.0, 50, 0.04, 0.31
    johari = math.sqrt(big_v / (big_v + n * tau2)) * math.exp(
        n * n * tau2 * ybar**2 / (2 * big_v * (big_v + n * tau2))
    )
    v = big_v / n
    assert math.exp(mixture_log_bayes_factor(ybar, v, tau2)) == pytest.approx(johari, rel=1e-12)
    # ∫ N(Ȳ; θ, v) N(θ; 0, τ²) dθ / N(Ȳ; 0, v) by quadrature.
    theta = np.linspace(-3, 3, 200_001)
    num = np.exp(-((ybar - theta) ** 2) / (2 * v) - theta**2 / (2 * tau2)) / (
        2 * math.pi * math.sqrt(v * tau2)
    )
    integral = float(np.sum(num) * (theta[1] - theta[0]))
    den = math.exp(-(ybar**2) / (2 * v)) / math.sqrt(2 * math.pi * v)
    assert integral / den == pytest.approx(johari, rel=1e-8)


def test_difference_cs_and_variance_floor() -> None:
    lo, hi = difference_cs(0.030, 0.029, 5000, 0.020, 0.0196, 45000, 0.01, 0.005**2, robust=False)
    v = 0.029 / 5000 + 0.0196 / 45000
    h = normal_mixture_halfwidth(v, 0.005**2, 0.01)
    assert (lo, hi) == pytest.approx((0.01 - h, 0.01 + h), rel=1e-12)
    assert estimator_variance(0.029, 5000, 0.0196, 45000) == pytest.approx(0.029 / 5000 + 0.029 / 45000)
    assert difference_cs(1.0, 1.0, 0, 0.0, 1.0, 10, 0.05, 1.0) == (-math.inf, math.inf)
    assert samples_to_decide(1.0, 1.0, 0, 0.0, 1.0, 10, 0.1, 0.05, 1.0) == math.inf


def test_difference_cs_many_matches_scalar() -> None:
    rng = np.random.default_rng(7)
    k = 50
    mt, mc = rng.normal(size=k), rng.normal(size=k)
    vt, vc = rng.uniform(0.1, 3, k), rng.uniform(0.1, 3, k)
    nt, nc = rng.integers(0, 500, k), rng.integers(0, 500, k)
    for robust in (True, False):
        lo, hi = difference_cs_many(mt, vt, nt, mc, vc, nc, 0.01, 0.2, robust=robust)
        for i in range(k):
            slo, shi = difference_cs(
                mt[i], vt[i], int(nt[i]), mc[i], vc[i], int(nc[i]), 0.01, 0.2, robust=robust
            )
            assert lo[i] == pytest.approx(slo, rel=1e-12) and hi[i] == pytest.approx(shi, rel=1e-12)


def test_regularised_bernoulli_variance() -> None:
    assert regularised_bernoulli_variance(0, 0) == 0.25
    assert regularised_bernoulli_variance(0, 8) == pytest.approx(0.09)
    assert regularised_bernoulli_variance(20, 1000) == pytest.approx(21 / 1002 * 981 / 1002)
    out = regularised_bernoulli_variance(np.array([0.0, 5.0]), np.array([10.0, 10.0]))
    assert out.tolist() == pytest.approx([1 / 12 * 11 / 12, 0.25])


# ----------------------------------------------------------------------------- τ² guidance


def test_optimal_ratio_is_the_fixed_point() -> None:
    for alpha in (0.1, 0.05, 0.01, 0.001, 1e-6):
        r = optimal_ratio(alpha)
        assert r == pytest.approx(2 * math.log(1 / alpha) + math.log1p(r), rel=1e-12)
    assert optimal_ratio(0.01) == pytest.approx(11.756, abs=1e-3)


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.001])
def test_optimal_tau2_minimises_samples_to_decide(alpha: float) -> None:
    """Brute force over τ²: the sample needed to resolve a distance d is smallest at optimal_tau2(d)."""
    d = 0.005  # e.g. a 0.5 point error-rate margin, true effect 0
    var, n = 0.02 * 0.98, 10_000

    def needed(tau2: float) -> float:  # total sample (already seen + further) at the decision
        extra = samples_to_decide(0.02, var, n // 10, 0.02, var, n - n // 10, d, alpha, tau2, max_total=1e15)
        return n + extra

    grid = d * d * np.geomspace(1 / 30, 30, 301)
    costs = np.array([needed(t) for t in grid])
    best = grid[int(np.argmin(costs))]
    assert best / optimal_tau2(d, alpha) == pytest.approx(1.0, rel=0.05)
    # τ² = margin² is within 1 % of the optimum; 4x off costs at most 7 % (too large) / 12 % (too small).
    base = needed(optimal_tau2(d, alpha))
    assert needed(d * d) <= 1.01 * base
    assert needed(4 * optimal_tau2(d, alpha)) <= 1.07 * base
    assert needed(optimal_tau2(d, alpha) / 4) <= 1.12 * base


def test_tau2_sensitivity_numbers_in_the_docstring() -> None:
    alpha, d = 0.01, 1.0
    t0 = optimal_tau2(d, alpha)
    v0 = _variance_for_halfwidth(d, t0, alpha, 1e6)
    ratio = {f: v0 / _variance_for_halfwidth(d, t0 * f, alpha, 1e6) for f in (1 / 16, 1 / 4, 4, 16)}
    assert ratio[4] == pytest.approx(1.05, abs=0.01)
    assert ratio[1 / 4] == pytest.approx(1.09, abs=0.01)
    assert ratio[16] == pytest.approx(1.15, abs=0.01)
    assert ratio[1 / 16] == pytest.approx(1.49, abs=0.01)
    # at the optimum the decision comes at v = d²/(1+r*), about 1.9x a fixed-n z-test at the same α
    r = optimal_ratio(alpha)
    assert v0 == pytest.approx(d * d / (1 + r), rel=1e-9)
    z = 2.5758293035489
    assert (1 + r) / z**2 == pytest.approx(1.92, abs=0.01)


def test_samples_to_decide_projection() -> None:
    args = (0.03, 0.03, 1000, 0.02, 0.02, 9000)
    margin, alpha, tau2 = 0.005, 0.01, 0.005**2
    extra = samples_to_decide(*args, margin, alpha, tau2)
    assert 0 < extra < math.inf
    total = 10_000 + extra
    v_now = estimator_variance(0.03, 1000, 0.02, 9000)
    h_then = normal_mixture_halfwidth(v_now * 10_000 / total, tau2, alpha)
    h_before = normal_mixture_halfwidth(v_now * 10_000 / (total - 2), tau2, alpha)
    assert h_then <= 0.005 < h_before
    assert samples_to_decide(0.025, 0.03, 1000, 0.02, 0.02, 9000, margin, alpha, tau2) == math.inf
    assert samples_to_decide(0.10, 0.03, 1000, 0.02, 0.02, 9000, margin, alpha, tau2) == 0.0
    assert samples_to_decide(0.0051, 0.3, 10, 0.0, 0.3, 90, margin, alpha, tau2, max_total=1e6) == math.inf


# ----------------------------------------------------------------------------- coverage


def _cs_miss_rate(
    kind: str,
    frac_t: float,
    alpha: float,
    tau2: float,
    *,
    runs: int,
    steps: int,
    seed: int,
    n_min: int = 30,
    p_c: float = 0.02,
    p_t: float = 0.02,
    sd_t: float = 1.0,
    chunk: int = 200,
    tau2_factors: tuple[float, ...] = (1.0,),
) -> tuple[float, float]:
    """Share of runs in which the CS (and a naive fixed-n 95 % interval) excludes the truth at ANY step.

    Each step brings one observation, to the canary with probability ``frac_t``. Whole runs are
    handled as arrays of cumulative sums, so every one of the ``steps`` looks is checked.
    """
    rng = np.random.default_rng(seed)
    misses = naive = 0
    for start in range(0, runs, chunk):
        r = min(chunk, runs - start)
        is_t = rng.random((r, steps)) < frac_t
        if kind == "normal":
            x = rng.standard_normal((r, steps)) * np.where(is_t, sd_t, 1.0)
            truth = 0.0
        elif kind == "lognormal":
            x = rng.lognormal(0.0, 1.0, (r, steps))
            truth = 0.0
        else:
            x = (rng.random((r, steps)) < np.where(is_t, p_t, p_c)).astype(np.float64)
            truth = p_t - p_c
        nt = np.cumsum(is_t, axis=1, dtype=np.float64)
        nc = np.arange(1, steps + 1, dtype=np.float64) - nt
        xt = np.where(is_t, x, 0.0)
        st, sa = np.cumsum(xt, axis=1), np.cumsum(x, axis=1)
        sc = sa - st
        with np.errstate(divide="ignore", invalid="ignore"):
            mt, mc = st / nt, sc / nc
            if kind == "bernoulli":
                vt = regularised_bernoulli_variance(st, nt)
                vc = regularised_bernoulli_variance(sc, nc)
                ok = (nt >= 1) & (nc >= 1)
            else:
                qt = np.cumsum(xt * xt, axis=1)
                qc = np.cumsum(x * x, axis=1) - qt
                vt = np.maximum((qt - nt * mt * mt) / (nt - 1), 0.0)
                vc = np.maximum((qc - nc * mc * mc) / (nc - 1), 0.0)
                ok = (nt >= n_min) & (nc >= n_min)
        lo, hi = difference_cs_many(mt, vt, nt, mc, vc, nc, alpha, tau2, tau2_factors=tau2_factors)
        miss = ok & ((lo > truth) | (hi < truth))
        misses += int(miss.any(axis=1).sum())
        z = 1.959964 * np.sqrt(estimator_variance_arr(vt, nt, vc, nc))
        naive += int((ok & (np.abs(mt - mc - truth) > z)).any(axis=1).sum())
    return misses / runs, naive / runs


def estimator_variance_arr(vt: np.ndarray, nt: np.ndarray, vc: np.ndarray, nc: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return vt / nt + vc / nc


def _hardest_tau2(var: float, frac_t: float, steps: int, alpha: float) -> float:
    """τ² that makes the CS tightest at mid-run: the most aggressive choice for coverage."""
    n = steps / 2
    v_mid = var / (frac_t * n) + var / ((1 - frac_t) * n)
    return optimal_ratio(alpha) * v_mid


@pytest.mark.parametrize(
    ("frac_t", "sd_t"),
    [(0.5, 1.0), (0.1, 1.0), (0.1, 2.0)],
    ids=["equal-arms", "10/90", "10/90-unequal-variance"],
)
def test_coverage_normal(frac_t: float, sd_t: float) -> None:
    alpha, steps = 0.05, 4000
    for tau2 in (_hardest_tau2(1.0, frac_t, steps, alpha), 0.1**2):
        miss, naive = _cs_miss_rate("normal", frac_t, alpha, tau2, runs=400, steps=steps, seed=11, sd_t=sd_t)
        assert miss <= alpha, (tau2, miss)
        assert naive > 4 * alpha  # the harness does catch the peeking problem of a fixed-n interval


@pytest.mark.parametrize(("frac_t", "alpha"), [(0.5, 0.05), (0.1, 0.05), (0.1, 0.01)])
def test_coverage_bernoulli_rare_events(frac_t: float, alpha: float) -> None:
    steps = 5000
    tau2 = _hardest_tau2(0.02 * 0.98, frac_t, steps, alpha)
    miss, naive = _cs_miss_rate("bernoulli", frac_t, alpha, tau2, runs=600, steps=steps, seed=5)
    assert miss <= alpha, miss
    assert naive > 2 * alpha


def test_coverage_bernoulli_with_a_real_difference() -> None:
    # canary 4 % vs control 2 %: the CS must still cover the true +2 points
    alpha, steps = 0.05, 5000
    tau2 = 0.005**2
    miss, _ = _cs_miss_rate("bernoulli", 0.1, alpha, tau2, runs=600, steps=steps, seed=9, p_t=0.04)
    assert miss <= alpha, miss


def test_coverage_skewed_lognormal_small_arm() -> None:
    alpha, steps = 0.05, 4000
    var = (math.e - 1) * math.e
    tau2 = _hardest_tau2(var, 0.1, steps, alpha)
    miss, _ = _cs_miss_rate("lognormal", 0.1, alpha, tau2, runs=400, steps=steps, seed=3)
    assert miss <= alpha, miss


LADDER = (1.0, 1e2, 1e4)


def test_the_ladder_of_mixing_variances_matches_its_scalar_form_and_the_smallest_halfwidth() -> None:
    rng = np.random.default_rng(8)
    k = 30
    mt, mc = rng.normal(size=k), rng.normal(size=k)
    vt, vc = rng.uniform(0.1, 3, k), rng.uniform(0.1, 3, k)
    nt, nc = rng.integers(1, 500, k), rng.integers(1, 500, k)
    lo, hi = difference_cs_many(mt, vt, nt, mc, vc, nc, 0.01, 0.2, tau2_factors=LADDER)
    for i in range(k):
        slo, shi = difference_cs(
            mt[i], vt[i], int(nt[i]), mc[i], vc[i], int(nc[i]), 0.01, 0.2, tau2_factors=LADDER
        )
        assert lo[i] == pytest.approx(slo, rel=1e-12) and hi[i] == pytest.approx(shi, rel=1e-12)
        v = estimator_variance(vt[i], int(nt[i]), vc[i], int(nc[i]))
        each = [normal_mixture_halfwidth(v, 0.2 * f, 0.01 / 3) for f in LADDER]
        assert (shi - slo) / 2 == pytest.approx(min(each), rel=1e-12)


def test_the_ladder_decides_a_large_regression_in_a_small_cohort_with_far_fewer_requests() -> None:
    # a small cohort's canary error rate 1.4 % -> 37 % (107 canary, 209 control requests so far), a
    # 0.5-point margin at alpha 1e-5: one tau at the margin needs thousands of requests more
    args = (0.37, 0.37 * 0.63, 107, 0.014, 0.014 * 0.986, 209, 0.005, 1e-5, 0.005**2)
    assert samples_to_decide(*args) > 1000
    assert samples_to_decide(*args, tau2_factors=LADDER) == 0.0


@pytest.mark.parametrize(("frac_t", "alpha"), [(0.1, 0.05), (0.1, 0.01)])
def test_the_ladder_still_covers_rare_events_at_every_look(frac_t: float, alpha: float) -> None:
    steps = 5000
    for tau2 in (_hardest_tau2(0.02 * 0.98, frac_t, steps, alpha), 0.005**2):
        miss, _ = _cs_miss_rate(
            "bernoulli", frac_t, alpha, tau2, runs=600, steps=steps, seed=15, tau2_factors=LADDER
        )
        assert miss <= alpha, (tau2, miss)
