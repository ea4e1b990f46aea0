"""The sample-ratio check counts each unit once, on a real split, and turns the rollout unhealthy once."""

from __future__ import annotations

import numpy as np
import orjson

from core_traffic import request
from rollguard.detect.batch_columns import EventColumns
from rollguard.detect.sample_ratio import SampleRatio


def units(arms: list[str], weight: float | None = 0.5, ids: list[str | None] | None = None) -> EventColumns:
    ids = ids if ids is not None else [f"u{i}" for i in range(len(arms))]
    return EventColumns.of([request(float(i), arm, unit_id=u, canary_weight=weight)
                            for i, (arm, u) in enumerate(zip(arms, ids, strict=True))])  # fmt: skip


def test_only_the_first_request_of_each_unit_counts() -> None:
    check = SampleRatio(srm_alpha=0.001, intended_weight=None, unit_filter_bits=1 << 12)
    check.update(units(["canary", "canary", "control"], ids=["a", "a", "b"]))
    check.update(units(["canary"], ids=["b"]))
    assert (check.test.n, check.test.observed_canary) == (2, 1)


def test_units_on_no_real_split_or_without_an_id_are_not_counted() -> None:
    check = SampleRatio(0.001, None, 1 << 12)
    check.update(units(["canary", "control"], weight=1.0))
    check.update(units(["control"], weight=0.0, ids=["x"]))
    check.update(units(["control"], ids=[None]))
    check.update(units(["control"], weight=None, ids=["y"]))  # no weight in the event, none configured
    assert check.test.n == 0


def test_the_configured_weight_stands_in_when_events_carry_none() -> None:
    check = SampleRatio(0.001, intended_weight=0.2, unit_filter_bits=1 << 12)
    check.update(units(["canary", "control"], weight=None))
    assert check.test.n == 2 and check.test.expected_canary == 0.4


def test_a_wrong_split_marks_the_rollout_unhealthy_once() -> None:
    check = SampleRatio(0.001, None, 1 << 16)
    rng = np.random.default_rng(1)
    found = []
    for b in range(20):
        arms = ["canary" if x < 0.7 else "control" for x in rng.random(500)]  # 70% canary at weight 0.5
        found += check.update(units(arms, ids=[f"u{b}-{i}" for i in range(500)]))
    assert [(c.kind, c.slot, c.metric, c.state, c.previous) for c in found] == [
        ("srm", 0, "sample_ratio", "unhealthy", "healthy")
    ]
    assert found[0].evidence["p_value"] < 0.001 and check.health.value == "unhealthy"
    assert check.view()["units"] == check.test.n and check.view()["alpha"] == 0.001


def test_a_correct_split_stays_healthy() -> None:
    check = SampleRatio(0.001, None, 1 << 16)
    rng = np.random.default_rng(2)
    for b in range(20):
        arms = ["canary" if x < 0.5 else "control" for x in rng.random(500)]
        assert check.update(units(arms, ids=[f"u{b}-{i}" for i in range(500)])) == []


def test_the_check_survives_a_state_round_trip() -> None:
    check = SampleRatio(0.001, None, 1 << 12)
    check.update(units(["canary", "control", "control"]))
    state = orjson.loads(orjson.dumps(check.to_state()))
    assert list(state) == ["srm", "health", "units"]
    restored = SampleRatio.from_state(state, 0.001, None, 1 << 12)
    assert restored.to_state() == check.to_state()
    restored.update(units(["canary"], ids=["u0"]))  # known unit: not counted again
    assert restored.test.n == 3
