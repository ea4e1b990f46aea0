"""Budgeted sampling: the cap holds in event time, rare cohorts get their share, arms stay comparable."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from rollguard.embeddings.sampler import CANARY, CONTROL, PAIR, BudgetSampler

CELLS = {"chat": 0.60, "coding": 0.30, "legal": 0.10}  # traffic shares


@functools.cache
def stream(rate: float, seconds: float, canary: float, seed: int = 0) -> list[tuple[float, str, int, str]]:
    """(ts, cell, arm, id) of a Poisson-like stream with fixed shares."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    ts = np.sort(rng.uniform(0.0, seconds, n)) + 1_767_225_600.0
    cells = rng.choice(list(CELLS), n, p=list(CELLS.values()))
    arms = np.where(rng.random(n) < canary, CANARY, CONTROL)
    rows = zip(ts.tolist(), cells.tolist(), arms.tolist(), strict=True)
    return [(t, c, a, f"e{i}") for i, (t, c, a) in enumerate(rows)]


def run(sampler: BudgetSampler, events) -> list[tuple[str, int, float]]:
    out = []
    for ts, cell, arm, key in events:
        w = sampler.offer("r1", cell, arm, ts, key)
        if w > 0:
            out.append((cell, arm, w))
    return out


def test_the_cap_holds_in_event_time_at_2000_events_per_second() -> None:
    sampler = BudgetSampler(20.0, burst_s=10.0)
    kept = run(sampler, stream(2000, 120, 0.1))
    assert len(kept) <= 20 * 120 + 20 * 10  # budget plus one burst
    assert len(kept) >= 0.8 * 20 * 120  # and it is used


def test_decisions_depend_on_the_events_only() -> None:
    events = stream(500, 60, 0.2, seed=4)
    a = run(BudgetSampler(10.0, seed=3), events)
    b = run(BudgetSampler(10.0, seed=3), events)
    assert a == b
    assert run(BudgetSampler(10.0, seed=4), events) != a  # the salt changes which events, not how many


def test_the_canary_gets_half_and_the_control_at_most_four_times_as_much() -> None:
    sampler = BudgetSampler(20.0)
    kept = run(sampler, stream(1000, 200, 0.1))[-3000:]  # after the first plans
    canary = sum(1 for _, a, _ in kept if a == CANARY)
    control = len(kept) - canary
    assert canary == pytest.approx(len(kept) / 2, rel=0.15)
    assert control <= 4.2 * canary
    # at 40 events/s the canary (4/s) is below half the budget: every canary answer is kept
    low = BudgetSampler(20.0)
    events = stream(40, 600, 0.1, seed=2)
    kept_low = run(low, events)
    assert sum(1 for _, a, _ in kept_low if a == CANARY) == sum(1 for e in events if e[2] == CANARY)
    assert sum(1 for _, a, _ in kept_low if a == CONTROL) <= 4.2 * sum(1 for e in events if e[2] == CANARY)


def test_a_rare_cohort_gets_more_than_its_traffic_share() -> None:
    kept = run(BudgetSampler(20.0), stream(1000, 200, 0.1))[-3000:]
    legal = sum(1 for c, _, _ in kept if c == "legal") / len(kept)
    assert legal > 1.5 * CELLS["legal"]


def test_weighted_samples_estimate_each_arms_traffic_without_bias() -> None:
    """A value that differs by cohort: despite stratified, arm-dependent sampling, the weighted means
    of the two arms agree (they see the same traffic mix) and match the traffic's mean."""
    value = {"chat": 0.0, "coding": 1.0, "legal": 5.0}
    truth = sum(CELLS[c] * value[c] for c in CELLS)
    sampler = BudgetSampler(20.0)
    kept = run(sampler, stream(1000, 300, 0.1, seed=9))
    for arm in (CONTROL, CANARY):
        rows = [(value[c], w) for c, a, w in kept if a == arm]
        est = sum(v * w for v, w in rows) / sum(w for _, w in rows)
        assert est == pytest.approx(truth, abs=0.08)


def test_shadow_pairs_get_their_share_and_cost_two() -> None:
    sampler = BudgetSampler(20.0, shadow_share=0.25)
    spent = 0
    for ts, cell, arm, key in stream(400, 300, 0.1):
        if sampler.offer("r1", cell, arm, ts, key) > 0:
            spent += 1
        if arm == CONTROL and sampler.offer("r1", cell, PAIR, ts + 0.2, "p" + key, cost=2) > 0:
            spent += 2
    assert spent <= 20 * 300 + 200
    assert sampler.probability("r1", "chat", PAIR) < 1.0


def test_state_round_trip_keeps_the_plan() -> None:
    events = stream(500, 120, 0.2)
    a = BudgetSampler(10.0)
    first = run(a, events[:30000])
    b = BudgetSampler(10.0)
    b.restore(a.to_state())
    assert run(a, events[30000:]) == run(b, events[30000:])
    assert first
