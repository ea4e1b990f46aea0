"""Onset checks: the paired detector of the canary phase compares the two arms of the same batch, and
an alarm quotes the recent window that decided it."""

from __future__ import annotations

import numpy as np
import orjson

from core_traffic import T0
from rollguard.detect.arrays import BatchArrays, RolloutArrays
from rollguard.detect.batch_columns import ARM_CANARY, ARM_CONTROL
from rollguard.detect.budget import AlphaBudget
from rollguard.detect.mean_tests import REGRESSED, MeanTests
from rollguard.detect.onset_checks import MeanOnset, TailOnset
from rollguard.detect.slot_change import SlotChange
from rollguard.detect.tail_tests import TailTests
from rollguard.domain.metrics import BUILTIN_METRICS, CONTINUOUS_FIELDS, MetricSpec
from rollguard.settings.config import Config

ERRORS = next(m for m in BUILTIN_METRICS if m.name == "error_rate")
LATENCY = next(m for m in BUILTIN_METRICS if m.name == "latency_ms.mean")
P95 = next(m for m in BUILTIN_METRICS if m.name == "latency_ms.p95")


def budget() -> AlphaBudget:
    """The default budget with every slot of the arrays (8) assigned, each with a tenth of the traffic."""
    b = AlphaBudget(Config())
    for slot in range(1, 8):
        b.assign(slot, 0.1, 1)
    return b


def watched(spec: MetricSpec = ERRORS) -> tuple[RolloutArrays, MeanTests, MeanOnset]:
    """Both arms with a long, equal history (1% errors, latency 400 ± 100 ms) in every slot."""
    arrays = RolloutArrays(max_quality_keys=4)
    for arm, n in ((ARM_CONTROL, 20000), (ARM_CANARY, 2000)):
        arrays.counts[:, arm, 0] = n
        arrays.counts[:, arm, 1] = n // 100
        arrays.moments[:, arm, 0] = (n, 400.0, 100.0**2 * (n - 1))
    tests = MeanTests()
    test = tests.add(spec, budget(), arrays.cap)
    test.tau2[:] = 0.005**2 if spec.kind == "rate" else 40.0**2
    onset = MeanOnset(horizon_updates=481.0, grid_s=30.0)
    onset.add(test, arrays.cap)
    return arrays, tests, onset


def batch(cap: int, control: tuple[int, float], canary: tuple[int, float]) -> BatchArrays:
    """A batch of n requests per arm with an error share, latencies all equal to 400 × factor."""
    counts = np.zeros((cap, 2, 6), dtype=np.int64)
    moments = np.zeros((cap, 2, 5, 3))
    for arm, (n, x) in ((ARM_CONTROL, control), (ARM_CANARY, canary)):
        counts[:, arm, 0] = n
        counts[:, arm, 1] = round(n * x)
        moments[:, arm, 0] = (n, n * 400.0 * (1 + x), n * (400.0 * (1 + x)) ** 2)
    return BatchArrays(counts, moments, {}, {})


def run(spec: MetricSpec, control_shift: float, canary_shift: float, cells: int = 40) -> list[SlotChange]:
    arrays, tests, onset = watched(spec)
    live = np.ones(arrays.cap, dtype=bool)
    found: list[SlotChange] = []
    for i in range(cells):  # one batch per 30-s grid cell
        b = batch(arrays.cap, (900, control_shift), (100, canary_shift))
        found += onset.update(T0 + 30.0 * i, live, b, arrays, tests, min_n=100)
    return found


def test_a_rate_shift_that_hits_both_arms_cancels_in_the_onset_detector() -> None:
    assert run(ERRORS, 0.10, 0.10) == []


