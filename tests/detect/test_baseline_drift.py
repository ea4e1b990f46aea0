"""Baseline drift and post-rollout change: CUSUMs against a reference frozen from the control."""

from __future__ import annotations

import math

import numpy as np
import orjson

from core_traffic import T0
from rollguard.detect.arrays import BatchArrays
from rollguard.detect.baseline_drift import BaselineWatch
from rollguard.detect.batch_columns import ARM_CANARY, ARM_CONTROL
from rollguard.detect.mean_tests import MeanTest, MeanTests
from rollguard.domain.cohorts import Cohort
from rollguard.domain.metrics import BUILTIN_METRICS
from rollguard.settings.config import EngineSettings

ERRORS = next(m for m in BUILTIN_METRICS if m.name == "error_rate")
LIVE = np.array([True, True])


def setup() -> tuple[BaselineWatch, MeanTest, list[Cohort]]:
    watch = BaselineWatch(EngineSettings())  # baseline_window_s 600, min_samples 100, grid 30 s
    test = MeanTests().add(ERRORS, (1e-3, 1e-4), cap=2)
    watch.add(test, cap=2)
    cohorts = [Cohort(0, "*", {}, -math.inf, T0), Cohort(1, "c=a", {"c": "a"}, T0, T0)]
    return watch, test, cohorts


def control(n: float, p: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.full(2, n), np.full(2, p), np.full(2, p * (1 - p))


def batch(arm: int, n: int, p: float) -> BatchArrays:
    counts = np.zeros((2, 2, 6), dtype=np.int64)
    counts[:, arm, 0] = n
    counts[:, arm, 1] = round(n * p)
    return BatchArrays(counts, np.zeros((2, 2, 5, 3)), {}, {})


def test_the_controls_reference_is_frozen_after_baseline_window_s_with_min_samples() -> None:
    watch, test, cohorts = setup()
    quiet = batch(ARM_CONTROL, 100, 0.01)
    watch.update_drift(test, T0 + 50.0, LIVE, quiet, control(50, 0.01), cohorts)
    assert not watch.drift["error_rate"].active.any()  # fewer than min_samples control values
    watch.update_drift(test, T0 + 100.0, LIVE, quiet, control(5000, 0.01), cohorts)
    assert cohorts[0].born == T0 + 100.0  # the whole rollout's history starts at its first read
    assert watch.drift_state("error_rate", 1) is None
    watch.update_drift(test, T0 + 700.0, LIVE, quiet, control(5000, 0.01), cohorts)
    assert watch.drift["error_rate"].active.tolist() == [True, True]
    assert watch.drift_state("error_rate", 0) == "stable"
    assert watch.drift["error_rate"].reference[0] == 0.01 + math.sqrt(0.01 * 0.99 / 5000)  # plug-in + 1 SE


def test_a_shift_of_the_control_is_drift_and_clears_when_the_control_returns() -> None:
    watch, test, cohorts = setup()
    for now in (T0 + 100.0, T0 + 700.0):
        watch.update_drift(test, now, LIVE, batch(ARM_CONTROL, 100, 0.01), control(5000, 0.01), cohorts)
    found = []
    for i in range(1, 40):
        found += watch.update_drift(test, T0 + 700.0 + 30 * i, LIVE, batch(ARM_CONTROL, 500, 0.05),
                                    control(5000, 0.01), cohorts)  # fmt: skip
    assert [(c.kind, c.slot, c.state, c.previous) for c in found] == [
        ("drift", 0, "drifted", "stable"), ("drift", 1, "drifted", "stable"),
    ]  # fmt: skip
    assert found[0].evidence["arm"] == "control" and watch.drift_state("error_rate", 1) == "drifted"
    back = []
    for i in range(40, 120):
        back += watch.update_drift(test, T0 + 700.0 + 30 * i, LIVE, batch(ARM_CONTROL, 500, 0.0),
                                   control(5000, 0.01), cohorts)  # fmt: skip
    assert [(c.slot, c.state, c.previous) for c in back] == [(s, "stable", "drifted") for s in (0, 1)]


def test_after_promotion_a_new_version_worse_than_the_baseline_regresses_once() -> None:
    watch, test, _ = setup()
    watch.arm_post(test, control(20000, 0.01), slots=2)
    found = []
    for i in range(60):
        n_canary = np.full(2, 500.0 * i)
        found += watch.update_post(test, T0 + 30.0 * i, LIVE, batch(ARM_CANARY, 500, 0.05), n_canary)
    assert [(c.kind, c.slot, c.state, c.previous) for c in found] == [
        ("verdict", 0, "regressed", None), ("verdict", 1, "regressed", None),
    ]  # fmt: skip
    assert test.previous(0) == "regressed" and found[1].evidence["alpha"] == 1e-4 / 2


def test_a_cohort_without_min_samples_at_promotion_has_no_baseline_to_regress_from() -> None:
    watch, test, _ = setup()
    n, mean, var = control(20000, 0.01)
    n[1] = 50
    watch.arm_post(test, (n, mean, var), slots=2)
    assert watch.post["error_rate"].active.tolist() == [True, False]


def test_the_banks_survive_a_state_round_trip() -> None:
    watch, test, cohorts = setup()
    for now in (T0 + 100.0, T0 + 700.0, T0 + 730.0):
        watch.update_drift(test, now, LIVE, batch(ARM_CONTROL, 500, 0.03), control(5000, 0.01), cohorts)
    state = orjson.loads(orjson.dumps(watch.to_state()))
    assert list(state["error_rate"]) == ["drift", "post"]
    restored = BaselineWatch.from_state(state, EngineSettings())
    assert orjson.dumps(restored.to_state()) == orjson.dumps(watch.to_state())
