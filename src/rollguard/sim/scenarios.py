"""Named built-in scenarios (the benchmark suite's traffic). ``get_scenario(name, seed=..., ...)``.

Every builder takes keyword arguments ``seed``, ``duration_s``, ``rate_per_s``, ``canary_weight``
(defaults: 30 minutes at 40 requests/s with a 10% canary, the detection core's "Prove it" setting)
plus its own knobs (onset, effect size). Scenarios that differ only in their injection share every
random draw before the onset (see ``generator``), so the A/A scenario with the same seed is the
paired null of each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rollguard.sim.scenario import Burst, Injection, Scenario, Shadow, TextSpec, WeightStep

ScenarioBuilder = Callable[..., Scenario]
SCENARIOS: dict[str, ScenarioBuilder] = {}


def _register(fn: ScenarioBuilder) -> ScenarioBuilder:
    SCENARIOS[fn.__name__] = fn
    return fn


def get_scenario(name: str, **kwargs: Any) -> Scenario:
    """Build the named scenario; ``kwargs`` go to its builder (``seed``, ``duration_s``, ...)."""
    try:
        builder = SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; one of {sorted(SCENARIOS)}") from None
    return builder(**kwargs)


def _base(
    name: str, seed: int, duration_s: float, rate_per_s: float, canary_weight: float, *changes: Injection
) -> Scenario:
    """The common traffic (rate, canary weight) of every builder, with the builder's ``changes``."""
    sc = Scenario(
        name=name,
        seed=seed,
        rollout_id=f"{name}-{seed}",
        duration_s=duration_s,
        weights=[WeightStep(0.0, canary_weight)],
        injections=list(changes),
    )
    sc.arrivals.rate_per_s = rate_per_s
    return sc


@_register
def aa(
    seed: int = 0, duration_s: float = 1800.0, rate_per_s: float = 40.0, canary_weight: float = 0.1
) -> Scenario:
    """A/A: the canary behaves exactly like the control. Any "regressed" verdict is a false alarm."""
    return _base("aa", seed, duration_s, rate_per_s, canary_weight)


@_register
def error_spike_coding(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 600.0,
    error_rate: float = 0.03,
) -> Scenario:
    """Canary error rate in input_class=coding goes from 1% to ``error_rate`` at ``start_s``."""
    change = Injection(
        "error_rate",
        error_rate,
        start_s,
        cohort={"input_class": "coding"},
        label=f"coding error 1% -> {error_rate:.0%}",
    )
    return _base("error_spike_coding", seed, duration_s, rate_per_s, canary_weight, change)


@_register
def latency_tail_billing(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 600.0,
    factor: float = 1.3,
    input_class: str = "billing",
) -> Scenario:
    """Canary p95 latency of input_class=billing x``factor`` at ``start_s``; the median does not move.

    Hard on purpose at the defaults (billing is 10% of traffic: ~0.4 canary requests/s), pass
    ``input_class="chat"`` (45%) for a cohort where +30% is detectable within the run."""
    change = Injection(
        "latency_tail",
        factor,
        start_s,
        cohort={"input_class": input_class},
        label=f"{input_class} p95 latency x{factor}",
    )
    return _base("latency_tail_billing", seed, duration_s, rate_per_s, canary_weight, change)


@_register
def latency_shift_tenant(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 600.0,
    factor: float = 1.2,
    tenant: str = "t3",
) -> Scenario:
    """Whole latency distribution of the canary x``factor`` for one tenant (a per-unit dimension)."""
    change = Injection(
        "latency", factor, start_s, cohort={"tenant": tenant}, label=f"{tenant} latency x{factor}"
    )
    return _base("latency_shift_tenant", seed, duration_s, rate_per_s, canary_weight, change)


@_register
def quality_drop(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 600.0,
    shift: float = -0.05,
    input_class: str = "chat",
) -> Scenario:
    """Canary mean eval_score of one input_class shifts by ``shift`` (e.g. 0.82 -> 0.77)."""
    change = Injection(
        "eval_score",
        shift,
        start_s,
        cohort={"input_class": input_class},
        label=f"{input_class} eval_score {shift:+}",
    )
    return _base("quality_drop", seed, duration_s, rate_per_s, canary_weight, change)


@_register
def refusal_spike_legal(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 600.0,
    refusal_rate: float = 0.10,
) -> Scenario:
    """The rare cohort (legal, ~3% of traffic): canary refusals 3% -> ``refusal_rate``."""
    change = Injection(
        "refusal_rate",
        refusal_rate,
        start_s,
        cohort={"input_class": "legal"},
        label=f"legal refusal 3% -> {refusal_rate:.0%}",
    )
    return _base("refusal_spike_legal", seed, duration_s, rate_per_s, canary_weight, change)


