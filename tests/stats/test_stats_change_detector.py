"""The Shiryaev-Roberts mixture e-detector: within its horizon it keeps its false-alarm level, it never
alarms later than the union-bounded CUSUM, and its window explains an alarm with the data after the
change."""

from __future__ import annotations

import math

import numpy as np
import orjson

from rollguard.stats.change_detector import MixtureChangeDetector, mixture_threshold

DELTAS = np.array([0.25, 0.5, 1.0, 2.0])  # Gaussian mean shifts of the alternatives (σ = 1)


def gaussian_llr(x: np.ndarray) -> np.ndarray:
    """Log-likelihood ratios of N(δ, 1) against N(0, 1), one column per alternative."""
    return DELTAS[None, :] * x[:, None] - 0.5 * DELTAS[None, :] ** 2


def test_under_the_null_false_alarms_within_the_horizon_stay_below_alpha() -> None:
    rng = np.random.default_rng(0)
    paths, horizon, alpha = 4000, 200, 0.05
    det = MixtureChangeDetector(paths, DELTAS.size, 1)
    threshold = mixture_threshold(horizon, np.full(paths, alpha))
    alarmed = np.zeros(paths, dtype=bool)
    for _ in range(horizon):
        log_m = det.fold(
            np.ones(paths, dtype=bool), gaussian_llr(rng.standard_normal(paths)), np.ones((paths, 1))
        )
        alarmed |= log_m >= threshold
    assert alarmed.mean() <= alpha  # bound: alpha (Ville's inequality on M_n + H - n)


def test_it_alarms_no_later_than_a_cusum_paying_a_union_over_starts_and_alternatives() -> None:
    rng = np.random.default_rng(1)
    paths, horizon, alpha = 500, 300, 0.01
    change = rng.integers(0, 200, paths)
    det = MixtureChangeDetector(paths, DELTAS.size, 1)
    cusum = np.zeros((paths, DELTAS.size))
    sr_at = np.full(paths, -1)
    cusum_at = np.full(paths, -1)
    h_sr = math.log(horizon / alpha)
    h_cusum = math.log(DELTAS.size * horizon / alpha)
    for n in range(horizon):
        x = rng.standard_normal(paths) + np.where(n >= change, 0.7, 0.0)
        llr = gaussian_llr(x)
        log_m = det.fold(np.ones(paths, dtype=bool), llr, np.zeros((paths, 1)))
        cusum = np.maximum(0.0, cusum + llr)
        sr_at = np.where((sr_at < 0) & (log_m >= h_sr), n, sr_at)
        cusum_at = np.where((cusum_at < 0) & (cusum.max(axis=1) >= h_cusum), n, cusum_at)
    both = (sr_at >= 0) & (cusum_at >= 0)
    assert both.mean() > 0.95
    assert (sr_at[both] <= cusum_at[both]).all()
    assert (sr_at[both] < cusum_at[both]).mean() > 0.5  # and strictly earlier in most runs


def test_the_window_of_an_alarm_holds_the_observations_since_the_evidence_began() -> None:
    det = MixtureChangeDetector(1, 2, 2)
    use = np.array([True])
    for x in (-1.0, -1.0, 2.0, 2.0, 2.0):  # evidence only from the third update on
        obs = np.array([[1.0, x]])
        det.fold(use, np.array([[x, 0.5 * x]]), obs)
    assert det.leading(0) == 0 and det.span_of(0) == 3
    assert det.window_of(0).tolist() == [3.0, 6.0]


def test_slots_without_alpha_never_alarm_and_the_state_round_trips() -> None:
    assert mixture_threshold(100.0, [0.0])[0] == math.inf
    det = MixtureChangeDetector(3, 2, 2)
    det.fold(np.array([True, False, True]), np.ones((3, 2)), np.ones((3, 2)))
    restored = MixtureChangeDetector.from_state(orjson.loads(orjson.dumps(det.to_state())), 2, 2)
    assert orjson.dumps(restored.to_state()) == orjson.dumps(det.to_state())
    assert det.to_state()["log_m"][1] is None  # a slot never updated has no statistic yet
