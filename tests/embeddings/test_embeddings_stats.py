"""Vector statistics behind semantic drift: weighted moments and the k-dimensional confidence ball."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rollguard.stats import normal_mixture_halfwidth, optimal_tau2
from rollguard.stats.mahalanobis_cs import (
    ball_radius,
    chi2_upper_bound,
    distance_cs,
    log_e_value_beyond,
    optimal_ball_tau2,
)
from rollguard.stats.vector_moments import VectorMoments


def test_batches_merges_and_restores_agree_with_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 4)) @ np.diag([1.0, 2.0, 0.5, 3.0])
    w = rng.uniform(0.5, 4.0, 500)
    whole = VectorMoments(4)
    whole.update_many(x, w)
    a, b = VectorMoments(4), VectorMoments(4)
    for chunk in np.array_split(np.arange(300), 7):
        a.update_many(x[chunk], w[chunk])
    b.update_many(x[300:], w[300:])
    a.merge(b)
    restored = VectorMoments.from_state(a.to_state())
    assert np.allclose(restored.mean, np.average(x, axis=0, weights=w))
    assert np.allclose(restored.covariance, np.cov(x.T, aweights=w))
    assert np.allclose(whole.m2, restored.m2)
    assert restored.n == 500 and restored.n_eff == pytest.approx(w.sum() ** 2 / (w @ w))


def test_unequal_weights_shrink_the_effective_sample() -> None:
    m = VectorMoments(1)
    m.update_many(np.zeros((10, 1)))
    assert m.n_eff == 10
    m.update_many(np.zeros((1, 1)), [10.0])
    assert m.n_eff < 11 / 2


def test_one_dimension_is_the_scalar_confidence_sequence() -> None:
    for v in (1e-4, 0.01, 1.0):
        assert ball_radius(v, 0.04, 0.01, 1) == pytest.approx(normal_mixture_halfwidth(v, 0.04, 0.01))
    assert optimal_ball_tau2(0.3, 0.01, 1) == pytest.approx(optimal_tau2(0.3, 0.01))


def test_the_ball_shrinks_with_information_and_grows_with_dimension() -> None:
    radii = [ball_radius(v, 0.01, 0.01, 10) for v in (1.0, 0.1, 0.01, 0.001)]
    assert radii == sorted(radii, reverse=True)
    assert ball_radius(0.01, 0.01, 0.01, 20) > ball_radius(0.01, 0.01, 0.01, 5)
    assert distance_cs(0.5, math.inf, 0.01, 0.01, 5) == (0.0, math.inf)


def test_the_e_value_crosses_its_threshold_exactly_when_the_interval_clears_the_margin() -> None:
    k, alpha, tau2, margin = 8, 0.01, optimal_ball_tau2(0.25, 0.01, 8), 0.25
    for dist in np.linspace(0.0, 2.0, 41):
        for v in (0.1, 0.01, 0.003):
            lo, _ = distance_cs(float(dist), v, tau2, alpha, k)
            crossed = log_e_value_beyond(float(dist), margin, v, tau2, k) >= math.log(1 / alpha)
            assert crossed == (lo > margin)


def test_gaussian_null_streams_stay_inside_the_ball_at_every_look() -> None:
    """Read after every batch of 5 per arm for 200 batches: misses stay below α (anytime validity)."""
    rng = np.random.default_rng(7)
    streams, batches, k, alpha = 400, 200, 6, 0.1
    tau2 = optimal_ball_tau2(0.3, alpha, k)
    # per batch: 5 canary and 20 control observations; the difference of running means
    sum_t = np.zeros((streams, k))
    sum_c = np.zeros((streams, k))
    missed = np.zeros(streams, dtype=bool)
    for b in range(1, batches + 1):
        sum_t += rng.standard_normal((streams, 5, k)).sum(axis=1)
        sum_c += rng.standard_normal((streams, 20, k)).sum(axis=1)
        n_t, n_c = 5 * b, 20 * b
        z = np.linalg.norm(sum_t / n_t - sum_c / n_c, axis=1)
        missed |= z > ball_radius(1 / n_t + 1 / n_c, tau2, alpha, k)
    assert missed.mean() <= alpha


def test_chi2_bound_is_conservative() -> None:
    rng = np.random.default_rng(3)
    for k in (1, 5, 20):
        draws = (rng.standard_normal((20000, k)) ** 2).sum(axis=1)
        assert (draws > chi2_upper_bound(k, 0.05)).mean() < 0.05