@_register
def format_break_coding(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 600.0,
    rate: float = 0.06,
) -> Scenario:
    """Canary format-invalid share in coding 1.5% -> ``rate`` (e.g. a broken JSON-mode prompt)."""
    change = Injection(
        "format_invalid_rate",
        rate,
        start_s,
        cohort={"input_class": "coding"},
        label=f"coding format-invalid -> {rate:.0%}",
    )
    return _base("format_break_coding", seed, duration_s, rate_per_s, canary_weight, change)


@_register
def verbose_canary(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 600.0,
    factor: float = 1.5,
) -> Scenario:
    """Canary answers ``factor`` x longer everywhere: tokens_out, latency and cost rise together."""
    change = Injection("tokens_out", factor, start_s, label=f"tokens_out x{factor}")
    return _base("verbose_canary", seed, duration_s, rate_per_s, canary_weight, change)


@_register
def cost_increase(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 0.0,
    factor: float = 1.25,
) -> Scenario:
    """The canary model is ``factor`` x more expensive per token from the start (nothing else changes)."""
    change = Injection("cost", factor, start_s, label=f"cost x{factor}")
    return _base("cost_increase", seed, duration_s, rate_per_s, canary_weight, change)


@_register
def thumbs_drop(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 600.0,
    shift: float = -0.2,
) -> Scenario:
    """Canary thumbs-up probability drops by ``shift`` (sparse feedback: ~5% of requests)."""
    change = Injection("thumbs", shift, start_s, label=f"thumbs-up {shift:+}")
    return _base("thumbs_drop", seed, duration_s, rate_per_s, canary_weight, change)


@_register
def both_arms_outage(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 900.0,
    end_s: float = 1200.0,
    timeout_rate: float = 0.05,
    tenant: str = "t2",
) -> Scenario:
    """Upstream outage for one tenant: timeouts rise in control and canary alike (baseline drift,
    not a canary regression)."""
    change = Injection(
        "timeout_rate",
        timeout_rate,
        start_s,
        end_s,
        cohort={"tenant": tenant},
        arms=["control", "canary", "shadow"],
        label=f"{tenant} upstream outage: timeouts {timeout_rate:.0%}",
    )
    return _base("both_arms_outage", seed, duration_s, rate_per_s, canary_weight, change)


@_register
def ramp(
    seed: int = 0,
    duration_s: float = 3600.0,
    rate_per_s: float = 40.0,
    steps: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5),
    step_s: float = 600.0,
    promote_at_s: float | None = 3000.0,
) -> Scenario:
    """Progressive A/A rollout: weight steps every ``step_s``, then promotion (post-rollout phase)."""
    sc = _base("ramp", seed, duration_s, rate_per_s, steps[0])
    sc.weights = [WeightStep(i * step_s, w) for i, w in enumerate(steps)]
    sc.promote_at_s = promote_at_s
    return sc


@_register
def post_rollout_regression(
    seed: int = 0,
    duration_s: float = 4500.0,
    rate_per_s: float = 40.0,
    promote_at_s: float = 1800.0,
    start_s: float = 2700.0,
    error_rate: float = 0.04,
    input_class: str = "legal",
) -> Scenario:
    """Ramp 5/10/25/50% in 30 minutes, promotion, then the rare cohort's error rate rises
    (0.8% -> ``error_rate``) where there is no concurrent control any more."""
    sc = _base("post_rollout_regression", seed, duration_s, rate_per_s, 0.05)
    sc.weights = [
        WeightStep(0.0, 0.05),
        WeightStep(450.0, 0.1),
        WeightStep(900.0, 0.25),
        WeightStep(1350.0, 0.5),
    ]
    sc.promote_at_s = promote_at_s
    sc.injections.append(
        Injection(
            "error_rate",
            error_rate,
            start_s,
            cohort={"input_class": input_class},
            arms=["canary"],
            label=f"post-rollout {input_class} error -> {error_rate:.0%}",
        )
    )
    return sc


@_register
def shadow_aa(
    seed: int = 0, duration_s: float = 1800.0, rate_per_s: float = 40.0, canary_weight: float = 0.1
) -> Scenario:
    """A/A with shadow copies of control requests (5% of copies missing)."""
    sc = _base("shadow_aa", seed, duration_s, rate_per_s, canary_weight)
    sc.shadow = Shadow()
    return sc


