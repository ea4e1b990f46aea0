"""Canary-vs-control verdicts: three states, stickiness, scope, SRM, drift, phases, resets."""

from __future__ import annotations

from core_traffic import T0, Arm, Traffic
from rollguard.detect.engine import Engine
from rollguard.domain.verdicts import VerdictChange
from rollguard.settings.config import Config, parse_config


def run(traffic: Traffic, seconds: float, config: Config | None = None) -> list[VerdictChange]:
    engine = Engine(config or Config())
    out: list[VerdictChange] = []
    for ev in traffic.events(seconds):
        out.extend(engine.process(ev))
    out.extend(engine.flush())
    return out


def final(changes: list[VerdictChange], cohort: str, metric: str) -> VerdictChange | None:
    hits = [c for c in changes if c.kind == "verdict" and c.cohort == cohort and c.metric == metric]
    return hits[-1] if hits else None


def first(changes: list[VerdictChange], state: str, cohort: str, metric: str) -> VerdictChange | None:
    for c in changes:
        if c.state == state and c.cohort == cohort and c.metric == metric:
            return c
    return None


def regressions(changes: list[VerdictChange]) -> list[VerdictChange]:
    return [c for c in changes if c.kind == "verdict" and c.state == "regressed"]


def test_an_identical_canary_becomes_non_inferior_and_never_regressed() -> None:
    changes = run(Traffic(rate=60, weight=0.3), 1800)
    assert regressions(changes) == []
    latency = final(changes, "*", "latency_ms.mean")
    assert latency is not None and latency.state == "non_inferior"
    _, hi = latency.evidence["interval"]
    assert hi < 0 < latency.evidence["n_canary"]


def test_too_little_traffic_is_insufficient_with_an_estimate_of_what_would_decide() -> None:
    changes = run(Traffic(rate=10, weight=0.1), 300)
    err = final(changes, "*", "error_rate")
    assert err is not None and err.state == "insufficient"
    assert err.evidence["samples_to_decide"] > 0


def test_a_regression_in_one_cohort_is_named_in_that_cohort() -> None:
    def behaviour(t: float, seg: str, arm: str) -> Arm:
        return Arm(error=0.25) if (arm == "canary" and seg == "coding") else Arm()

    changes = run(Traffic(rate=40, weight=0.2, behaviour=behaviour), 900)
    hit = first(changes, "regressed", "input_class=coding", "error_rate")
    assert hit is not None and hit.scope == {"input_class": "coding"}
    ev = hit.evidence
    assert ev["canary"] > ev["control"] and ev["n_canary"] > 0 and ev["threshold"] > 0
    assert first(changes, "regressed", "input_class=billing", "error_rate") is None
    assert first(changes, "regressed", "input_class=chat", "error_rate") is None


def test_regressed_is_sticky_after_the_canary_recovers() -> None:
    def behaviour(t: float, seg: str, arm: str) -> Arm:
        return Arm(error=0.3) if (arm == "canary" and t < 400) else Arm()

    changes = run(Traffic(rate=40, weight=0.3, behaviour=behaviour), 1800)
    states = [
        c.state for c in changes if c.cohort == "*" and c.metric == "error_rate" and c.kind == "verdict"
    ]
    assert "regressed" in states
    assert states[-1] == "regressed"
    assert states.index("regressed") == len(states) - 1  # nothing after it


def test_a_regression_that_starts_mid_canary_is_caught_by_the_recent_window() -> None:
    def behaviour(t: float, seg: str, arm: str) -> Arm:
        return Arm(latency_median=1200.0) if (arm == "canary" and t > 900) else Arm()

    changes = run(Traffic(rate=40, weight=0.2, behaviour=behaviour), 1500)
    hit = first(changes, "regressed", "*", "latency_ms.mean")
    assert hit is not None
    assert hit.ts - T0 > 900  # not before the onset
    assert hit.ts - T0 < 900 + 300  # within five minutes of it


