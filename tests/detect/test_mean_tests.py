"""Cumulative mean comparisons: all slots decided at once, exactly as compare_means would, and sticky."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from rollguard.detect.budget import AlphaBudget
from rollguard.detect.comparisons import ArmSummary, compare_means, contrast_scale
from rollguard.detect.mean_tests import NOT_READ, STATE_CODE, MeanTests, slot_states
from rollguard.domain.metrics import BUILTIN_METRICS, MetricSpec, quality_metric
from rollguard.settings.config import Config

ERRORS = next(m for m in BUILTIN_METRICS if m.name == "error_rate")
LATENCY = next(m for m in BUILTIN_METRICS if m.name == "latency_ms.mean")
LIVE = np.array([True, True, False])


def budget() -> AlphaBudget:
    """The default budget with two segment slots, a third and a tenth of the traffic."""
    b = AlphaBudget(Config())
    b.assign(1, 1 / 3, 1)
    b.assign(2, 0.1, 1)
    return b


def arm(n: float, mean: float, var: float, cap: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.full(cap, n), np.full(cap, mean), np.full(cap, var)


def rate(n: float, p: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return arm(n, p, p * (1 - p))


@pytest.mark.parametrize("spec", [ERRORS, LATENCY, quality_metric("eval"), quality_metric("e", 0.02, False)])
def test_the_vectorised_states_agree_with_compare_means_slot_by_slot(spec: MetricSpec) -> None:
    rng = np.random.default_rng(3)
    k = 400
    base = 0.02 if spec.kind == "rate" else 50.0
    mean_c = base * rng.uniform(0.5, 1.5, k)
    mean_t = mean_c * rng.uniform(0.7, 1.4, k)
    var_c, var_t = (mean_c * rng.uniform(0.1, 2.0, k)) ** 2 / 4, (mean_t * rng.uniform(0.1, 2.0, k)) ** 2 / 4
    n_c, n_t = rng.integers(100, 20000, k).astype(float), rng.integers(100, 5000, k).astype(float)
    tau2 = np.array([contrast_scale(spec, m) ** 2 for m in mean_c])
    alphas = rng.choice([1e-3, 1e-4, 2e-5], k)  # every slot at its own share of the budget
    codes = slot_states(spec, n_t, mean_t, var_t, n_c, mean_c, var_c, tau2, alphas)
    for i in range(k):
        state, _ = compare_means(spec, ArmSummary(int(n_c[i]), mean_c[i], var_c[i]),
                                 ArmSummary(int(n_t[i]), mean_t[i], var_t[i]), float(alphas[i]),
                                 float(tau2[i]))  # fmt: skip
        assert codes[i] == STATE_CODE[state], i
    assert len(set(codes.tolist())) == 3  # all three states were exercised


def test_a_canary_worse_than_the_margin_regresses_in_live_slots_and_stays_regressed() -> None:
    tests = MeanTests()
    test = tests.add(ERRORS, budget(), cap=3)
    found = tests.evaluate(test, LIVE, rate(8000, 0.05), rate(40000, 0.01), min_n=100)
    assert [(c.slot, c.state, c.previous) for c in found] == [(0, "regressed", None), (1, "regressed", None)]
    assert found[0].evidence["interval"][0] > 0 and test.state[2] == NOT_READ  # slot 2 is not live
    assert tests.evaluate(test, LIVE, rate(80000, 0.01), rate(40000, 0.01), min_n=100) == []
    assert test.previous(0) == "regressed"


def test_an_equal_canary_becomes_non_inferior_and_recovers_from_insufficient() -> None:
    tests = MeanTests()
    test = tests.add(ERRORS, budget(), cap=3)
    first = tests.evaluate(test, LIVE, rate(200, 0.01), rate(1000, 0.01), min_n=100)
    assert {c.state for c in first} == {"insufficient"}
    later = tests.evaluate(test, LIVE, rate(40000, 0.01), rate(200000, 0.01), min_n=100)
    assert [(c.state, c.previous) for c in later] == [("non_inferior", "insufficient")] * 2


def test_tau2_is_fixed_at_a_slots_first_decision() -> None:
    tests = MeanTests()
    test = tests.add(LATENCY, budget(), cap=3)
    tests.evaluate(test, LIVE, arm(500, 400.0, 1e4), arm(500, 400.0, 1e4), min_n=100)
    assert test.tau2[0] == pytest.approx(40.0**2) and np.isnan(test.tau2[2])
    tests.evaluate(test, LIVE, arm(900, 800.0, 1e4), arm(900, 800.0, 1e4), min_n=100)
    assert test.tau2[0] == pytest.approx(40.0**2)


def test_slots_below_min_samples_are_not_read() -> None:
    tests = MeanTests()
    test = tests.add(ERRORS, budget(), cap=3)
    assert tests.evaluate(test, LIVE, rate(99, 0.5), rate(5000, 0.01), min_n=100) == []
    assert (test.state == NOT_READ).all() and np.isnan(test.tau2).all()


def test_the_dashboard_view_puts_a_regression_beyond_the_margin_in_relative_terms() -> None:
    tests = MeanTests()
    test = tests.add(LATENCY, budget(), cap=3)
    canary, control = arm(3000, 520.0, 200.0**2), arm(20000, 400.0, 200.0**2)
    tests.evaluate(test, LIVE, canary, control, min_n=100)
    view = tests.view(test, 1, canary, control, drift="stable")
    assert view["state"] == "regressed" and view["drift"] == "stable"
    assert view["margin_relative"] and view["margin"] == 0.1
    assert view["effect"] == pytest.approx(0.3)
    assert 0.1 < view["effect_lo"] < 0.3 < view["effect_hi"]
    assert (view["control"], view["canary"]) == (400.0, 520.0)
    assert (view["n_control"], view["n_canary"]) == (20000, 3000)
    # The view reads: evaluating again decides exactly as before.
    assert test.state.tolist() == [2, 2, NOT_READ]


def test_mean_tests_survive_a_state_round_trip() -> None:
    tests = MeanTests()
    test = tests.add(ERRORS, budget(), cap=3)
    tests.add(LATENCY, budget(), cap=3)
    tests.evaluate(test, LIVE, rate(8000, 0.05), rate(40000, 0.01), min_n=100)
    state = orjson.loads(orjson.dumps(tests.to_state()))
    specs = {s.name: s for s in (ERRORS, LATENCY)}
    restored = MeanTests.from_state(state, specs, budget())
    assert restored.to_state() == tests.to_state()
    assert list(state["error_rate"]) == ["state", "tau2"] and state["latency_ms.mean"]["tau2"][0] is None
