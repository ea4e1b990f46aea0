"""LR CUSUMs: hand-computed statistics, vectorised = sequential, null false-alarm rate, detection."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rollguard.stats import BernoulliCusum, GaussianMeanCusum


def test_bernoulli_by_hand() -> None:
    c = BernoulliCusum(p0=0.02, p1=0.04, horizon=1000, alpha=0.01)
    assert c.threshold == pytest.approx(math.log(1000 / 0.01))
    llr = 5 * math.log(2) + 95 * math.log(0.96 / 0.98)
    assert c.log_lr(5, 100) == pytest.approx(llr, rel=1e-12)
    c.update(2, 100)  # negative log LR: clipped at 0
    assert c.statistic == 0.0
    c.update(5, 100)
    c.update(5, 100)
    assert c.statistic == pytest.approx(2 * llr, rel=1e-12)
    c.update(0, 0)  # empty batch: ignored, not counted
    assert c.updates == 3
    assert not c.alarm and c.within_horizon


def test_gaussian_by_hand() -> None:
    g = GaussianMeanCusum(mu0=10.0, mu1=12.0, sigma=4.0, horizon=10, alpha=0.1)
    g.update(13.0, 8)  # 8 · (2/16) · (13 - 11) = 2
    assert g.statistic == pytest.approx(2.0)
    g.update(9.0, 4)  # 4 · (1/8) · (-2) = -1
    assert g.statistic == pytest.approx(1.0)
    # a decrease chart: mu1 < mu0
    d = GaussianMeanCusum(mu0=0.8, mu1=0.7, sigma=0.2, horizon=10, alpha=0.1)
    d.update(0.6, 10)  # 10 · (-0.1/0.04) · (0.6 - 0.75) = 3.75
    assert d.statistic == pytest.approx(3.75)


def test_vectorised_equals_sequential() -> None:
    rng = np.random.default_rng(0)
    n = rng.integers(0, 80, 400)
    k = rng.binomial(n, 0.035)
    a = BernoulliCusum(0.02, 0.05, horizon=500, alpha=0.05)
    b = BernoulliCusum(0.02, 0.05, horizon=500, alpha=0.05)
    a.update(3, 50)  # start from a non-zero statistic
    b.update(3, 50)
    for ki, ni in zip(k, n, strict=True):
        a.update(int(ki), int(ni))
    b.update_many(k[:150], n[:150])
    b.update_many(k[150:], n[150:])
    assert b.statistic == pytest.approx(a.statistic, rel=1e-9, abs=1e-9)
    assert (b.updates, b.first_alarm) == (a.updates, a.first_alarm)
    assert a.alarm
    g1 = GaussianMeanCusum(0.0, 0.3, 1.0, horizon=100, alpha=0.05)
    g2 = GaussianMeanCusum(0.0, 0.3, 1.0, horizon=100, alpha=0.05)
    means, sizes = rng.normal(0.2, 0.2, 300), rng.integers(0, 20, 300)
    for m, s in zip(means, sizes, strict=True):
        g1.update(float(m), int(s))
    g2.update_many(means, sizes)
    assert g2.statistic == pytest.approx(g1.statistic, rel=1e-9, abs=1e-9)
    assert (g2.updates, g2.first_alarm) == (g1.updates, g1.first_alarm)


def _alarm_share(charts: list[BernoulliCusum], ks: np.ndarray, ns: np.ndarray) -> float:
    for c, k, n in zip(charts, ks, ns, strict=True):
        c.update_many(k, n)
    return sum(c.alarm for c in charts) / len(charts)


@pytest.mark.parametrize("p_true", [0.02, 0.015])
def test_bernoulli_null_false_alarm_rate_over_horizon(p_true: float) -> None:
    """Null at p0 (and inside it): P(alarm within `horizon` updates) <= α."""
    alpha, horizon, runs, n = 0.05, 500, 2000, 200
    rng = np.random.default_rng(61)
    ns = np.full((runs, horizon), n)
    ks = rng.binomial(ns, p_true)
    charts = [BernoulliCusum(0.02, 0.03, horizon, alpha) for _ in range(runs)]
    assert _alarm_share(charts, ks, ns) <= alpha


def test_gaussian_null_false_alarm_rate_over_horizon() -> None:
    alpha, horizon, runs, n = 0.05, 500, 2000, 30
    rng = np.random.default_rng(67)
    means = rng.normal(0.0, 1.0 / math.sqrt(n), (runs, horizon))
    hits = 0
    for row in means:
        g = GaussianMeanCusum(0.0, 0.2, 1.0, horizon, alpha)
        g.update_many(row, n)
        hits += g.alarm
    assert hits / runs <= alpha


def test_detects_a_clear_shift_quickly() -> None:
    """2 % → 4 % errors in batches of 200 (null at 2 %, tuned to 3 %): alarm within a few batches."""
    alpha, horizon, runs, n = 0.01, 1440, 300, 200
    rng = np.random.default_rng(71)
    delays = []
    for _ in range(runs):
        c = BernoulliCusum(0.02, 0.03, horizon, alpha)
        c.update_many(rng.binomial(n, 0.02, 100), n)  # 100 quiet batches first
        pre = c.alarm
        c.update_many(rng.binomial(n, 0.04, 200), n)
        if not pre and c.first_alarm is not None:
            delays.append(c.first_alarm - 100)
    assert len(delays) >= 0.98 * runs
    assert float(np.median(delays)) <= 15  # ~3000 requests after the change
    g = GaussianMeanCusum(0.0, 0.5, 1.0, horizon, alpha)
    g.update_many(rng.normal(1.0, 1.0 / math.sqrt(20), 50), 20)
    assert g.alarm and g.first_alarm is not None and g.first_alarm <= 5


def test_state_roundtrip_and_reset() -> None:
    c = BernoulliCusum(0.02, 0.05, 100, 0.01)
    c.update_many([5, 6, 7], [100, 100, 100])
    state = json.loads(json.dumps(c.to_state(), allow_nan=False))
    back = BernoulliCusum.from_state(state)
    assert back.to_state() == c.to_state()
    g = GaussianMeanCusum(1.0, 2.0, 0.5, 100, 0.01)
    g.update(3.0, 10)
    gb = GaussianMeanCusum.from_state(json.loads(json.dumps(g.to_state())))
    assert gb.to_state() == g.to_state() and gb.alarm
    gb.reset()
    assert (gb.statistic, gb.updates, gb.alarm) == (0.0, 0, False)


def test_validation() -> None:
    with pytest.raises(ValueError):
        BernoulliCusum(0.02, 0.02, 10, 0.01)
    with pytest.raises(ValueError):
        BernoulliCusum(0.02, 0.03, 0, 0.01)
    with pytest.raises(ValueError):
        GaussianMeanCusum(0.0, 1.0, 0.0, 10, 0.01)
    c = BernoulliCusum(0.02, 0.03, 10, 0.01)
    with pytest.raises(ValueError):
        c.update(5, 3)
    with pytest.raises(ValueError):
        c.update_many([1, 5], [3, 3])


def test_non_finite_batches_are_rejected() -> None:
    g = GaussianMeanCusum(0.0, 1.0, 1.0, 10, 0.01)
    with pytest.raises(ValueError):
        g.update(math.inf, 3)
    with pytest.raises(ValueError):
        g.update_many([0.0, math.nan], [1, 1])
    assert g.updates == 0
