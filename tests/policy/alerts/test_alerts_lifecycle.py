"""An alert's life: one firing per condition, repeats, resolves, inhibition, silences, flapping, digest."""

from __future__ import annotations

from policy_testkit import T0, firing, operator, policy, resolved, verdict
from rollguard.policy.policy import Output


def test_dedup_one_firing_per_fingerprint_until_the_repeat_interval() -> None:
    p = policy("alerts: {repeat_interval_s: {warning: 3600}}")
    first = firing(p.on_changes([verdict("latency_ms.p95", "tenant=t1", ts=T0)]))
    assert len(first) == 1
    # more verdict traffic on the same rollout, the same condition: no second notification
    again = p.on_changes([verdict("latency_ms.mean", "tenant=t2", "non_inferior", ts=T0 + 10)])
    again += p.on_changes([verdict("latency_ms.p95", "tenant=t1", ts=T0 + 20)])
    again += p.advance(T0 + 3599)
    assert firing(again) == []
    repeat = p.advance(T0 + 3600)
    (rep,) = firing(repeat)
    assert rep["notification"]["reason"] == "repeat"
    assert (rep["alert_id"], rep["fingerprint"]) == (first[0]["alert_id"], first[0]["fingerprint"])


def test_resolve_after_the_condition_clears_for_the_hysteresis_delay() -> None:
    p = policy("alerts: {resolve_after_s: 300}")
    (fired,) = firing(p.on_changes([verdict("error_rate", "tenant=t1", window="recent", ts=T0)]))
    p.on_changes([verdict("error_rate", "tenant=t1", "non_inferior", window="recent", ts=T0 + 100)])
    assert resolved(p.advance(T0 + 399)) == []
    (res,) = resolved(p.advance(T0 + 400))
    assert res["alert_id"] == fired["alert_id"] and res["ends_at"] == T0 + 100
    assert res["pagerduty"]["event_action"] == "resolve"
    assert all(a["status"] == "resolved" for a in [res])  # one status per record, never mixed


def test_a_blip_shorter_than_the_hysteresis_does_not_resolve_or_page_twice() -> None:
    p = policy("alerts: {resolve_after_s: 300}")
    firing(p.on_changes([verdict("error_rate", "tenant=t1", window="recent", ts=T0)]))
    p.on_changes([verdict("error_rate", "tenant=t1", "non_inferior", window="recent", ts=T0 + 100)])
    out = p.on_changes([verdict("error_rate", "tenant=t1", window="recent", ts=T0 + 200)])
    out += p.advance(T0 + 1000)
    assert [a for a in out.alerts if a["rule"] == "guardrail_regression"] == []


def test_a_rollout_reset_resolves_its_alerts_at_once() -> None:
    from policy_testkit import reset

    p = policy()
    (fired,) = firing(p.on_changes([verdict("error_rate", "tenant=t1", ts=T0)]))
    out = p.on_changes([reset(T0 + 50)])
    assert [a["alert_id"] for a in resolved(out)] == [fired["alert_id"]]


def test_critical_inhibits_warnings_on_the_same_scope_and_its_sub_scopes_only() -> None:
    p = policy()
    out = p.on_changes(
        [
            verdict("error_rate", "input_class=coding"),
            verdict("latency_ms.p95", "input_class=coding"),
            verdict("latency_ms.p95", "input_class=coding,tenant=t3"),
            verdict("latency_ms.p95", "input_class=billing"),
        ]
    )
    got = {(a["severity"], a["labels"]["cohort"]) for a in firing(out)}
    assert got == {("critical", "input_class=coding"), ("warning", "input_class=billing")}
    status = {f["cohort"]: f["suppressed"] for f in p.status("r1")["firing"] if f["severity"] == "warning"}
    assert status["input_class=coding,tenant=t3"].startswith("inhibited:")


def test_an_inhibited_warning_fires_when_the_critical_resolves() -> None:
    p = policy("alerts: {resolve_after_s: 60}\ncommands: {enabled: false}")
    p.on_changes([verdict("error_rate", "*", window="recent"), verdict("latency_ms.p95", "tenant=t1")])
    out = p.on_changes([verdict("error_rate", "*", "non_inferior", window="recent", ts=T0 + 10)])
    assert out.alerts == []  # the critical still fires (clearing, not resolved): it still inhibits
    out = p.advance(T0 + 70)
    assert [(a["status"], a["severity"]) for a in out.alerts] == [
        ("resolved", "critical"),
        ("firing", "warning"),
    ]


