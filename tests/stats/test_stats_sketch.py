"""LogHistogram: bucket layout, guaranteed bounds on order statistics and counts, merge, state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.stats import LogHistogram

values = st.lists(
    st.one_of(
        st.just(0.0),
        st.floats(min_value=0.0, max_value=2e-3),
        st.floats(min_value=1e-3, max_value=1e7),
        st.floats(min_value=1e7, max_value=1e12),
    ),
    min_size=1,
    max_size=80,
)


def test_layout_and_memory() -> None:
    h = LogHistogram()
    gamma = 1.02 / 0.98
    assert h.gamma == pytest.approx(gamma)
    expected = math.ceil(math.log(1e7) / math.log(gamma)) - math.ceil(math.log(1e-3) / math.log(gamma)) + 3
    assert h.n_buckets == expected == 578
    assert h.counts.dtype == np.int64


def test_bucket_relative_accuracy() -> None:
    h = LogHistogram(rel_accuracy=0.02)
    x = np.geomspace(1e-3, 1e7, 10_001)
    idx = h._index(x)
    lo, hi = h._lo[idx], h._hi[idx]
    assert np.all((lo <= x) & (x <= hi))
    rep = h._rep[idx]
    assert np.all(np.abs(rep - x) <= 0.02 * x * (1 + 1e-9))


@settings(max_examples=80, deadline=None)
@given(values, st.floats(min_value=0.0, max_value=1e8))
def test_rank_bounds_and_counts_are_guaranteed(xs: list[float], t: float) -> None:
    h = LogHistogram()
    h.update_many(np.array(xs))
    srt = np.sort(np.array(xs))
    for k in range(1, len(xs) + 1):
        lo, hi = h.value_bounds_at_rank(k)
        assert lo <= srt[k - 1] <= hi
    arr = np.array(xs)
    assert h.count_le(t) <= int((arr <= t).sum()) <= h.count - h.count_gt(t)
    assert h.count_lt(t) <= int((arr < t).sum()) <= h.count - h.count_ge(t)
    assert h.count_gt(t) <= int((arr > t).sum())
    assert h.count_ge(t) <= int((arr >= t).sum())


def test_counts_are_exact_at_bucket_edges_and_extremes() -> None:
    h = LogHistogram(rel_accuracy=0.01)
    rng = np.random.default_rng(0)
    x = rng.lognormal(3.0, 1.0, 10_000)
    h.update_many(x)
    assert h.count_le(float(x.max())) == 10_000
    assert h.count_ge(float(x.min())) == 10_000
    # at a value between buckets, the slack is one bucket's count at most
    t = float(np.median(x))
    slack = (h.count - h.count_gt(t)) - h.count_le(t)
    assert slack <= int(h.counts.max())


def test_quantile_estimate_relative_error() -> None:
    rng = np.random.default_rng(1)
    x = rng.lognormal(5.0, 1.0, 50_000)
    h = LogHistogram(rel_accuracy=0.02)
    for chunk in np.array_split(x, 13):
        h.update_many(chunk)
    srt = np.sort(x)
    for q in (0.0, 0.1, 0.5, 0.95, 0.99, 1.0):
        exact = srt[math.floor(q * (x.size - 1))]
        assert abs(h.quantile(q) - exact) <= 0.02 * exact * (1 + 1e-9)
    assert math.isnan(LogHistogram().quantile(0.5))


def test_underflow_overflow_and_validation() -> None:
    h = LogHistogram(min_value=1.0, max_value=100.0)
    h.update_many(np.array([0.0, 0.5, 50.0, 1e9, np.inf]))
    assert h.counts[0] == 2 and h.counts[-1] == 2
    assert h.value_bounds_at_rank(1) == (0.0, 1.0)
    assert h.value_bounds_at_rank(5) == (h._lo[-1], math.inf)
    assert h.quantile(0.0) == 0.0
    for bad in (np.array([-1.0]), np.array([np.nan])):
        with pytest.raises(ValueError):
            h.update_many(bad)
    with pytest.raises(ValueError):
        h.value_bounds_at_rank(0)
    with pytest.raises(ValueError):
        h.value_bounds_at_rank(6)
    state = json.loads(json.dumps(h.to_state(), allow_nan=False))
    back = LogHistogram.from_state(state)
    assert back.vmax == math.inf and back.count == 5


def test_merge_equals_union_and_state_is_compact_json() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.exponential(100.0, 5000), rng.exponential(300.0, 3000)
    ha, hb, hab = LogHistogram(), LogHistogram(), LogHistogram()
    ha.update_many(a)
    hb.update_many(b)
    hab.update_many(np.concatenate([a, b]))
    ha.merge(hb)
    assert np.array_equal(ha.counts, hab.counts)
    assert (ha.count, ha.vmin, ha.vmax) == (hab.count, hab.vmin, hab.vmax)
    state = ha.to_state()
    text = json.dumps(state, allow_nan=False)
    assert len(state["idx"]) == int(np.count_nonzero(ha.counts)) < ha.n_buckets
    back = LogHistogram.from_state(json.loads(text))
    assert np.array_equal(back.counts, ha.counts) and back.count == ha.count
    assert back.to_state() == state
    with pytest.raises(ValueError):
        ha.merge(LogHistogram(rel_accuracy=0.01))
    empty = LogHistogram.from_state(LogHistogram().to_state())
    assert empty.count == 0 and empty.count_le(5.0) == 0


def test_single_update_matches_batch() -> None:
    rng = np.random.default_rng(4)
    x = [0.0, 3.5, 1e-4, 2e7, 17.0, math.inf, *rng.lognormal(2.0, 4.0, 2000).tolist()]
    h1, h2 = LogHistogram(), LogHistogram()
    for v in x:
        h1.update(v)
    h2.update_many(x)
    assert np.array_equal(h1.counts, h2.counts)
    assert (h1.count, h1.vmin, h1.vmax) == (h2.count, h2.vmin, h2.vmax)
    with pytest.raises(ValueError):
        h1.update(-0.5)
