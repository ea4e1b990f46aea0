"""Baseline drift and post-rollout change: CUSUMs against a reference frozen from the control.

Rates are charted by their events; continuous metrics by the share of values above (1 + margin) ×
an upper bound of the reference's median, which holds its α whatever the tails.
"""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from core_traffic import T0
from rollguard.detect.arrays import BatchArrays, new_hist
from rollguard.detect.baseline_drift import BaselineValues, BaselineWatch
from rollguard.detect.batch_columns import ARM_CANARY, ARM_CONTROL
from rollguard.detect.budget import AlphaBudget
from rollguard.detect.mean_tests import MeanTest, MeanTests
from rollguard.domain.cohorts import Cohort
from rollguard.domain.metrics import BUILTIN_METRICS, CONTINUOUS_FIELDS, MetricSpec
from rollguard.settings.config import Config, EngineSettings

ERRORS = next(m for m in BUILTIN_METRICS if m.name == "error_rate")
TPOT = next(m for m in BUILTIN_METRICS if m.name == "tpot_ms.mean")
LIVE = np.array([True, True])
NO_VALUES = BaselineValues(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64),
                           {f: np.zeros(0) for f in CONTINUOUS_FIELDS})  # fmt: skip


def setup(spec: MetricSpec = ERRORS) -> tuple[BaselineWatch, MeanTest, list[Cohort]]:
    watch = BaselineWatch(EngineSettings())  # baseline_window_s 600, min_samples 100, grid 30 s
    budget = AlphaBudget(Config())
    budget.assign(1, 0.3, 1)
    test = MeanTests().add(spec, budget, cap=2)
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


def drift(watch: BaselineWatch, test: MeanTest, now: float, b: BatchArrays, c: tuple, cohorts: list[Cohort],
          values: BaselineValues = NO_VALUES, hists: dict | None = None) -> list:  # fmt: skip
    return watch.update_drift(test, now, LIVE, b, values, c, hists or {}, cohorts)


def test_the_controls_reference_is_frozen_after_baseline_window_s_with_min_samples() -> None:
    watch, test, cohorts = setup()
    quiet = batch(ARM_CONTROL, 100, 0.01)
    drift(watch, test, T0 + 50.0, quiet, control(50, 0.01), cohorts)
    assert not watch.drift["error_rate"].active.any()  # fewer than min_samples control values
    drift(watch, test, T0 + 100.0, quiet, control(5000, 0.01), cohorts)
    assert cohorts[0].born == T0 + 100.0  # the whole rollout's history starts at its first read
    assert watch.drift_state("error_rate", 1) is None
    drift(watch, test, T0 + 700.0, quiet, control(5000, 0.01), cohorts)
    assert watch.drift["error_rate"].active.tolist() == [True, True]
    assert watch.drift_state("error_rate", 0) == "stable"
    assert watch.drift["error_rate"].reference[0] == 0.01 + math.sqrt(0.01 * 0.99 / 5000)  # plug-in + 1 SE


def test_a_shift_of_the_control_is_drift_and_clears_when_the_control_returns() -> None:
    watch, test, cohorts = setup()
    for now in (T0 + 100.0, T0 + 700.0):
        drift(watch, test, now, batch(ARM_CONTROL, 100, 0.01), control(5000, 0.01), cohorts)
    found = []
    for i in range(1, 40):
        found += drift(watch, test, T0 + 700.0 + 30 * i, batch(ARM_CONTROL, 500, 0.05), control(5000, 0.01),
                       cohorts)  # fmt: skip
    assert [(c.kind, c.slot, c.state, c.previous) for c in found] == [
        ("drift", 0, "drifted", "stable"), ("drift", 1, "drifted", "stable"),
    ]  # fmt: skip
    assert found[0].evidence["arm"] == "control" and watch.drift_state("error_rate", 1) == "drifted"
    assert 0.04 < found[0].evidence["recent"] <= 0.05  # the window that decided: 5% errors
    back = []
    for i in range(40, 120):
        back += drift(watch, test, T0 + 700.0 + 30 * i, batch(ARM_CONTROL, 500, 0.0), control(5000, 0.01),
                      cohorts)  # fmt: skip
    assert [(c.slot, c.state, c.previous) for c in back] == [(s, "stable", "drifted") for s in (0, 1)]