def test_silence_holds_notifications_until_it_expires() -> None:
    p = policy("commands: {enabled: false}")
    p.on_operator(operator("silence", matchers={"rollout": "r1", "severity": "warning"}, until=T0 + 600))
    assert firing(p.on_changes([verdict("latency_ms.p95", "tenant=t1", ts=T0 + 10)])) == []
    assert firing(p.on_changes([verdict("error_rate", "tenant=t2", ts=T0 + 20)]))  # critical: not matched
    assert firing(p.advance(T0 + 599)) == []
    (late,) = firing(p.advance(T0 + 600))
    assert late["severity"] == "warning" and late["notification"]["reason"] == "new"


def test_a_resolve_reaches_whoever_got_the_firing_even_if_silenced_meanwhile() -> None:
    p = policy("alerts: {resolve_after_s: 0}")
    (fired,) = firing(p.on_changes([verdict("error_rate", "tenant=t1", window="recent", ts=T0)]))
    p.on_operator(operator("silence", matchers=["alertname=~Rollguard.*"], duration_s=3600))
    out = p.on_changes([verdict("error_rate", "tenant=t1", "non_inferior", window="recent", ts=T0 + 30)])
    assert [a["alert_id"] for a in resolved(out)] == [fired["alert_id"]]


def test_flapping_alert_notifies_once_and_holds_its_resolve_until_it_settles() -> None:
    p = policy("alerts: {resolve_after_s: 0, flap: {window: 10, start: 0.3, stop: 0.15}}")
    out = Output()
    state = "regressed"
    for i in range(12):  # the short window toggles every evaluation
        out += p.on_changes([verdict("latency_ms.p95", "tenant=t1", state, window="recent", ts=T0 + 10 * i)])
        state = "non_inferior" if state == "regressed" else "regressed"
    st = next(iter(p.book.alerts["r1"].values()))
    assert st.flapping
    fired = firing(out)
    resolves = resolved(out)
    assert len(fired) <= 2 and len(resolves) <= 1, "flapping must not notify on every change"
    # it calms down (clear for good): once the flap ratio drops, the resolve goes out
    calm = Output()
    for i in range(12, 40):
        calm += p.on_changes([verdict("latency_ms.mean", "tenant=t9", "non_inferior", ts=T0 + 10 * i)])
    assert not st.flapping or st.status == "resolved"
    assert [a["status"] for a in calm.alerts if a["rule"] == "latency_regression"] in (["resolved"], [])
    assert p.book.alerts["r1"][st.fingerprint].status == "resolved"


def test_acknowledged_alerts_stop_repeating() -> None:
    p = policy("alerts: {repeat_interval_s: {critical: 600}}")
    (fired,) = firing(p.on_changes([verdict("error_rate", "tenant=t1", ts=T0)]))
    out = p.on_operator(operator("acknowledge_alert", alert_id=fired["alert_id"], issued_at=T0 + 60))
    assert out.audit[0]["result"].startswith("ok")
    assert firing(p.advance(T0 + 5000)) == []


def test_quality_digest_is_published_once_per_period_with_every_quality_concern() -> None:
    p = policy("alerts: {digest_interval_s: 3600}")
    p.on_changes([verdict("quality.eval_score.mean", "input_class=chat", ts=T0 + 100)])
    p.on_changes([verdict("quality.eval_score.mean", "input_class=legal", ts=T0 + 200)])
    assert [a for a in p.advance(T0 + 3599).alerts if a["rule"] == "quality_digest"] == []
    out = p.advance(T0 + 3600)
    (dg,) = [a for a in out.alerts if a["rule"] == "quality_digest"]
    assert dg["audience"] == "product" and dg["labels"]["delivery"] == "digest"
    assert (dg["starts_at"], dg["ends_at"]) == (T0, T0 + 3600)
    assert {e["cohort"] for e in dg["digest"]["entries"]} == {"input_class=chat", "input_class=legal"}
    assert p.topic_role(dg) == "alerts.info"
    # still open in the next period: the next digest carries them again, and only once
    nxt = [a for a in p.advance(T0 + 7200).alerts if a["rule"] == "quality_digest"]
    assert len(nxt) == 1 and nxt[0]["starts_at"] == T0 + 3600