def test_a_change_that_hits_both_arms_is_drift_not_a_canary_regression() -> None:
    def behaviour(t: float, seg: str, arm: str) -> Arm:
        return Arm(error=0.15) if t > 1200 else Arm()

    changes = run(Traffic(rate=40, weight=0.2, behaviour=behaviour), 2400)
    assert regressions(changes) == []
    drift = first(changes, "drifted", "*", "error_rate")
    assert drift is not None and drift.kind == "drift" and drift.ts - T0 > 1200


def test_a_wrong_split_marks_the_rollout_unhealthy() -> None:
    # The router announces 10% but actually sends 14% of units to the canary.
    changes = run(Traffic(rate=40, weight=0.1, routed_weight_at=lambda t: 0.14, n_units=20000), 1800)
    srm = [c for c in changes if c.kind == "srm" and c.metric == "sample_ratio"]
    assert len(srm) == 1 and srm[0].state == "unhealthy"
    assert srm[0].evidence["observed_canary"] > srm[0].evidence["expected_canary"]
    # Requests per unit do not change with the split: only units tell here.
    assert [c for c in changes if c.kind == "srm" and c.metric == "sample_ratio_requests"] == []


def test_a_correct_split_that_changes_over_time_stays_healthy() -> None:
    ramp = Traffic(rate=40, n_units=20000, weight_at=lambda t: 0.05 if t < 600 else 0.25 if t < 1200 else 0.5)
    assert [c for c in run(ramp, 1800) if c.kind == "srm"] == []


def test_promotion_freezes_a_baseline_and_watches_the_new_version_against_it() -> None:
    def weight(t: float) -> float:
        return 0.2 if t < 1200 else 1.0

    def behaviour(t: float, seg: str, arm: str) -> Arm:
        return Arm(error=0.2) if (t > 1800 and seg == "billing") else Arm()

    changes = run(Traffic(rate=40, weight_at=weight, behaviour=behaviour), 3000)
    phase = [c for c in changes if c.kind == "phase"]
    assert len(phase) == 1 and abs(phase[0].ts - (T0 + 1200)) < 35
    assert [c for c in regressions(changes) if c.phase == "canary"] == []
    hit = first(changes, "regressed", "input_class=billing", "error_rate")
    assert hit is not None and hit.phase == "post_rollout" and hit.ts - T0 > 1800


def test_a_promotion_the_events_do_not_announce_is_read_from_the_arms_present() -> None:
    """No canary_weight in the events: the control falling silent while the canary flows is the
    promotion, and the frozen baseline then catches a rare-cohort regression; a restored engine
    reaches the same decisions."""

    def behaviour(t: float, seg: str, arm: str) -> Arm:
        return Arm(error=0.2) if (t > 2400 and seg == "billing") else Arm()

    traffic = Traffic(rate=40, routed_weight_at=lambda t: 0.2 if t < 1200 else 1.0, behaviour=behaviour,
                      send_weight=False)  # fmt: skip
    changes = run(traffic, 3600)
    phase = [c for c in changes if c.kind == "phase"]
    assert len(phase) == 1
    assert 1200 + 300 - 5 <= phase[0].ts - T0 < 1200 + 300 + 35  # the last control request: just before 1200
    assert phase[0].evidence["reason"].startswith("no control request for 3")
    assert [c for c in regressions(changes) if c.phase == "canary"] == []
    hit = first(changes, "regressed", "input_class=billing", "error_rate")
    assert hit is not None and hit.phase == "post_rollout" and hit.ts - T0 > 2400

    engine = Engine(Config())
    events = list(traffic.events(3600))
    split = next(i for i, ev in enumerate(events) if ev.ts - T0 > 1350)  # mid-silence
    resumed: list[VerdictChange] = []
    for ev in events[:split]:
        resumed.extend(engine.process(ev))
    engine = Engine.from_state(engine.to_state())
    for ev in events[split:]:
        resumed.extend(engine.process(ev))
    resumed.extend(engine.flush())
    assert [c.to_dict() for c in resumed] == [c.to_dict() for c in changes]


