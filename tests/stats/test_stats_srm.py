"""Sequential SRM test: the martingale by hand, A/A false positives (constant and changing weights), power."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from rollguard.stats import SampleRatioTest


def test_log_likelihood_ratio_by_hand() -> None:
    t = SampleRatioTest()
    th = t.theta
    steps = [(True, 0.2), (False, 0.2), (True, 0.5)]
    log_lr = np.zeros_like(th)
    running_min = 1.0
    for y, w in steps:
        t.update(y, w)
        # log LR_i(θ) = θ y_i - log(1 - π_i + π_i e^θ); equal prior weights on the grid
        log_lr += th * y - np.log(1 - w + w * np.exp(th))
        log_m = math.log(float(np.mean(np.exp(log_lr))))
        running_min = min(running_min, math.exp(-log_m))
        assert np.allclose(t.log_lr, log_lr, rtol=1e-12, atol=1e-12)
        assert t.log_e_value == pytest.approx(log_m, rel=1e-12, abs=1e-14)
        assert t.p_value == pytest.approx(running_min, rel=1e-12)
    assert (t.n, t.observed_canary, t.expected_canary) == (3, 2, pytest.approx(0.9))
    assert t.observed_ratio == pytest.approx(2 / 0.9)
    assert t.observed_control == 1 and t.expected_control == pytest.approx(2.1)


def test_batch_equals_one_by_one_and_skips_degenerate_weights() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(500) < 0.3
    w = rng.choice([0.0, 0.1, 0.3, 0.5, 1.0], 500)
    a, b = SampleRatioTest(), SampleRatioTest()
    a.update_many(y, w)
    for yi, wi in zip(y, w, strict=True):
        b.update(bool(yi), float(wi))
    assert np.allclose(a.log_lr, b.log_lr, rtol=1e-9, atol=1e-9)
    informative = (w > 0) & (w < 1)
    assert a.n == b.n == int(informative.sum())
    assert a.observed_canary == int(y[informative].sum())
    c = SampleRatioTest()
    c.update_many(y[w == 0.3], 0.3)  # scalar weight
    d = SampleRatioTest()
    d.update_many(y[w == 0.3], np.full(int((w == 0.3).sum()), 0.3))
    assert np.allclose(c.log_lr, d.log_lr)


def _false_positive_rate(
    weights: Callable[[np.random.Generator, int], np.ndarray], runs: int, batches: int, batch: int, seed: int
) -> float:
    """Share of A/A runs (units assigned with exactly the stated weights) flagged at ANY batch end."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(runs):
        w = np.broadcast_to(weights(rng, batches * batch), (batches * batch,))
        y = rng.random(batches * batch) < w
        t = SampleRatioTest(alpha=0.05)
        for i in range(0, batches * batch, batch):
            t.update_many(y[i : i + batch], w[i : i + batch])
        hits += t.rejected
    return hits / runs


def test_aa_false_positive_rate_constant_weight() -> None:
    rate = _false_positive_rate(lambda rng, n: np.array(0.1), runs=300, batches=150, batch=100, seed=41)
    assert rate <= 0.05


def test_aa_false_positive_rate_changing_weights() -> None:
    """Ramp 1 % → 5 % → 10 % → 25 % → 50 %, with 30 % of units at other weights mixed in."""
    ramp = np.array([0.01, 0.05, 0.10, 0.25, 0.50])

    def weights(rng: np.random.Generator, n: int) -> np.ndarray:
        step = ramp[np.minimum(np.arange(n) * len(ramp) // n, len(ramp) - 1)]
        return np.where(rng.random(n) < 0.3, ramp[rng.integers(0, len(ramp), n)], step)

    rate = _false_positive_rate(weights, runs=200, batches=150, batch=100, seed=43)
    assert rate <= 0.05


def test_pooling_with_the_final_weight_would_be_wrong() -> None:
    """Why per-unit weights matter: a weight change looks like an SRM to a test that ignores it."""
    rng = np.random.default_rng(5)
    y = np.concatenate([rng.random(20_000) < 0.05, rng.random(20_000) < 0.25])
    right, wrong = SampleRatioTest(), SampleRatioTest()
    right.update_many(y, np.concatenate([np.full(20_000, 0.05), np.full(20_000, 0.25)]))
    wrong.update_many(y, 0.25)
    assert not right.rejected and wrong.rejected


def test_detects_ten_versus_eleven_percent() -> None:
    rng = np.random.default_rng(47)
    delays = []
    for _ in range(40):
        t = SampleRatioTest(alpha=0.01)
        for i in range(200):
            t.update_many(rng.random(1000) < 0.11, 0.10)
            if t.rejected:
                delays.append((i + 1) * 1000)
                break
    assert len(delays) >= 38  # power >= 95 % within 200k units
    assert float(np.median(delays)) < 60_000
    assert t.observed_ratio == pytest.approx(1.1, abs=0.03)


def test_state_roundtrip() -> None:
    rng = np.random.default_rng(1)
    t = SampleRatioTest(alpha=0.02, n_per_side=10)
    t.update_many(rng.random(1000) < 0.12, 0.1)
    state = json.loads(json.dumps(t.to_state(), allow_nan=False))
    back = SampleRatioTest.from_state(state)
    assert back.to_state() == t.to_state()
    more = rng.random(1000) < 0.12
    t.update_many(more, 0.1)
    back.update_many(more, 0.1)
    assert back.p_value == t.p_value and np.array_equal(back.log_lr, t.log_lr)
