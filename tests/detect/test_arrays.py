"""Per-slot statistics: a batch is summed per cohort and arm once, and every check reads it from there."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from core_traffic import request
from rollguard.detect.arrays import RolloutArrays
from rollguard.detect.batch_columns import ARM_CANARY, ARM_CONTROL, EventColumns
from rollguard.detect.membership import CohortMembership
from rollguard.domain.events import Event
from rollguard.domain.metrics import BUILTIN_METRICS, quality_metric
from rollguard.settings.config import SegmentSettings

LATENCY = next(m for m in BUILTIN_METRICS if m.name == "latency_ms.mean")
ERRORS = next(m for m in BUILTIN_METRICS if m.name == "error_rate")


def fold(arrays: RolloutArrays, events: list[Event], control_frozen: bool = False) -> None:
    membership = CohortMembership(SegmentSettings(), 32)
    cols = EventColumns.of(events)
    rows, members, touched = membership.of_batch(cols, 100.0)
    arrays.grow(max(membership.slots_taken, arrays.cap))
    batch = arrays.batch_of(rows, members, cols, cols.continuous(), control_frozen)
    arrays.add(batch, touched)


def test_a_batch_folds_into_running_moments_per_slot_and_arm() -> None:
    arrays = RolloutArrays(max_quality_keys=4)
    control = [100.0, 200.0, 300.0]
    canary = [400.0, 500.0]
    fold(arrays, [request(i, "control", latency_ms=x, segment={"c": "a"}) for i, x in enumerate(control)])
    fold(arrays, [request(9.0 + i, "canary", latency_ms=x) for i, x in enumerate(canary)])
    n, mean, var = arrays.read(LATENCY, ARM_CONTROL)
    assert (n[0], mean[0], var[0]) == pytest.approx((3.0, 200.0, np.var(control, ddof=1)))
    assert (n[1], mean[1]) == pytest.approx((3.0, 200.0))  # cohort c=a: the same three requests
    n, mean, var = arrays.read(LATENCY, ARM_CANARY)
    assert (n[0], mean[0], var[0]) == pytest.approx((2.0, 450.0, np.var(canary, ddof=1)))
    assert n[1] == 0.0


def test_continuous_metrics_count_only_successful_requests_and_rates_count_all() -> None:
    arrays = RolloutArrays(max_quality_keys=4)
    fold(arrays, [request(0.0, latency_ms=100.0), request(1.0, status="error", latency_ms=5.0)] * 10)
    n, mean, _ = arrays.read(LATENCY, ARM_CONTROL)
    assert (n[0], mean[0]) == (10.0, 100.0)
    n, share, var = arrays.read(ERRORS, ARM_CONTROL)
    assert (n[0], share[0]) == (20.0, 0.5)
    assert var[0] == pytest.approx((11 / 22) * (11 / 22))  # regularised: (k + 1) / (n + 2)


def test_after_promotion_control_stragglers_never_reach_the_frozen_statistics() -> None:
    arrays = RolloutArrays(max_quality_keys=4)
    fold(arrays, [request(0.0, latency_ms=100.0), request(1.0, "canary", latency_ms=100.0)])
    before = arrays.counts.copy()
    fold(arrays, [request(2.0, latency_ms=900.0), request(3.0, "canary", latency_ms=900.0)], True)
    assert (arrays.counts[:, ARM_CONTROL] == before[:, ARM_CONTROL]).all()
    assert arrays.read(LATENCY, ARM_CONTROL)[1][0] == 100.0
    assert arrays.read(LATENCY, ARM_CANARY)[1][0] == 500.0
    assert arrays.hist("latency_ms", 0, ARM_CONTROL).count == 1


def test_growing_keeps_every_slot_and_forgetting_clears_one() -> None:
    arrays = RolloutArrays(max_quality_keys=4)
    arrays.add_quality_key("eval")
    fold(arrays, [request(0.0, latency_ms=100.0, quality={"eval": 0.5}, segment={"c": "a"})])
    arrays.grow(16)
    assert arrays.cap == 16 and arrays.counts.shape[0] == 16 and len(arrays.hists["latency_ms"]) == 16
    assert arrays.quality["eval"].shape == (16, 2, 3) and arrays.counts[1, ARM_CONTROL, 0] == 1
    arrays.forget(1)
    assert arrays.counts[1].sum() == 0 and arrays.hists["latency_ms"][1] is None
    assert arrays.counts[0, ARM_CONTROL, 0] == 1


def test_quality_keys_beyond_the_budget_are_refused_and_counted() -> None:
    arrays = RolloutArrays(max_quality_keys=2)
    assert [arrays.add_quality_key(k) for k in ("a", "b", "a", "c")] == [True, True, False, False]
    assert list(arrays.quality) == ["a", "b"] and arrays.quality_keys_refused == 1
    fold(arrays, [request(0.0, quality={"a": 1.0, "c": 2.0})])
    assert arrays.read(quality_metric("a"), ARM_CONTROL)[0][0] == 1.0


def test_promotion_hands_over_the_control_histograms_and_clears_the_canary() -> None:
    arrays = RolloutArrays(max_quality_keys=4)
    fold(arrays, [request(0.0, latency_ms=100.0), request(1.0, "canary", latency_ms=300.0)])
    control = arrays.hist("latency_ms", 0, ARM_CONTROL)
    frozen = arrays.restart_canary()
    assert frozen[(0, "latency_ms")] is control
    assert arrays.counts[:, ARM_CANARY].sum() == 0 and arrays.counts[0, ARM_CONTROL, 0] == 1
    assert arrays.hist("latency_ms", 0, ARM_CANARY).count == 0


def test_the_arrays_survive_a_state_round_trip() -> None:
    arrays = RolloutArrays(max_quality_keys=4)
    arrays.add_quality_key("eval")
    fold(arrays, [request(0.0, latency_ms=120.0, ttft_ms=10.0, quality={"eval": 0.7}, segment={"c": "a"})])
    state = orjson.loads(orjson.dumps(arrays.to_state()))
    restored = RolloutArrays.from_state(state, 4)
    assert orjson.dumps(restored.to_state()) == orjson.dumps(arrays.to_state())
    assert list(state) == ["cap", "counts", "moments", "quality", "hists"]
