"""A cohort is beyond the whole rollout's regression only when its effect exceeds the whole's by more
than the margin, on the verdicts' own confidence sequences."""

from __future__ import annotations

import numpy as np
import orjson

from rollguard.detect.arrays import ArmRead
from rollguard.detect.budget import AlphaBudget
from rollguard.detect.excess import ExcessTests
from rollguard.detect.mean_tests import REGRESSED, MeanTest, MeanTests
from rollguard.domain.metrics import BUILTIN_METRICS, MetricSpec
from rollguard.settings.config import Config

ERRORS = next(m for m in BUILTIN_METRICS if m.name == "error_rate")
LATENCY = next(m for m in BUILTIN_METRICS if m.name == "latency_ms.mean")
LIVE = np.array([True, True, True])


def setup(spec: MetricSpec = ERRORS) -> tuple[MeanTests, MeanTest]:
    budget = AlphaBudget(Config())
    budget.assign(1, 0.4, 1)
    budget.assign(2, 0.4, 1)
    tests = MeanTests()
    test = tests.add(spec, budget, cap=3)
    test.state[:] = REGRESSED
    test.tau2[:] = (spec.margin * (1.0 if spec.kind == "rate" else 400.0)) ** 2
    return tests, test


def arms(
    canary: list[float], control: float, n_t: float, n_c: float, rate: bool = True
) -> tuple[ArmRead, ArmRead]:
    mean_t = np.array(canary)
    mean_c = np.full(3, control)
    var_t = mean_t * (1 - mean_t) if rate else np.full(3, 200.0**2)
    var_c = mean_c * (1 - mean_c) if rate else np.full(3, 200.0**2)
    return (np.full(3, n_t), mean_t, var_t), (np.full(3, n_c), mean_c, var_c)


def test_cohorts_that_regress_with_the_whole_rollout_are_not_beyond_it() -> None:
    tests, _ = setup()
    canary, control = arms([0.06, 0.061, 0.059], 0.01, 20000, 180000)
    assert ExcessTests().update(tests, lambda t: (canary, control), LIVE, 100) == []


def test_a_cohort_far_worse_than_the_whole_rollout_is_beyond_it_once() -> None:
    tests, _ = setup()
    canary, control = arms([0.03, 0.12, 0.02], 0.01, 20000, 180000)
    excess = ExcessTests()
    found = excess.update(tests, lambda t: (canary, control), LIVE, 100)
    assert [(c.kind, c.slot, c.metric, c.state) for c in found] == [
        ("excess", 1, "error_rate", "beyond_parent")
    ]
    ev = found[0].evidence
    assert ev["effect_lo"] - ev["parent_effect_hi"] > ev["margin"] == 0.005
    assert excess.update(tests, lambda t: (canary, control), LIVE, 100) == []  # sticky, said once
    restored = ExcessTests.from_state(orjson.loads(orjson.dumps(excess.to_state())), 3)
    assert restored.to_state() == {"error_rate": [1]}


def test_relative_margins_compare_relative_effects_and_an_unregressed_whole_says_nothing() -> None:
    tests, test = setup(LATENCY)
    canary, control = arms([480.0, 700.0, 470.0], 400.0, 20000, 180000, rate=False)
    found = ExcessTests().update(tests, lambda t: (canary, control), LIVE, 100)
    assert [c.slot for c in found] == [1]  # +75% against +20%: beyond the 10% margin
    test.state[0] = 0
    assert ExcessTests().update(tests, lambda t: (canary, control), LIVE, 100) == []