def test_a_control_pause_at_low_traffic_is_not_a_promotion() -> None:
    """The control silent for 400 s, but too few canary requests meanwhile to rule out chance."""
    traffic = Traffic(rate=0.2, weight=0.5, routed_weight_at=lambda t: 1.0 if 1000 < t < 1400 else 0.5,
                      send_weight=False)  # fmt: skip
    assert [c for c in run(traffic, 3600) if c.kind == "phase"] == []


def test_an_operator_can_declare_the_promotion() -> None:
    engine = Engine(Config())
    events = list(Traffic(rate=40, weight=0.2).events(1500))
    out: list[VerdictChange] = []
    for ev in events:
        out.extend(engine.process(ev))
    out.extend(engine.promote("r1", events[-1].ts, "operator: flag at 100%"))
    phase = [c for c in out if c.kind == "phase"]
    assert [(c.state, c.evidence["reason"]) for c in phase] == [("post_rollout", "operator: flag at 100%")]
    assert engine.promote("r1", events[-1].ts + 1) == []  # once only
    assert engine.monitors["r1"].phase == "post_rollout"


def test_an_unchanged_new_version_after_promotion_raises_nothing() -> None:
    changes = run(Traffic(rate=40, weight_at=lambda t: 0.2 if t < 1200 else 1.0), 3600)
    assert regressions(changes) == []


def test_a_new_canary_version_starts_the_rollout_afresh() -> None:
    def behaviour(t: float, seg: str, arm: str) -> Arm:
        return Arm(error=0.3) if (arm == "canary" and t < 600) else Arm()

    traffic = Traffic(
        rate=40, weight=0.3, behaviour=behaviour, variant_at=lambda t: "v1" if t < 600 else "v2"
    )
    changes = run(traffic, 1500)
    reset = [c for c in changes if c.kind == "rollout"]
    assert len(reset) == 1 and reset[0].evidence["to"] == "v2"
    after = [c for c in changes if c.ts >= reset[0].ts and c.state == "regressed"]
    assert after == []  # the fixed version is judged on its own traffic


def test_quality_scores_regress_downwards() -> None:
    def behaviour(t: float, seg: str, arm: str) -> Arm:
        return Arm(eval_mean=0.65) if arm == "canary" else Arm()

    changes = run(Traffic(rate=40, weight=0.2, behaviour=behaviour), 900)
    hit = first(changes, "regressed", "*", "quality.eval_score.mean")
    assert hit is not None and hit.evidence["canary"] < hit.evidence["control"]


def test_the_cohort_budget_caps_how_many_cohorts_are_analysed() -> None:
    cfg = parse_config("engine:\n  max_cohorts_per_rollout: 3\n")
    engine = Engine(cfg)
    for ev in Traffic(rate=40, segments=("a", "b", "c", "d"), shares=(0.25,) * 4).events(120):
        engine.process(ev)
    engine.flush()
    monitor = engine.monitors["r1"]
    assert len(list(monitor.membership.registry.live())) == 3
    assert monitor.membership.registry.refused > 0


def test_cohorts_that_stop_receiving_events_expire() -> None:
    cfg = parse_config("engine:\n  cohort_ttl_s: 300\n")
    engine = Engine(cfg)
    early = Traffic(rate=20, segments=("chat", "legacy"), shares=(0.5, 0.5), seed=3)
    late = Traffic(rate=20, segments=("chat",), shares=(1.0,), seed=4)
    for ev in early.events(600):
        engine.process(ev)
    for ev in late.events(1500):
        if ev.ts - T0 > 600:
            engine.process(ev)
    engine.flush()
    live = {c.key for c in engine.monitors["r1"].membership.live()}
    assert "input_class=chat" in live and "*" in live
    assert "input_class=legacy" not in live
