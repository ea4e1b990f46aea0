"""Phase and promotion: the events or the arms present promote an auto rollout; baselines are frozen."""

from __future__ import annotations

import numpy as np
import orjson

from core_traffic import T0, request
from rollguard.detect.batch_columns import EventColumns
from rollguard.detect.phase import RolloutPhase
from rollguard.stats import LogHistogram


def batch(*events: tuple[float, str]) -> EventColumns:
    return EventColumns.of([request(t, arm, canary_weight=0.5) for t, arm in events])


def test_a_control_silent_for_promotion_silence_s_promotes() -> None:
    phase = RolloutPhase("auto", promotion_silence_s=300.0, min_samples=3)
    assert phase.promotion_due(batch((0.0, "control"), (1.0, "canary")), T0 + 1.0) == ""
    canary_only = batch(*[(t, "canary") for t in (100.0, 200.0, 299.0)])
    assert phase.promotion_due(canary_only, T0 + 299.0) == ""  # 299 s of silence: not yet
    reason = phase.promotion_due(batch((300.0, "canary")), T0 + 300.0)
    assert reason == "no control request for 300 s while 5 canary requests arrived"


def test_a_control_pause_with_fewer_than_min_samples_canary_requests_is_not_a_promotion() -> None:
    phase = RolloutPhase("auto", promotion_silence_s=300.0, min_samples=100)
    phase.promotion_due(batch((0.0, "control")), T0)
    assert phase.promotion_due(batch((400.0, "canary"), (500.0, "canary")), T0 + 500.0) == ""


def test_a_canary_request_at_weight_one_promotes_at_once() -> None:
    phase = RolloutPhase("auto", promotion_silence_s=300.0, min_samples=100)
    cols = EventColumns.of([request(0.0), request(1.0, "canary", canary_weight=1.0)])
    assert phase.promotion_due(cols, T0 + 1.0) == "canary_weight reached 1.0"


def test_a_configured_phase_is_never_changed_by_the_arms() -> None:
    phase = RolloutPhase("canary", promotion_silence_s=300.0, min_samples=100)
    cols = EventColumns.of([request(1.0, "canary", canary_weight=1.0)])
    assert phase.promotion_due(cols, T0 + 1.0) == "" and phase.phase == "canary"


def test_a_baseline_is_frozen_as_a_copy_and_read_padded_to_the_slots() -> None:
    phase = RolloutPhase("auto", 300.0, 100)
    n, mean, var = np.array([200.0, 50.0]), np.array([0.1, 0.2]), np.array([0.09, 0.16])
    phase.freeze("error_rate", (n, mean, var))
    n[0] = 0.0
    frozen = phase.baseline_of("error_rate", 4)
    assert frozen is not None and frozen[0].tolist() == [200.0, 50.0, 0.0, 0.0]
    assert phase.baseline_of("quality.new.mean", 4) is None  # a test that began after promotion


def test_the_post_rollout_watch_ends_post_rollout_period_s_after_promotion() -> None:
    phase = RolloutPhase("auto", 300.0, 100)
    assert not phase.evaluation_over(T0, 3600.0)
    phase.enter_post_rollout(T0)
    assert phase.post and not phase.evaluation_over(T0 + 3600.0, 3600.0)
    assert phase.evaluation_over(T0 + 3600.5, 3600.0)


def test_the_phase_survives_a_state_round_trip() -> None:
    phase = RolloutPhase("auto", 300.0, 100)
    phase.promotion_due(batch((0.0, "control"), (5.0, "canary")), T0 + 5.0)
    phase.enter_post_rollout(T0 + 5.0)
    phase.freeze("latency_ms.mean", (np.ones(2), np.ones(2), np.ones(2)))
    hist = LogHistogram()
    hist.update_many([1.0, 2.0])
    phase.freeze_hists({(0, "latency_ms"): hist})
    state = orjson.loads(orjson.dumps(phase.to_state()))
    restored = RolloutPhase.from_state(state, "auto", 300.0, 100)
    assert orjson.dumps(restored.to_state()) == orjson.dumps(phase.to_state())
    assert restored.post and restored.canary_run == 1 and restored.last_control_ts == T0
