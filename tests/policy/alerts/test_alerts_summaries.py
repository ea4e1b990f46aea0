"""One summary per verdict kind, pinned: each quotes the estimate of the window that decided (the recent
canary against the recent control for a recent-window decision), the effect in the metric's own units
and in %, and the margin, then the cumulative figure; semantic and shadow checks in their own units;
the cohort named is the signal's own."""

from __future__ import annotations

from typing import Any

import pytest

from rollguard.domain.cohorts import parse_cohort_key
from rollguard.policy.alerts.records import signal_sentence
from rollguard.policy.signals import Signal, SignalTable

T0 = 1767225600.0


def sig(kind: str, metric: str, cohort: str, state: str, ev: dict[str, Any], phase: str = "canary") -> Signal:
    """A signal as the policy holds it, from a verdict change with this evidence."""
    t = SignalTable("r1")
    t.apply({"kind": kind, "ts": T0, "rollout_id": "r1", "cohort": cohort, "scope": parse_cohort_key(cohort),
             "metric": metric, "phase": phase, "state": state, "evidence": ev})  # fmt: skip
    return next(iter(t.live()))


CASES: dict[str, Signal] = {
    "cumulative rate": sig(
        "verdict",
        "error_rate",
        "input_class=coding",
        "regressed",
        {
            "n_control": 9000,
            "n_canary": 1000,
            "control": 0.01,
            "canary": 0.032,
            "effect": 0.022,
            "relative_effect": 2.2,
            "interval": [0.008, 0.024],
            "margin": 0.005,
            "margin_relative": False,
            "alpha": 2.5e-5,
            "method": "mixture-sprt-cs",
        },
    ),
    "cumulative mean": sig(
        "verdict",
        "latency_ms.mean",
        "*",
        "regressed",
        {
            "n_control": 9000,
            "n_canary": 1000,
            "control": 820.0,
            "canary": 1010.0,
            "effect": 190.0,
            "relative_effect": 0.2317,
            "interval": [30.0, 160.0],
            "margin": 0.1,
            "margin_relative": True,
            "alpha": 1.5e-4,
            "method": "mixture-sprt-cs",
        },
    ),
    "recent rate": sig(
        "verdict",
        "error_rate",
        "input_class=coding",
        "regressed",
        {
            "method": "paired-sr-mixture",
            "window": "recent",
            "statistic": 17.3,
            "threshold": 16.7,
            "recent_s": 330.0,
            "recent_n_canary": 350,
            "recent_n_control": 3150,
            "recent_canary": 0.0829,
            "recent_control": 0.0152,
            "n_control": 14000,
            "n_canary": 1500,
            "control": 0.015,
            "canary": 0.031,
            "alpha": 2.6e-5,
            "margin": 0.005,
            "margin_relative": False,
        },
    ),
    "recent mean": sig(
        "verdict",
        "latency_ms.mean",
        "*",
        "regressed",
        {
            "method": "paired-sr-mixture",
            "window": "recent",
            "statistic": 14.9,
            "threshold": 14.5,
            "recent_s": 120.0,
            "recent_canary": 1236.0,
            "recent_control": 821.0,
            "n_control": 30000,
            "n_canary": 3300,
            "control": 879.0,
            "canary": 878.0,
            "alpha": 2.5e-4,
            "margin": 0.1,
            "margin_relative": True,
        },
    ),
    "recent tail": sig(
        "verdict",
        "latency_ms.p95",
        "input_class=chat",
        "regressed",
        {
            "method": "paired-sr-mixture",
            "window": "recent",
            "statistic": 18.0,
            "threshold": 17.2,
            "recent_s": 600.0,
            "recent_exceed_canary": 0.14,
            "recent_exceed_control": 0.05,
            "quantile": 0.95,
            "threshold_value": 2100.0,
            "n_control": 40000,
            "n_canary": 4400,
            "control": 2100.0,
            "canary": 2290.0,
            "alpha": 3e-5,
            "margin": 0.1,
            "margin_relative": True,
        },
    ),
    "cumulative tail": sig(
        "verdict",
        "latency_ms.p95",
        "input_class=chat",
        "regressed",
        {
            "method": "quantile-cs",
            "n_control": 40000,
            "n_canary": 4400,
            "control": 2100.0,
            "canary": 2890.0,
            "effect": 790.0,
            "relative_effect": 0.376,
            "interval": [100.0, 500.0],
            "margin": 0.1,
            "margin_relative": True,
            "alpha": 3e-5,
        },
    ),
    "post-rollout rate": sig(
        "verdict",
        "error_rate",
        "input_class=legal",
        "regressed",
        {
            "method": "cusum-bernoulli",
            "reference": 0.0091,
            "null": 0.0191,
            "alternative": 0.0291,
            "statistic": 16.1,
            "threshold": 15.2,
            "recent_n": 1800,
            "recent": 0.041,
            "n_canary": 20000,
            "alpha": 1e-5,
            "margin": 0.005,
            "margin_relative": False,
        },
        "post_rollout",
    ),
    "post-rollout exceedance": sig(
        "verdict",
        "latency_ms.mean",
        "*",
        "regressed",
        {
            "method": "cusum-exceedance",
            "reference": 812.0,
            "bar": 905.0,
            "null": 0.5,
            "alternative": 0.7,
            "statistic": 16.1,
            "threshold": 15.2,
            "recent_n": 1200,
            "recent": 0.71,
            "n_canary": 20000,
            "alpha": 1e-4,
            "margin": 0.1,
            "margin_relative": True,
        },
        "post_rollout",
    ),
    "drift rate": sig(
        "drift",
        "timeout_rate",
        "tenant=t2",
        "drifted",
        {
            "method": "cusum-bernoulli",
            "reference": 0.0031,
            "null": 0.0081,
            "alternative": 0.0131,
            "statistic": 16.0,
            "threshold": 15.0,
            "recent_n": 2400,
            "recent": 0.049,
            "arm": "control",
            "margin": 0.005,
            "margin_relative": False,
        },
    ),
    "drift exceedance": sig(
        "drift",
        "tpot_ms.mean",
        "tenant=t5",
        "drifted",
        {
            "method": "cusum-exceedance",
            "reference": 21.3,
            "bar": 23.9,
            "null": 0.5,
            "alternative": 0.6,
            "statistic": 16.0,
            "threshold": 15.0,
            "recent_n": 2400,
            "recent": 0.66,
            "arm": "control",
            "margin": 0.1,
            "margin_relative": True,
        },
    ),
    "srm units": sig(
        "srm",
        "sample_ratio",
        "*",
        "unhealthy",
        {
            "units": 20000,
            "observed_canary": 1700,
            "expected_canary": 2000,
            "p_value": 1e-6,
            "alpha": 0.001,
            "method": "sequential-srm-mixture",
        },
    ),
    "srm requests": sig(
        "srm",
        "sample_ratio_requests",
        "*",
        "unhealthy",
        {
            "units": 12000,
            "requests": 40000,
            "observed_canary": 3300,
            "expected_canary": 4000,
            "requests_per_canary_unit": 2.41,
            "requests_per_control_unit": 2.76,
            "p_value": 3e-5,
            "alpha": 0.001,
            "follow_up_s": 600.0,
            "method": "sequential-srm-requests-per-unit",
        },
    ),
    "excess": sig(
        "excess",
        "latency_ms.mean",
        "input_class=coding",
        "beyond_parent",
        {
            "method": "excess-cs",
            "effect": 0.62,
            "effect_lo": 0.41,
            "parent_effect": 0.2,
            "parent_effect_hi": 0.25,
            "margin": 0.1,
            "margin_relative": True,
        },
    ),
    "semantic": sig(
        "verdict",
        "semantic_drift",
        "input_class=chat",
        "regressed",
        {
            "n_control": 900,
            "n_canary": 100,
            "control": 0.0,
            "canary": 0.41,
            "effect": 0.41,
            "relative_effect": 1.64,
            "interval": [0.05, 0.3],
            "margin": 0.25,
            "margin_relative": False,
            "alpha": 1e-4,
            "method": "mahalanobis-mixture-cs",
        },
    ),
    "semantic recent": sig(
        "verdict",
        "semantic_drift",
        "input_class=chat",
        "regressed",
        {
            "n_control": 900,
            "n_canary": 100,
            "control": 0.0,
            "canary": 0.52,
            "effect": 0.52,
            "relative_effect": 2.08,
            "interval": [0.1, 0.4],
            "margin": 0.25,
            "margin_relative": False,
            "alpha": 1e-4,
            "method": "windowed-mahalanobis-mixture-cs",
            "window": "recent",
            "window_s": 900.0,
        },
    ),
    "shadow latency": sig(
        "verdict",
        "shadow.latency_ms",
        "input_class=coding",
        "regressed",
        {
            "n_control": 420,
            "n_canary": 420,
            "control": 1100.0,
            "canary": 1350.0,
            "effect": 0.205,
            "relative_effect": 0.227,
            "interval": [0.01, 0.2],
            "margin": 0.1,
            "margin_relative": True,
            "alpha": 1e-4,
            "method": "paired-mixture-cs(log)",
            "pairs": 420,
        },
    ),
    "shadow failures": sig(
        "verdict",
        "shadow.failure_rate",
        "*",
        "regressed",
        {
            "n_control": 4200,
            "n_canary": 4200,
            "control": 0.0,
            "canary": 0.021,
            "effect": 0.021,
            "relative_effect": 0.0,
            "interval": [0.001, 0.03],
            "margin": 0.005,
            "margin_relative": False,
            "alpha": 1e-4,
            "method": "paired-mixture-cs",
            "pairs": 4200,
        },
    ),
    "shadow embedding": sig(
        "verdict",
        "shadow.embedding",
        "input_class=coding",
        "regressed",
        {
            "n_control": 420,
            "n_canary": 420,
            "control": 0.0,
            "canary": 0.61,
            "effect": 0.61,
            "relative_effect": 2.44,
            "interval": [0.1, 0.5],
            "margin": 0.25,
            "margin_relative": False,
            "alpha": 1e-4,
            "method": "paired-mahalanobis-mixture-cs",
            "pairs": 420,
        },
    ),
}

