"""Traffic simulator: determinism, realism (shares, routing, rates), injections, phases, shadow copies."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pytest

from rollguard.domain.events import Event, parse_event
from rollguard.sim import (
    Injection,
    Shadow,
    TextSpec,
    generate,
    generate_batches,
    get_scenario,
    merge_streams,
    read_jsonl,
    sample_requests,
    write_jsonl,
)

START = 1_767_225_600.0


def rel(ev: dict[str, Any]) -> float:
    return float(ev["ts"]) - START


def rate(events: list[dict[str, Any]], status: str) -> float:
    return sum(e["status"] == status for e in events) / max(len(events), 1)


@pytest.fixture(scope="module")
def aa_events() -> list[dict[str, Any]]:
    return list(generate(get_scenario("aa", seed=1)))


@pytest.fixture(scope="module")
def spike_events() -> list[dict[str, Any]]:
    # a 50% canary so that rates per arm and period are measured precisely
    return list(generate(get_scenario("error_spike_coding", seed=2, canary_weight=0.5, start_s=600.0)))


# ---- determinism ----------------------------------------------------------------------------------
def test_same_seed_same_events_and_different_seed_different_events() -> None:
    a = list(generate(get_scenario("shadow_aa", seed=5, duration_s=120)))
    b = list(generate(get_scenario("shadow_aa", seed=5, duration_s=120)))
    c = list(generate(get_scenario("shadow_aa", seed=6, duration_s=120)))
    assert a == b
    assert len(a) > 4000
    assert [e["ts"] for e in a] != [e["ts"] for e in c]


def test_injected_scenario_shares_every_draw_with_aa_before_onset() -> None:
    """Common random numbers: same seed -> same arrivals, routing and responses until the onset."""
    strip = ("event_id", "request_id", "rollout_id")
    a = list(generate(get_scenario("aa", seed=4, duration_s=600)))
    b = list(generate(get_scenario("error_spike_coding", seed=4, duration_s=600, start_s=300.0)))
    assert len(a) == len(b)

    def core(e: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in e.items() if k not in strip}

    diff = [(x, y) for x, y in zip(a, b, strict=True) if core(x) != core(y)]
    assert diff, "the injection must change something"
    for x, y in diff:
        assert rel(x) >= 300.0 and x["arm"] == "canary" and x["segment"]["input_class"] == "coding"
        assert y["status"] == "error" and x["status"] != "error"  # only the error threshold moved


# ---- contract and order ---------------------------------------------------------------------------
def test_events_are_valid_v1_and_in_event_time_order(aa_events: list[dict[str, Any]]) -> None:
    ts = [e["ts"] for e in aa_events]
    assert all(x <= y for x, y in itertools.pairwise(ts))
    for ev in aa_events[::37]:
        parsed = parse_event(ev)
        assert isinstance(parsed, Event), parsed
        assert parsed.to_dict() == ev
    assert len({e["event_id"] for e in aa_events}) == len(aa_events)


def test_arrival_rate_and_optional_fields(aa_events: list[dict[str, Any]]) -> None:
    assert len(aa_events) / 1800 == pytest.approx(40, rel=0.02)
    assert all("response_text" not in e for e in aa_events)  # texts are off by default
    ok = [e for e in aa_events if e["status"] == "ok"]
    served = [e for e in aa_events if e["status"] in ("ok", "refusal")]
    assert all("ttft_ms" in e and "tokens_out" in e and "format_valid" in e for e in ok)
    assert all("tokens_out" not in e for e in aa_events if e["status"] in ("error", "timeout"))
    assert all(0.0 <= e["quality"]["eval_score"] <= 1.0 for e in ok if "eval_score" in e.get("quality", {}))
    eval_share = sum("eval_score" in e.get("quality", {}) for e in ok) / len(ok)
    thumbs_share = sum("thumbs" in e.get("quality", {}) for e in served) / len(served)
    assert 0.8 < eval_share < 0.9
    assert 0.04 < thumbs_share < 0.06
    assert all(e["latency_ms"] >= e["ttft_ms"] for e in ok)


def test_rare_rates_are_realistic(aa_events: list[dict[str, Any]]) -> None:
    for status in ("error", "timeout", "refusal"):
        assert 0.002 <= rate(aa_events, status) <= 0.02, status
    flags = [e["format_valid"] for e in aa_events if "format_valid" in e]
    assert 0.005 < flags.count(False) / len(flags) < 0.02
    coding = [e for e in aa_events if e["segment"]["input_class"] == "coding"]
    assert rate(coding, "error") == pytest.approx(0.01, abs=0.003)


def test_latency_tokens_cost_are_heavy_tailed_and_consistent(aa_events: list[dict[str, Any]]) -> None:
    ok = [e for e in aa_events if e["status"] == "ok"]
    lat = np.array([e["latency_ms"] for e in ok])
    tout = np.array([e["tokens_out"] for e in ok])
    tin = np.array([e["tokens_in"] for e in ok])
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    assert 2000 < p50 < 8000 and p95 > 3 * p50 and p99 > p95
    assert np.percentile(tout, 99) > 5 * np.median(tout)
    assert np.percentile(tin, 99) > 5 * np.median(tin)
    # cost = tokens x prices of the segment (t4 has a discount)
    e = next(x for x in ok if x["segment"]["tenant"] == "t1")
    expected = (e["tokens_in"] * 0.0005 + e["tokens_out"] * 0.0015) / 1000
    assert e["cost_usd"] == pytest.approx(expected, abs=1e-8)


def test_segment_shares(aa_events: list[dict[str, Any]]) -> None:
    n = len(aa_events)
    classes = Counter(e["segment"]["input_class"] for e in aa_events)
    shares = {"chat": 0.45, "coding": 0.27, "summarization": 0.15, "billing": 0.10, "legal": 0.03}
    for value, share in shares.items():
        assert classes[value] / n == pytest.approx(share, abs=0.01), value
    tenants = Counter(e["segment"]["tenant"] for e in aa_events)
    zipf = np.array([1 / k for k in range(1, 7)])
    zipf /= zipf.sum()
    for k, share in enumerate(zipf, start=1):
        # tenants are a property of units, whose activity is heavy-tailed: looser tolerance
        assert tenants[f"t{k}"] / n == pytest.approx(share, abs=0.04), k
    assert tenants["t1"] > tenants["t2"] > tenants["t3"] > tenants["t6"]
    # a unit always belongs to the same tenant
    tenant_of: dict[str, set[str]] = defaultdict(set)
    for e in aa_events:
        tenant_of[e["unit_id"]].add(e["segment"]["tenant"])
    assert all(len(v) == 1 for v in tenant_of.values())


def test_units_heavy_tailed_and_sticky_routing_at_canary_weight(aa_events: list[dict[str, Any]]) -> None:
    per_unit = Counter(e["unit_id"] for e in aa_events)
    counts = np.array(sorted(per_unit.values()))
    assert counts[-1] > 20 * np.median(counts)
    arms: dict[str, set[str]] = defaultdict(set)
    for e in aa_events:
        arms[e["unit_id"]].add(e["arm"])
        assert e["canary_weight"] == 0.1
    assert all(len(a) == 1 for a in arms.values())  # sticky: a unit never switches arm
    canary_units = sum(a == {"canary"} for a in arms.values())
    assert canary_units / len(arms) == pytest.approx(0.1, abs=0.01)
    assert rate_arm(aa_events, "canary") == pytest.approx(0.1, abs=0.015)


def rate_arm(events: list[dict[str, Any]], arm: str) -> float:
    return sum(e["arm"] == arm for e in events) / len(events)


def test_ramp_keeps_canary_units_on_the_canary_and_follows_the_weights() -> None:
    sc = get_scenario("ramp", seed=3, duration_s=1000, steps=(0.05, 0.25), step_s=500.0, promote_at_s=None)
    events = list(generate(sc))
    first = [e for e in events if rel(e) < 500]
    second = [e for e in events if rel(e) >= 500]
    assert {e["canary_weight"] for e in first} == {0.05}
    assert {e["canary_weight"] for e in second} == {0.25}
    canary_first = {e["unit_id"] for e in first if e["arm"] == "canary"}
    units_second = {e["unit_id"]: e["arm"] for e in second}
    assert all(units_second[u] == "canary" for u in canary_first if u in units_second)
    assert rate_arm(first, "canary") == pytest.approx(0.05, abs=0.015)
    assert rate_arm(second, "canary") == pytest.approx(0.25, abs=0.03)


# ---- injections -----------------------------------------------------------------------------------
def test_injection_only_in_targeted_cohort_and_arm_after_onset(spike_events: list[dict[str, Any]]) -> None:
    def err(arm: str, coding: bool, after: bool) -> float:
        sel = [
            e
            for e in spike_events
            if e["arm"] == arm
            and (e["segment"]["input_class"] == "coding") == coding
            and (rel(e) >= 600) == after
        ]
        return rate(sel, "error")

    assert err("canary", True, False) == pytest.approx(0.01, abs=0.005)
    assert err("canary", True, True) == pytest.approx(0.03, abs=0.007)
    assert err("control", True, True) == pytest.approx(0.01, abs=0.005)
    assert err("control", True, False) == pytest.approx(0.01, abs=0.005)
    for arm in ("control", "canary"):
        assert err(arm, False, True) < 0.009  # other cohorts keep their base rates (0.5-0.8%)


def test_both_arms_injection_affects_both_arms_in_its_window() -> None:
    sc = get_scenario(
        "both_arms_outage", seed=4, start_s=300.0, end_s=600.0, canary_weight=0.5, duration_s=900
    )
    events = list(generate(sc))

    def timeouts(arm: str, tenant: bool, window: bool) -> float:
        sel = [
            e
            for e in events
            if e["arm"] == arm
            and (e["segment"]["tenant"] == "t2") == tenant
            and (300 <= rel(e) < 600) == window
        ]
        return rate(sel, "timeout")

    for arm in ("control", "canary"):
        assert timeouts(arm, True, True) == pytest.approx(0.05, abs=0.015), arm
        assert timeouts(arm, True, False) < 0.008, arm  # before and after the window
        assert timeouts(arm, False, True) < 0.008, arm  # other tenants


def test_latency_tail_injection_moves_p95_not_median() -> None:
    sc = get_scenario("latency_tail_billing", factor=1.3, start_s=600.0)
    before = sample_requests(sc, 200_000, 599.0, "canary", {"input_class": "billing"})
    after = sample_requests(sc, 200_000, 600.0, "canary", {"input_class": "billing"})
    control = sample_requests(sc, 200_000, 600.0, "control", {"input_class": "billing"})
    q_b, q_a, q_c = (
        np.percentile(c["latency_ms"][c["status"] == 0], [50, 95]) for c in (before, after, control)
    )
    assert q_a[0] == pytest.approx(q_b[0], rel=0.01)
    assert q_a[1] / q_b[1] == pytest.approx(1.3, abs=0.03)
    np.testing.assert_allclose(q_c, q_b, rtol=1e-9)


@pytest.mark.parametrize(
    ("metric", "value", "field", "expected"),
    [
        ("eval_score", -0.05, "eval_score", -0.05),  # shift of the mean
        ("latency", 1.5, "latency_ms", 1.5),  # ratio of medians
        ("tokens_out", 2.0, "tokens_out", 2.0),
        ("cost", 1.25, "cost_usd", 1.25),
        ("ttft", 2.0, "ttft_ms", None),  # ttft grows, latency grows less
    ],
)
def test_metric_injections_have_their_effect(
    metric: str, value: float, field: str, expected: float | None
) -> None:
    sc = get_scenario("aa")
    sc.injections.append(Injection(metric, value, 100.0, cohort={"input_class": "chat"}))
    args = (sc, 100_000)
    before = sample_requests(*args, 99.0, "canary", {"input_class": "chat"})
    after = sample_requests(*args, 100.0, "canary", {"input_class": "chat"})
    ok_b, ok_a = before["status"] == 0, after["status"] == 0
    if metric == "eval_score":
        a, b = np.nanmean(after[field]), np.nanmean(before[field])
        assert a - b == pytest.approx(expected, abs=0.005)
    elif expected is not None:
        ratio = np.median(after[field][ok_a]) / np.median(before[field][ok_b])
        assert ratio == pytest.approx(expected, rel=0.03)
    else:
        ttft_ratio = np.median(after["ttft_ms"][ok_a]) / np.median(before["ttft_ms"][ok_b])
        assert ttft_ratio == pytest.approx(2, rel=0.03)
        lat_ratio = np.median(after["latency_ms"][ok_a]) / np.median(before["latency_ms"][ok_b])
        assert 1.02 < lat_ratio < 1.5
    other = sample_requests(*args, 100.0, "canary", {"input_class": "coding"})
    other_before = sample_requests(*args, 99.0, "canary", {"input_class": "coding"})
    np.testing.assert_array_equal(other[field], other_before[field])  # untouched cohort: identical draws


def test_drop_events_makes_a_sample_ratio_mismatch() -> None:
    events = list(generate(get_scenario("srm_drop", seed=2, duration_s=600, canary_weight=0.5, drop=0.2)))
    assert rate_arm(events, "canary") == pytest.approx(0.4 / 0.9, abs=0.03)


# ---- phases ---------------------------------------------------------------------------------------
def test_promotion_leaves_only_the_new_version() -> None:
    sc = get_scenario(
        "post_rollout_regression", seed=1, duration_s=1000, promote_at_s=400.0, start_s=600.0, error_rate=0.08
    )
    sc.shadow = Shadow()
    events = list(generate(sc))
    after = [e for e in events if rel(e) >= 400 and e["arm"] != "shadow"]
    before = [e for e in events if rel(e) < 400]
    # shadow copies of requests made before the promotion may still arrive just after it, no later ones
    late_shadows = [e for e in events if e["arm"] == "shadow" and rel(e) >= 400]
    assert all(
        int(e["request_id"].rsplit("r", 1)[1]) < int(after[0]["request_id"].rsplit("r", 1)[1])
        for e in late_shadows
    )
    assert after
    assert all(e["arm"] == "canary" and e["canary_weight"] == 1.0 and e["variant"] == "v2" for e in after)
    assert {"control", "canary", "shadow"} <= {e["arm"] for e in before}
    legal = [e for e in events if e["segment"]["input_class"] == "legal" and e["arm"] != "shadow"]
    before_onset = [e for e in legal if rel(e) < 600]
    assert rate([e for e in legal if rel(e) >= 600], "error") > 0.04 > rate(before_onset, "error")


def test_shadow_copies_pair_with_live_control_requests() -> None:
    events = list(generate(get_scenario("shadow_aa", seed=7, duration_s=600)))
    live = {e["request_id"]: e for e in events if e["arm"] != "shadow"}
    shadows = [e for e in events if e["arm"] == "shadow"]
    controls = [e for e in events if e["arm"] == "control"]
    assert len(shadows) / len(controls) == pytest.approx(0.95, abs=0.01)  # 5% of copies missing
    seen: set[str] = set()
    for s in shadows:
        partner = live[s["request_id"]]
        assert partner["arm"] == "control"
        assert s["ts"] >= partner["ts"]
        assert s["segment"] == partner["segment"] and s["unit_id"] == partner["unit_id"]
        assert s["tokens_in"] == partner["tokens_in"]
        assert s["variant"] == "v2" and s["event_id"] != partner["event_id"]
        assert "thumbs" not in s.get("quality", {})
        seen.add(s["request_id"])
    assert len(seen) == len(shadows)
    ts = [e["ts"] for e in events]
    assert all(x <= y for x, y in itertools.pairwise(ts))
    assert all(isinstance(parse_event(e), Event) for e in shadows[::20])


# ---- arrivals -------------------------------------------------------------------------------------
def test_diurnal_modulation_and_bursts() -> None:
    sc = get_scenario("diurnal_bursty", seed=1)
    t = np.concatenate([b.t for b in generate_batches(sc)])
    per_min = np.bincount((t // 60).astype(int), minlength=120) / 60.0
    # rate 40 * (1 + 0.6 sin(2 pi t / 3600)): peak around minute 15, trough around minute 45
    assert per_min[12:18].mean() == pytest.approx(64, rel=0.1)
    assert per_min[42:48].mean() == pytest.approx(16, rel=0.15)
    burst = ((t >= 1500) & (t < 1620)).sum() / 120
    assert burst == pytest.approx(3 * 40 * (1 + 0.6 * np.sin(2 * np.pi * 1560 / 3600)), rel=0.1)


def test_replayed_arrival_times() -> None:
    times = np.sort(np.random.default_rng(0).uniform(0, 60, 500))
    events = list(generate(get_scenario("aa", duration_s=60), arrival_times=times))
    np.testing.assert_allclose([rel(e) for e in events], times, atol=1e-3)


# ---- texts and files ------------------------------------------------------------------------------
def test_response_text_hook_and_register_injection() -> None:
    sc = get_scenario("text_register", seed=1, duration_s=300, start_s=150.0, canary_weight=0.5)
    events = list(generate(sc))
    served = [e for e in events if e["status"] in ("ok", "refusal")]
    assert all(isinstance(e.get("response_text"), str) for e in served)
    assert all("response_text" not in e for e in events if e["status"] in ("error", "timeout"))
    hedges = ("perhaps", "possible", "certain", "caveats")

    def hedging(e: dict[str, Any]) -> bool:
        return any(h in e["response_text"] for h in hedges)

    ok = [e for e in events if e["status"] == "ok"]
    target = [
        e for e in ok if e["arm"] == "canary" and e["segment"]["input_class"] == "chat" and rel(e) >= 150
    ]
    target_ids = {e["event_id"] for e in target}
    others = [e for e in ok if e["event_id"] not in target_ids]
    assert target and all(hedging(e) for e in target)
    assert not any(hedging(e) for e in others)


def test_text_spec_share() -> None:
    sc = get_scenario("aa", duration_s=120)
    sc.response_text = TextSpec(share=0.3)
    served = [e for e in generate(sc) if e["status"] == "ok"]
    assert sum("response_text" in e for e in served) / len(served) == pytest.approx(0.3, abs=0.05)


def test_write_and_read_jsonl(tmp_path) -> None:
    events = list(generate(get_scenario("shadow_aa", seed=2, duration_s=60)))
    path = tmp_path / "events.jsonl"
    assert write_jsonl(events, path) == len(events)
    assert list(read_jsonl(path)) == events


def test_merge_streams_orders_two_rollouts() -> None:
    a = generate(get_scenario("aa", seed=1, duration_s=60))
    b = generate(get_scenario("error_spike_coding", seed=2, duration_s=60))
    merged = list(merge_streams(a, b))
    assert len({e["rollout_id"] for e in merged}) == 2
    ts = [e["ts"] for e in merged]
    assert ts == sorted(ts)