def test_after_promotion_a_new_version_worse_than_the_baseline_regresses_once() -> None:
    watch, test, _ = setup()
    watch.arm_post(test, control(20000, 0.01), slots=2, frozen={})
    found = []
    for i in range(60):
        n_canary = np.full(2, 500.0 * i)
        found += watch.update_post(
            test, T0 + 30.0 * i, LIVE, batch(ARM_CANARY, 500, 0.05), NO_VALUES, n_canary
        )
    assert [(c.kind, c.slot, c.state, c.previous) for c in found] == [
        ("verdict", 0, "regressed", None), ("verdict", 1, "regressed", None),
    ]  # fmt: skip
    assert test.previous(0) == "regressed" and found[1].evidence["alpha"] == pytest.approx(
        test.alpha(1) / 2, rel=1e-5
    )


def test_a_cohort_without_min_samples_at_promotion_has_no_baseline_to_regress_from() -> None:
    watch, test, _ = setup()
    n, mean, var = control(20000, 0.01)
    n[1] = 50
    watch.arm_post(test, (n, mean, var), slots=2, frozen={})
    assert watch.post["error_rate"].active.tolist() == [True, False]


def heavy_tailed(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    """Pareto(1.2)-tailed values (infinite variance) around 20: a time per output token of short answers."""
    return scale * 20.0 * (1.0 + rng.pareto(1.2, n))


def values_of(control_values: np.ndarray, slots: int = 2) -> tuple[BaselineValues, BatchArrays]:
    """Each value in every slot, control arm."""
    n = control_values.size
    rows = np.repeat(np.arange(slots) * 2 + ARM_CONTROL, n).astype(np.int64)
    members = np.tile(np.arange(n), slots).astype(np.int64)
    continuous = {f: np.full(n, np.nan) for f in CONTINUOUS_FIELDS}
    continuous["tpot_ms"] = control_values
    moments = np.zeros((slots, 2, 5, 3))
    return BaselineValues(rows, members, continuous), BatchArrays(np.zeros((slots, 2, 6), dtype=np.int64),
                                                                  moments, {}, {})  # fmt: skip


def reference_hists(rng: np.random.Generator, n: int) -> dict:
    pairs = []
    for _ in range(2):
        h = new_hist("tpot_ms")
        h.update_many(heavy_tailed(rng, n))
        pairs.append([h, new_hist("tpot_ms")])
    return {"tpot_ms": pairs}


def test_a_heavy_tailed_control_that_does_not_move_never_drifts() -> None:
    """Infinite variance: a Gaussian chart on raw means with a mean + 1 SE reference overspends here."""
    alarms = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        watch, test, cohorts = setup(TPOT)
        hists = reference_hists(rng, 3000)
        for i, now in enumerate(np.arange(T0 + 100.0, T0 + 100.0 + 4 * 3600.0, 30.0)):
            values, b = values_of(heavy_tailed(rng, 60))
            found = drift(watch, test, now, b, control(3000 + 60 * i, 40.0), cohorts, values, hists)
            alarms += sum(1 for c in found if c.state == "drifted")
        assert watch.drift["tpot_ms.mean"].active.all()
    assert alarms == 0


def test_a_heavy_tailed_control_that_slows_by_half_drifts_and_the_evidence_says_by_how_much() -> None:
    rng = np.random.default_rng(7)
    watch, test, cohorts = setup(TPOT)
    hists = reference_hists(rng, 3000)
    found = []
    for i, now in enumerate(np.arange(T0 + 100.0, T0 + 100.0 + 3600.0, 30.0)):
        scale = 1.0 if now < T0 + 1800.0 else 1.5
        values, b = values_of(heavy_tailed(rng, 60, scale))
        found += drift(watch, test, now, b, control(3000 + 60 * i, 40.0), cohorts, values, hists)
    drifted = [c for c in found if c.state == "drifted"]
    assert sorted(c.slot for c in drifted) == [0, 1]
    assert all(c.evidence["method"] == "cusum-exceedance" for c in drifted)
    ev = drifted[0].evidence
    assert ev["recent"] > 0.6  # of the window's values above the bar (1/2 when the median holds)
    assert ev["bar"] > 1.1 * ev["reference"]  # 1.1 x an upper bound of the reference's median


def test_the_banks_survive_a_state_round_trip() -> None:
    watch, test, cohorts = setup()
    for now in (T0 + 100.0, T0 + 700.0, T0 + 730.0):
        drift(watch, test, now, batch(ARM_CONTROL, 500, 0.03), control(5000, 0.01), cohorts)
    state = orjson.loads(orjson.dumps(watch.to_state()))
    assert list(state["error_rate"]) == ["drift", "post"]
    restored = BaselineWatch.from_state(state, EngineSettings())
    assert orjson.dumps(restored.to_state()) == orjson.dumps(watch.to_state())
