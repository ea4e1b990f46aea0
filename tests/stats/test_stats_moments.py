"""Moments: exact agreement with numpy, batch/single/merge equivalence, JSON state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.stats import Moments

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def test_hand_values() -> None:
    m = Moments()
    assert (m.n, m.mean, m.variance, m.std) == (0, 0.0, 0.0, 0.0)
    m.update(3.0)
    assert (m.n, m.mean, m.variance) == (1, 3.0, 0.0)
    m.update_many(np.array([1.0, 5.0]))
    assert (m.n, m.mean, m.m2, m.variance) == (3, 3.0, 8.0, 4.0)
    assert m.sem2 == pytest.approx(4.0 / 3)
    assert Moments().sem2 == float("inf")


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=0, max_size=60), st.lists(finite, min_size=0, max_size=60))
def test_batch_single_and_merge_agree_with_numpy(a: list[float], b: list[float]) -> None:
    data = np.array(a + b, dtype=np.float64)
    single = Moments()
    for x in data:
        single.update(float(x))
    batch = Moments()
    batch.update_many(np.array(a))
    batch.update_many(np.array(b))
    merged = Moments.of(a)
    merged.merge(Moments.of(b))
    for m in (single, batch, merged):
        assert m.n == data.size
        if data.size:
            scale = max(1.0, float(np.abs(data).max()))
            assert m.mean == pytest.approx(float(data.mean()), abs=1e-9 * scale)
        if data.size >= 2:
            assert m.variance == pytest.approx(float(data.var(ddof=1)), rel=1e-7, abs=1e-9 * scale**2)


def test_numerically_stable_with_a_large_offset() -> None:
    rng = np.random.default_rng(1)
    x = 1e9 + rng.standard_normal(100_000)
    m = Moments()
    for chunk in np.array_split(x, 37):
        m.update_many(chunk)
    assert m.variance == pytest.approx(float(np.var(x - 1e9, ddof=1)), rel=1e-6)


def test_state_roundtrip_is_json() -> None:
    m = Moments.of([1.0, 2.0, 4.0])
    state = json.loads(json.dumps(m.to_state(), allow_nan=False))
    back = Moments.from_state(state)
    assert back.to_state() == m.to_state()
    with pytest.raises(ValueError):
        Moments.from_state({"v": 2, "n": 1, "mean": 0.0, "m2": 0.0})
    with pytest.raises(ValueError):
        Moments.from_state({"v": 1, "n": 1})


def test_rejects_non_finite() -> None:
    with pytest.raises(ValueError):
        Moments().update(float("nan"))
    with pytest.raises(ValueError):
        Moments().update_many(np.array([1.0, np.inf]))
