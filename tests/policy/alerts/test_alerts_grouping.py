"""One incident, one notification: cohorts that regress (or drift) with their parent are told in the
parent's alert, unless the core found them regressed beyond it; commands keep their scopes."""

from __future__ import annotations

from typing import Any

import jsonschema

from policy_testkit import T0, drift, firing, policy, resolved, scopes, verdict
from rollguard.adapters.topic_contracts import default_topics_dir
from rollguard.domain.cohorts import parse_cohort_key
from rollguard.policy.policy import Policy

COHORTS = ["input_class=chat", "input_class=coding", "tenant=t1", "tenant=t2"]


def everywhere(metric: str, ts: float = T0, **kw: Any) -> list[dict[str, Any]]:
    return [verdict(metric, "*", ts=ts, scale=1.0, **kw)] + [verdict(metric, c, ts=ts, **kw) for c in COHORTS]


def beyond(metric: str, cohort: str, ts: float = T0) -> dict[str, Any]:
    """The core's word that a cohort regressed beyond the whole rollout's regression."""
    return {"kind": "excess", "ts": ts, "rollout_id": "r1", "cohort": cohort,
            "scope": parse_cohort_key(cohort), "metric": metric, "phase": "canary", "state": "beyond_parent",
            "previous": None,
            "evidence": {"method": "excess-cs", "effect": 0.6, "effect_lo": 0.4, "parent_effect": 0.2,
                         "parent_effect_hi": 0.25, "margin": 0.1, "margin_relative": True}}  # fmt: skip


def test_a_regression_of_the_whole_rollout_and_every_cohort_is_one_notification() -> None:
    p = policy()
    out = p.on_changes(everywhere("latency_ms.mean", window="recent"))
    (alert,) = firing(out)
    assert alert["scope"] == {} and alert["rule"] == "latency_regression"
    assert sorted(a["cohort"] for a in alert["affected"]) == sorted(COHORTS)
    assert alert["most_affected"]["cohort"] in COHORTS and "most affected" in alert["summary"]
    assert "also in 4 cohorts" in alert["annotations"]["affected_cohorts"]
    jsonschema.validate(alert, _schema())
    grouped = [a for a in p.book.active("r1") if a.cohort != "*"]
    assert len(grouped) == 4 and all(a.suppressed.startswith("grouped:") for a in grouped)
    # a later repeat of the same state says nothing new
    assert firing(p.on_changes(everywhere("latency_ms.mean", ts=T0 + 60, window="recent"))) == []


def test_a_cohort_regressed_beyond_the_whole_rollout_gets_its_own_alert() -> None:
    p = policy()
    out = p.on_changes([*everywhere("latency_ms.mean"), beyond("latency_ms.mean", "input_class=coding")])
    assert sorted(scopes(firing(out))) == ["*", "input_class=coding"]
    whole = next(a for a in firing(out) if a["scope"] == {})
    assert "input_class=coding" not in [a["cohort"] for a in whole["affected"]]


def test_grouping_changes_what_people_are_told_not_what_controllers_do() -> None:
    grouped, alone = policy(key=b"k"), policy("alerts: {grouping: false}", key=b"k")
    changes = everywhere("error_rate")
    out_grouped, out_alone = grouped.on_changes(changes), alone.on_changes(changes)
    assert len(firing(out_grouped)) == 1 and len(firing(out_alone)) == 5
    assert [(c["action"], c["scope"]) for c in out_grouped.commands] == [("reduce_weight", {})]
    assert [(c["action"], c["scope"]) for c in out_grouped.commands] == [
        (c["action"], c["scope"]) for c in out_alone.commands
    ]
    assert {a.cohort for a in grouped.book.command_triggers("r1")} == {"*", *COHORTS}


def test_a_grouped_cohort_still_regressed_is_told_when_its_parent_resolves() -> None:
    p = policy("alerts: {resolve_after_s: 0}\ncommands: {enabled: false}")
    p.on_changes(everywhere("cost_usd.mean"))
    out = p.on_changes([verdict("cost_usd.mean", "*", "non_inferior", ts=T0 + 60)])
    out += p.advance(T0 + 61)
    assert scopes(resolved(out)) == ["*"]
    assert sorted(scopes(firing(out))) == sorted(COHORTS)  # attribution keeps firing cohorts where they are


def test_baseline_drift_of_every_cohort_is_one_notification() -> None:
    p = policy()
    out = p.on_changes([drift("timeout_rate", c) for c in ["*", *COHORTS]])
    (alert,) = firing(out)
    assert alert["rule"] == "baseline_drift" and alert["scope"] == {} and len(alert["affected"]) == 4
    assert out.commands == []


def test_an_outage_in_one_tenant_drifts_everything_it_touches_and_is_told_once_on_that_tenant() -> None:
    p = policy()
    quiet = [
        verdict("error_rate", c, "non_inferior") for c in ["tenant=t1", "tenant=t3", "input_class=coding"]
    ]
    out = p.on_changes([*quiet, *(drift("timeout_rate", c) for c in ["*", "tenant=t2", "input_class=chat"])])
    (alert,) = firing(out)
    assert alert["scope"] == {"tenant": "t2"}
    assert alert["annotations"]["attributed_from"] == "*, input_class=chat"
    assert "tenant=t2" in alert["summary"].split(";")[0]  # the words name the cohort of the labels


def _schema() -> dict[str, Any]:
    import json

    return json.loads((default_topics_dir() / "schemas" / "alert.v1.json").read_text())  # type: ignore[no-any-return]


def test_policy_state_with_grouped_alerts_round_trips() -> None:
    p = policy()
    p.on_changes(everywhere("latency_ms.mean"))
    restored = Policy.from_state(p.config, p.to_state())
    assert restored.to_state() == p.to_state()


def test_a_cohort_that_shows_first_waits_for_its_parent_and_is_then_told_in_it() -> None:
    p = policy(group_wait=True)  # the defaults: warnings of a sub-cohort wait 120 s, info 300 s, pages never
    first = p.on_changes([verdict("latency_ms.mean", "input_class=chat", ts=T0)])
    assert firing(first) == [] and p.book.active("r1")[0].suppressed == "group_wait"
    later = p.on_changes(everywhere("latency_ms.mean", ts=T0 + 60))
    (alert,) = firing(later)
    assert alert["scope"] == {} and "input_class=chat" in [a["cohort"] for a in alert["affected"]]
    assert firing(p.advance(T0 + 600)) == []


def test_without_a_parent_a_waiting_cohort_is_told_when_its_wait_ends_and_pages_never_wait() -> None:
    p = policy(group_wait=True)
    assert firing(p.on_changes([verdict("latency_ms.mean", "input_class=chat", ts=T0)])) == []
    (late,) = firing(p.advance(T0 + 120))
    assert late["scope"] == {"input_class": "chat"} and late["notification"]["at"] == T0 + 120
    (page,) = firing(p.on_changes([verdict("error_rate", "input_class=coding", ts=T0 + 130)]))
    assert page["severity"] == "critical" and page["notification"]["at"] == T0 + 130
