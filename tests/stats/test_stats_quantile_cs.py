"""Quantile confidence sequence: the Beta-binomial martingale, its rank interval, and coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rollguard.stats import LogHistogram, quantile_cs, quantile_rank_cs
from rollguard.stats.quantile_cs import _prior, beta_binomial_log_martingale

Z = {0.5: 0.0, 0.95: 1.6448536269514722, 0.99: 2.3263478740408408}


def test_log_martingale_matches_numerical_integral() -> None:
    a, b, p = 1.7, 2.6, 0.8
    theta = np.linspace(1e-9, 1 - 1e-9, 400_001)
    dens = (
        theta ** (a - 1)
        * (1 - theta) ** (b - 1)
        / math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    )
    for n, k in [(0, 0), (1, 1), (5, 2), (12, 12), (20, 3)]:
        integrand = theta**k * (1 - theta) ** (n - k) * dens
        mix = float(np.trapezoid(integrand, theta))
        expected = mix / (p**k * (1 - p) ** (n - k))
        assert math.exp(beta_binomial_log_martingale(k, n, p, a, b)) == pytest.approx(expected, rel=2e-3)


@pytest.mark.parametrize("n", [1, 7, 40, 300])
def test_martingale_has_mean_one_under_the_null(n: int) -> None:
    p = 0.9
    a, b = _prior(p, 0.01, 2000.0)
    total = 0.0
    for k in range(n + 1):
        log_pmf = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p)
        log_pmf += (n - k) * math.log1p(-p)
        total += math.exp(log_pmf + beta_binomial_log_martingale(k, n, p, a, b))
    assert total == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("p", [0.5, 0.95, 0.99])
@pytest.mark.parametrize("alpha", [0.05, 0.001])
def test_rank_interval_equals_brute_force(p: float, alpha: float) -> None:
    a, b = _prior(p, alpha, 2000.0)
    for n in (0, 1, 2, 5, 37, 250, 1999, 5000):
        accepted = [
            k for k in range(n + 1) if beta_binomial_log_martingale(k, n, p, a, b) < math.log(1 / alpha)
        ]
        assert accepted == list(range(accepted[0], accepted[-1] + 1))  # an interval (convexity)
        assert quantile_rank_cs(n, p, alpha) == (accepted[0], accepted[-1])


def test_prior_is_centred_and_validated() -> None:
    a, b = _prior(0.95, 0.01, 2000.0)
    assert a / (a + b) == pytest.approx(0.95)
    for bad in ((0.0, 0.01, 10.0), (0.5, 1.0, 10.0), (0.5, 0.01, 0.0)):
        with pytest.raises(ValueError):
            _prior(*bad)


@pytest.mark.parametrize("p", [0.5, 0.95])
def test_rank_coverage_at_every_step(p: float) -> None:
    """B_n = #{U_i <= p} must stay inside [k_lo(n), k_hi(n)] for all n <= T in >= 1-α of the runs."""
    alpha, runs, steps = 0.05, 2000, 4000
    bounds = np.array([quantile_rank_cs(n, p, alpha) for n in range(1, steps + 1)])
    rng = np.random.default_rng(17)
    b = np.cumsum(rng.random((runs, steps)) <= p, axis=1)
    miss = ((b < bounds[:, 0]) | (b > bounds[:, 1])).any(axis=1).mean()
    assert miss <= alpha, miss


def _value_coverage(
    sample: np.ndarray, truth: float, p: float, alpha: float, batch: int
) -> tuple[bool, float]:
    h = LogHistogram()
    width = math.inf
    for start in range(0, sample.size, batch):
        h.update_many(sample[start : start + batch])
        lo, hi = quantile_cs(h, p, alpha)
        if not lo <= truth <= hi:
            return True, width
        width = hi / lo if lo > 0 else math.inf
    return False, width


@pytest.mark.parametrize("p", [0.5, 0.95, 0.99])
def test_value_coverage_on_lognormal_latencies(p: float) -> None:
    alpha, runs, n = 0.05, 100, 4000
    truth = math.exp(5.0 + 0.8 * Z[p])  # lognormal(μ=5, σ=0.8): a median of ~150 ms
    rng = np.random.default_rng(23)
    misses, widths = 0, []
    for _ in range(runs):
        sample = rng.lognormal(5.0, 0.8, n)
        missed, width = _value_coverage(sample, truth, p, alpha, batch=50)
        misses += missed
        widths.append(width)
    assert misses / runs <= alpha
    # informative as well as valid: after 4000 values hi/lo is small (it includes the 4 % bucket rounding)
    assert float(np.median(widths)) < {0.5: 1.15, 0.95: 1.3, 0.99: 1.6}[p]


def test_value_coverage_with_atoms() -> None:
    """Discrete data whose p-quantile sits on an atom: the interval must still contain it."""
    alpha, runs, p = 0.05, 200, 0.5
    support, probs = np.array([1.0, 2.0, 3.0]), np.array([0.45, 0.1, 0.45])  # median = 2.0 exactly
    rng = np.random.default_rng(29)
    misses = 0
    for _ in range(runs):
        sample = rng.choice(support, size=1000, p=probs)
        misses += _value_coverage(sample, 2.0, p, alpha, batch=20)[0]
    assert misses / runs <= alpha


def test_small_samples_give_open_ends() -> None:
    h = LogHistogram()
    assert quantile_cs(h, 0.95, 0.01) == (0.0, math.inf)
    h.update_many(np.full(100, 10.0))
    lo, hi = quantile_cs(h, 0.95, 0.01)
    assert hi == math.inf and 9.0 < lo <= 10.0
    h.update_many(np.full(1000, 10.0))
    assert quantile_cs(h, 0.95, 0.01) == (10.0, 10.0)  # all values equal: the exact min and max close it


def test_rank_interval_random_cases_against_full_scan() -> None:
    rng = np.random.default_rng(31)
    for _ in range(300):
        n = int(rng.integers(0, 3000))
        p = float(rng.uniform(0.01, 0.999))
        alpha = float(10 ** rng.uniform(-6, -0.5))
        n_opt = float(10 ** rng.uniform(1, 6))
        a, b = _prior(p, alpha, n_opt)
        ks = np.arange(n + 1)
        # log M_n(k) for all k at once: lgamma(a+k) = lgamma(a) + Σ_{j<k} log(a+j)
        lga = math.lgamma(a) + np.concatenate([[0.0], np.cumsum(np.log(a + np.arange(n)))])
        lgb = math.lgamma(b) + np.concatenate([[0.0], np.cumsum(np.log(b + np.arange(n)))])
        logm = (
            lga[ks]
            + lgb[n - ks]
            - math.lgamma(a + b + n)
            - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
        )
        logm -= ks * math.log(p) + (n - ks) * math.log1p(-p)
        acc = np.flatnonzero(logm < math.log(1 / alpha))
        assert quantile_rank_cs(n, p, alpha, n_opt=n_opt) == (int(acc[0]), int(acc[-1]))
