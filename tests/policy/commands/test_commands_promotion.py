"""Opt-in promotion: one ramp step at a time, only on non-inferior evidence, with explicit trade-offs."""

from __future__ import annotations

from policy_testkit import T0, ack, policy, srm, verdict
from rollguard.policy.policy import Policy

CONFIG = """
rollouts:
  r1: {canary_weight: 0.05}
promotion:
  rollouts:
    r1: {enabled: true, ramp: [0.05, 0.25, 0.5, 1.0], min_step_s: 600}
"""
GUARDRAILS = ("error_rate", "timeout_rate", "refusal_rate", "format_invalid_rate")


def _all_good(ts: float = T0, cohorts: tuple[str, ...] = ("*", "input_class=chat")) -> list[dict]:
    return [
        verdict(m, c, "non_inferior", ts=ts)
        for c in cohorts
        for m in (*GUARDRAILS, "quality.eval_score.mean")
    ]


def _weights(p: Policy, until: float, step: float = 60.0, start: float = T0) -> list[float]:
    got: list[float] = []
    t = start
    while t <= until:
        for c in p.advance(t).commands:
            got.append(c["target_weight"])
            p.on_ack(ack(c, at=t + 10))
        t += step
    return got


def test_promotion_is_off_unless_opted_in() -> None:
    p = policy()
    p.on_changes(_all_good())
    assert p.advance(T0 + 86400).commands == []


def test_the_ramp_advances_one_acked_step_at_a_time_after_each_step_gathered_evidence() -> None:
    p = policy(CONFIG)
    assert p.on_changes(_all_good()).commands == []
    assert p.advance(T0 + 599).commands == []
    (first,) = p.advance(T0 + 600).commands
    assert (first["action"], first["target_weight"], first["scope"]) == ("promote", 0.25, {})
    assert first["evidence"]["from_weight"] == 0.05
    assert p.advance(T0 + 1400).commands == [], "no next step before the previous one is acked"
    p.on_ack(ack(first, at=T0 + 1410))
    assert _weights(p, T0 + 2000, start=T0 + 1411) == []
    assert _weights(p, T0 + 20000, start=T0 + 2020) == [0.5, 1.0]
    assert p.advance(T0 + 90000).commands == [], "the ramp ends at 100%"


def test_undecided_cohorts_and_regressions_hold_the_ramp() -> None:
    p = policy(CONFIG)
    p.on_changes([*_all_good(), verdict("error_rate", "input_class=legal", "insufficient")])
    assert p.advance(T0 + 3600).commands == []
    out = p.on_changes([verdict("error_rate", "input_class=legal", "non_inferior", ts=T0 + 3600)])
    assert [c["action"] for c in out.commands] == ["promote"]


def test_srm_holds_promotion() -> None:
    p = policy(CONFIG)
    p.on_changes([*_all_good(), srm()])
    assert p.advance(T0 + 86400).commands == []


def test_a_regression_stops_the_ramp_and_rolls_back_instead() -> None:
    p = policy(CONFIG)
    p.on_changes(_all_good())
    (step,) = p.advance(T0 + 600).commands
    p.on_ack(ack(step, at=T0 + 610))
    out = p.on_changes([verdict("error_rate", "*", ts=T0 + 700)])
    assert [c["action"] for c in out.commands] == ["reduce_weight"]
    assert all(c["action"] != "promote" for c in p.advance(T0 + 86400).commands)


def test_a_small_quality_drop_is_accepted_when_cost_certainly_falls_enough() -> None:
    tradeoff = (
        CONFIG
        + """  tradeoffs:
    - {metric: quality.eval_score.mean, max_relative_drop: 0.05,
       when: cost_usd.mean, min_relative_saving: 0.2}
"""
    )
    undecided_quality = verdict("quality.eval_score.mean", "*", "insufficient", interval=[-0.02, 0.01])
    cheaper = verdict("cost_usd.mean", "*", "non_inferior", interval=[-0.0008, -0.00065])
    same_cost = verdict("cost_usd.mean", "*", "non_inferior", interval=[-0.0003, -0.0001])
    base = [verdict(m, "*", "non_inferior") for m in GUARDRAILS]
    p = policy(tradeoff)
    p.on_changes([*base, undecided_quality, same_cost])
    assert p.advance(T0 + 3600).commands == [], "no saving: the quality doubt holds the ramp"
    q = policy(tradeoff)
    q.on_changes([*base, undecided_quality, cheaper])
    (cmd,) = q.advance(T0 + 3600).commands
    (accepted,) = cmd["evidence"]["tradeoffs"]
    assert accepted["metric"] == "quality.eval_score.mean" and accepted["accepted_because"] == "cost_usd.mean"