@_register
def srm_drop(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 0.0,
    drop: float = 0.1,
) -> Scenario:
    """Sample ratio mismatch: ``drop`` of the canary's events never reach the log."""
    change = Injection(
        "drop_events", drop, start_s, arms=["canary"], label=f"canary loses {drop:.0%} of events"
    )
    return _base("srm_drop", seed, duration_s, rate_per_s, canary_weight, change)


@_register
def diurnal_bursty(
    seed: int = 0, duration_s: float = 7200.0, rate_per_s: float = 40.0, canary_weight: float = 0.1
) -> Scenario:
    """A/A under time-varying traffic: a compressed day (1 h period, +-60%) and two bursts."""
    sc = _base("diurnal_bursty", seed, duration_s, rate_per_s, canary_weight)
    sc.arrivals.diurnal_amplitude = 0.6
    sc.arrivals.diurnal_period_s = 3600.0
    sc.arrivals.bursts = [Burst(1500.0, 120.0, 3.0), Burst(5000.0, 300.0, 2.0)]
    return sc


@_register
def text_register(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 600.0,
    input_class: str = "chat",
    kind: str = "templates",
    share: float = 1.0,
    pool_size: int = 0,
    register: str = "hedging",
) -> Scenario:
    """Response texts on; the canary's answers in one input_class turn hedging at ``start_s`` while
    every scalar metric stays flat (for the embedding-drift issue). ``kind="sentences"`` gives natural
    answers (hedging = an opener and a closer around the usual content); ``share`` of the marked answers
    change; ``pool_size`` draws answers from fixed pools (see ``rollguard.sim.text``)."""
    sc = _base("text_register", seed, duration_s, rate_per_s, canary_weight)
    sc.response_text = TextSpec(kind=kind, params={"pool_size": pool_size} if pool_size else {})
    params: dict[str, Any] = {"register": register}
    if share != 1.0:
        params["share"] = share
    sc.injections.append(
        Injection(
            "text",
            1.0,
            start_s,
            cohort={"input_class": input_class},
            params=params,
            label=f"{input_class} answers {register}",
        )
    )
    return sc


@_register
def text_aa(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    kind: str = "sentences",
    pool_size: int = 0,
) -> Scenario:
    """A/A with response texts: the paired null of ``text_register`` and ``text_topic`` (same seed)."""
    sc = _base("text_aa", seed, duration_s, rate_per_s, canary_weight)
    sc.response_text = TextSpec(kind=kind, params={"pool_size": pool_size} if pool_size else {})
    return sc


@_register
def text_topic(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 600.0,
    input_class: str = "coding",
    topic: str = "chat",
    share: float = 0.3,
    pool_size: int = 0,
) -> Scenario:
    """Off-topic drift: from ``start_s`` a ``share`` of the canary's ``input_class`` answers talk about
    ``topic`` instead (a new cluster of answers, no scalar metric moves)."""
    sc = _base("text_topic", seed, duration_s, rate_per_s, canary_weight)
    sc.response_text = TextSpec(kind="sentences", params={"pool_size": pool_size} if pool_size else {})
    sc.injections.append(
        Injection(
            "text",
            1.0,
            start_s,
            cohort={"input_class": input_class},
            params={"topic": topic, "share": share},
            label=f"{share:.0%} of {input_class} answers off-topic ({topic})",
        )
    )
    return sc


@_register
def shadow_text(
    seed: int = 0,
    duration_s: float = 1800.0,
    rate_per_s: float = 40.0,
    canary_weight: float = 0.1,
    start_s: float = 600.0,
    input_class: str = "coding",
    register: str = "terse",
    latency: float = 1.0,
    pool_size: int = 0,
    missing_share: float = 0.05,
) -> Scenario:
    """Shadow copies of control requests with texts; from ``start_s`` the shadow's ``input_class`` answers
    change register (and its latency is multiplied by ``latency``): for the paired shadow tests."""
    sc = _base("shadow_text", seed, duration_s, rate_per_s, canary_weight)
    sc.shadow = Shadow(missing_share=missing_share)
    sc.response_text = TextSpec(kind="sentences", params={"pool_size": pool_size} if pool_size else {})
    sc.injections.append(
        Injection(
            "text",
            1.0,
            start_s,
            cohort={"input_class": input_class},
            arms=["shadow"],
            params={"register": register},
            label=f"shadow {input_class} {register}",
        )
    )
    if latency != 1.0:
        sc.injections.append(
            Injection(
                "latency",
                latency,
                start_s,
                cohort={"input_class": input_class},
                arms=["shadow"],
                label=f"shadow {input_class} latency x{latency}",
            )
        )
    return sc
