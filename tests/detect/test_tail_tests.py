"""Cumulative tail comparisons: quantile confidence sequences per arm, re-read as evidence grows."""

from __future__ import annotations

import numpy as np
import orjson

from rollguard.detect.batch_columns import ARM_CANARY, ARM_CONTROL
from rollguard.detect.budget import AlphaBudget
from rollguard.detect.tail_tests import TailTests
from rollguard.domain.metrics import BUILTIN_METRICS
from rollguard.settings.config import Config
from rollguard.stats import LogHistogram

P95 = next(m for m in BUILTIN_METRICS if m.name == "latency_ms.p95")
LIVE = np.array([True])


def pair(n_control: int, n_canary: int, canary_factor: float, seed: int = 0) -> list[LogHistogram]:
    rng = np.random.default_rng(seed)
    control, canary = LogHistogram(), LogHistogram()
    control.update_many(rng.lognormal(6.0, 0.5, n_control))
    canary.update_many(rng.lognormal(6.0, 0.5, n_canary) * canary_factor)
    return [control, canary]


def tails() -> TailTests:
    return TailTests([P95], AlphaBudget(Config()))


def test_a_slower_canary_tail_regresses_and_an_equal_one_becomes_non_inferior() -> None:
    slow, same = tails(), tails()
    found = slow.evaluate(LIVE, {"latency_ms": [pair(20000, 5000, 1.5)]}, None, min_n=100)
    assert [(c.slot, c.state, c.previous) for c in found] == [(0, "regressed", None)]
    assert found[0].evidence["method"] == "quantile-cs" and found[0].evidence["interval"][0] > 0
    found = same.evaluate(LIVE, {"latency_ms": [pair(400000, 400000, 1.0)]}, None, min_n=100)
    assert [c.state for c in found] == ["non_inferior"]


def test_a_tail_is_re_read_only_once_its_evidence_grew_by_five_percent() -> None:
    t = tails()
    t.evaluate(LIVE, {"latency_ms": [pair(1000, 200, 1.0)]}, None, min_n=100)
    assert t.state[(0, "latency_ms.p95")][1] == 1200
    t.evaluate(LIVE, {"latency_ms": [pair(1000, 250, 3.0)]}, None, min_n=100)  # +4%: not re-read
    assert t.state[(0, "latency_ms.p95")][1] == 1200
    found = t.evaluate(LIVE, {"latency_ms": [pair(1000, 300, 3.0)]}, None, min_n=100)
    assert [c.state for c in found] == ["regressed"] and t.is_regressed(0, "latency_ms.p95")


def test_regressed_is_sticky_and_an_onset_alarm_marks_it_too() -> None:
    t = tails()
    assert t.mark_regressed(0, "latency_ms.p95") is None
    assert t.evaluate(LIVE, {"latency_ms": [pair(50000, 50000, 1.0)]}, None, min_n=100) == []


def test_after_promotion_the_canary_is_compared_with_the_frozen_control_histogram() -> None:
    t = tails()
    frozen = pair(20000, 1, 1.0)[ARM_CONTROL]
    now = pair(20000, 5000, 1.5)  # the live control arm is ignored: only the frozen one counts
    now[ARM_CONTROL] = LogHistogram()
    found = t.evaluate(LIVE, {"latency_ms": [now]}, {(0, "latency_ms"): frozen}, min_n=100)
    assert [c.state for c in found] == ["regressed"]
    assert t.evaluate(LIVE, {"latency_ms": [now]}, {}, min_n=100) == []  # no baseline for that slot


def test_the_dashboard_view_shows_quantiles_and_a_relative_effect_interval() -> None:
    t = tails()
    arms = pair(20000, 5000, 1.5)
    t.evaluate(LIVE, {"latency_ms": [arms]}, None, min_n=100)
    view = t.view(P95, 0, {"latency_ms": [arms]}, None)
    assert view["state"] == "regressed" and view["n_canary"] == 5000 and view["drift"] is None
    assert view["canary"] > view["control"] and 0.1 < view["effect_lo"] < view["effect"] < view["effect_hi"]
    frozen = t.view(P95, 0, {"latency_ms": [arms]}, {})  # after promotion, no baseline for the slot
    assert frozen["n_control"] == 0 and np.isnan(frozen["effect_lo"]) and frozen["n_canary"] == 5000
    empty = t.view(P95, 0, {"latency_ms": [None]}, None)
    assert empty["state"] == "regressed" and empty["n_canary"] == 0 and np.isnan(empty["canary"])
    assert arms[ARM_CANARY].count == 5000  # read only


def test_tail_states_survive_a_state_round_trip() -> None:
    t = tails()
    t.evaluate(LIVE, {"latency_ms": [pair(1000, 200, 1.0)]}, None, min_n=100)
    t.mark_regressed(3, "latency_ms.p99")
    state = orjson.loads(orjson.dumps(t.to_state()))
    assert state == [[0, "latency_ms.p95", "insufficient", 1200], [3, "latency_ms.p99", "regressed", 0]]
    assert TailTests.from_state(state, [P95], AlphaBudget(Config())).to_state() == state