def test_a_rate_shift_in_the_canary_alone_regresses_every_cohort_it_hits() -> None:
    found = run(ERRORS, 0.01, 0.10)
    assert sorted(c.slot for c in found) == list(range(8)) and {c.state for c in found} == {"regressed"}
    ev = next(c.evidence for c in found if c.slot == 0)
    assert (
        ev["method"] == "paired-sr-mixture"
        and ev["window"] == "recent"
        and ev["statistic"] >= ev["threshold"]
    )
    assert ev["alpha"] == 0.001 / 4  # half of the whole rollout's half of error_rate's 0.1%
    assert found[0].previous is None
    # The recent window: 10% of the canary's requests against 1% of the control's, not the cumulative 1%.
    assert ev["recent_canary"] == 0.1 and ev["recent_control"] == 0.01
    assert ev["recent_n_canary"] == 100 * ev["updates"] and ev["recent_s"] == 30.0 * ev["updates"]


def test_a_mean_shift_that_hits_both_arms_cancels_and_one_in_the_canary_alone_does_not() -> None:
    assert run(LATENCY, 0.5, 0.5) == []
    found = run(LATENCY, 0.0, 0.5)
    assert {c.slot for c in found} == set(range(8))


def test_a_metric_already_regressed_is_no_longer_watched() -> None:
    arrays, tests, onset = watched()
    tests.tests["error_rate"].state[:] = REGRESSED
    live = np.ones(arrays.cap, dtype=bool)
    for i in range(20):
        assert onset.update(T0 + 30.0 * i, live, batch(8, (900, 0.01), (100, 0.5)), arrays, tests, 100) == []


def tail_setup(factor_control: float, factor_canary: float) -> list[SlotChange]:
    """Histories of equal lognormal latencies; then batches whose values are scaled per arm."""
    arrays = RolloutArrays(max_quality_keys=4)
    rng = np.random.default_rng(0)
    for arm in (ARM_CONTROL, ARM_CANARY):
        arrays.hist("latency_ms", 0, arm).update_many(rng.lognormal(6.0, 0.5, 5000))
    tails = TailTests([P95], budget())
    onset = TailOnset.for_tails(tails, 481.0, 30.0, arrays.cap)
    live = np.zeros(arrays.cap, dtype=bool)
    live[0] = True
    found: list[SlotChange] = []
    for i in range(40):
        values = np.concatenate([rng.lognormal(6.0, 0.5, 900) * factor_control,
                                 rng.lognormal(6.0, 0.5, 100) * factor_canary])  # fmt: skip
        rows = np.array([ARM_CONTROL] * 900 + [ARM_CANARY] * 100, dtype=np.int64)
        continuous = {f: np.full(values.size, np.nan) for f in CONTINUOUS_FIELDS} | {"latency_ms": values}
        members = np.arange(values.size)
        found += onset.update(T0 + 30.0 * i, live, rows, members, continuous, arrays, tails, 100)
    return found


def test_a_tail_shift_that_hits_both_arms_cancels_and_one_in_the_canary_alone_regresses() -> None:
    assert tail_setup(1.5, 1.5) == []
    found = tail_setup(1.0, 1.5)
    assert [(c.slot, c.metric, c.state) for c in found] == [(0, "latency_ms.p95", "regressed")]
    ev = found[0].evidence
    assert ev["observation"] == "tail exceedance share"
    assert ev["recent_exceed_canary"] > 2 * ev["recent_exceed_control"]  # above T vs above q, recently


def test_onset_banks_survive_a_state_round_trip() -> None:
    arrays, tests, onset = watched()
    live = np.ones(arrays.cap, dtype=bool)
    onset.update(T0, live, batch(8, (900, 0.01), (100, 0.03)), arrays, tests, 100)
    state = orjson.loads(orjson.dumps(onset.to_state()))
    restored = MeanOnset.from_state(state, 481.0, 30.0)
    assert orjson.dumps(restored.to_state()) == orjson.dumps(onset.to_state())
    tails = TailTests([P95], AlphaBudget(Config()))
    tail_onset = TailOnset.for_tails(tails, 481.0, 30.0, 8)
    again = TailOnset.from_state(orjson.loads(orjson.dumps(tail_onset.to_state())))
    assert again.to_state() == tail_onset.to_state()