EXPECTED = {
    "cumulative rate": "error_rate regressed in input_class=coding: canary 3.20% vs control 1.00% (+2.20 pp, +220%), margin 0.5 pp, confidence 99.997%",  # noqa: E501
    "cumulative mean": "latency_ms.mean regressed in the whole rollout: canary 1,010 ms vs control 820 ms (+190 ms, +23%), margin 10%, confidence 99.98%",  # noqa: E501
    "recent rate": "error_rate regressed in input_class=coding (recent 6 min: canary 8.29% vs control 1.52%, +6.77 pp, +445%; margin 0.5 pp; e-detector 17.3 ≥ 16.7); since the start canary 3.10% vs control 1.50%, confidence 99.997%",  # noqa: E501
    "recent mean": "latency_ms.mean regressed in the whole rollout (recent 2 min: canary 1,236 ms vs control 821 ms, +415 ms, +51%; margin 10%; e-detector 14.9 ≥ 14.5); since the start canary 878 ms vs control 879 ms, confidence 99.98%",  # noqa: E501
    "recent tail": "latency_ms.p95 regressed in input_class=chat (recent 10 min: 14.0% of the canary's responses above 1.1 x the control's p95 2,100 ms, 5.00% of the control's above it; margin 10%; e-detector 18 ≥ 17.2); since the start p95 canary 2,290 ms vs control 2,100 ms, confidence 99.997%",  # noqa: E501
    "cumulative tail": "latency_ms.p95 regressed in input_class=chat: canary 2,890 ms vs control 2,100 ms (+790 ms, +38%), margin 10%, confidence 99.997%",  # noqa: E501
    "post-rollout rate": "error_rate regressed in input_class=legal after promotion: recently 4.10% of 1,800 requests vs its baseline 0.91% (+3.19 pp, margin 0.5 pp); CUSUM 16.1 ≥ 15.2, confidence 99.999%",  # noqa: E501
    "post-rollout exceedance": "latency_ms.mean regressed in the whole rollout after promotion: recently 71.0% of 1,200 requests above 905 ms, 1.1 x an upper bound of its baseline's median (median 812 ms), where at most 50% means no change; CUSUM 16.1 ≥ 15.2, confidence 99.99%",  # noqa: E501
    "drift rate": "baseline drift of timeout_rate in tenant=t2, in the control: recently 4.90% of 2,400 requests vs its reference 0.31% (+4.59 pp, margin 0.5 pp); CUSUM 16 ≥ 15: both arms moved, so this is not a canary regression",  # noqa: E501
    "drift exceedance": "baseline drift of tpot_ms.mean in tenant=t5, in the control: recently 66.0% of 2,400 requests above 23.9 ms, 1.1 x an upper bound of its reference's median (median 21.3 ms), where at most 50% means no change; CUSUM 16 ≥ 15: both arms moved, so this is not a canary regression",  # noqa: E501
    "srm units": "sample ratio mismatch in the whole rollout: 1,700 canary units observed vs 2,000 expected of 20,000 (p = 1e-06); verdicts are unreliable and promotion is held",  # noqa: E501
    "srm requests": "request-level sample ratio mismatch in the whole rollout: 2.41 requests per canary unit vs 2.76 per control unit within 10 min of their first request (12,000 units, p = 3e-05); canary events are lost or duplicated, verdicts are unreliable and promotion is held",  # noqa: E501
    "excess": "latency_ms.mean regressed in input_class=coding beyond the whole rollout's regression: +62% against +20% (by more than the margin 10%)",  # noqa: E501
    "semantic": "semantic_drift regressed in input_class=chat: the canary's answers differ in meaning from the control's by 0.41 SD (Mahalanobis distance of embedding features, margin 0.25 SD), confidence 99.99%",  # noqa: E501
    "semantic recent": "semantic_drift regressed in input_class=chat: the canary's answers differ in meaning from the control's by 0.52 SD (Mahalanobis distance of embedding features, margin 0.25 SD) over the last 15 min, confidence 99.99%",  # noqa: E501
    "shadow latency": "shadow regressed against live in input_class=coding: latency_ms shadow 1,350 ms vs live 1,100 ms (geometric means on the same 420 requests, +23%; margin 10%), confidence 99.99%",  # noqa: E501
    "shadow failures": "shadow regressed against live in the whole rollout: it fails +2.10 pp more often on the same 4,200 requests (margin 0.5 pp), confidence 99.99%",  # noqa: E501
    "shadow embedding": "shadow regressed against live in input_class=coding: its answers differ in meaning by 0.61 SD on the same 420 requests (margin 0.25 SD), confidence 99.99%",  # noqa: E501
}


@pytest.mark.parametrize("kind", list(CASES))
def test_each_kind_of_verdict_reads_in_the_words_of_its_own_evidence(kind: str) -> None:
    assert signal_sentence(CASES[kind]) == EXPECTED[kind]


def test_a_recent_window_decision_quotes_that_window_not_the_diluted_cumulative_figure() -> None:
    text = signal_sentence(CASES["recent mean"])
    assert text.index("canary 1,236 ms vs control 821 ms") < text.index("since the start canary 878 ms")
    assert "+51%" in text and "margin 10%" in text


def test_semantic_and_shadow_distances_are_in_standard_deviations_never_percent_of_a_margin() -> None:
    for kind in ("semantic", "semantic recent", "shadow embedding"):
        text = signal_sentence(CASES[kind])
        assert " SD" in text and " pp" not in text and "worse" not in text
