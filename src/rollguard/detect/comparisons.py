"""Canary-vs-control decisions with a margin, read from anytime-valid confidence sequences.

Every comparison is cast as a *bad-direction contrast* D that is positive exactly when the canary is
worse than control by more than the margin:

    D = s·μ_canary − s·(1 + s·r)·μ_control − m

with s = +1 when higher is worse (−1 when higher is better), r the relative margin and m the absolute
one. A confidence sequence for D that holds at every time simultaneously (so it may be read after
every batch) gives three states: wholly above 0 → **regressed**; wholly below 0 → **non-inferior**;
straddling 0 → **insufficient evidence**, with an estimate of how much more traffic would decide.
Because the contrast is linear in the two arm means, a relative margin needs no plug-in of the
control's mean into the threshold; its variance is σ²_t/n_t + (1 + s·r)²·σ²_c/n_c (each arm floored at
the other's, see :func:`rollguard.stats.estimator_variance`).

The mixing variance τ² of the sequence is "one margin" squared (:func:`contrast_scale`), laddered by
:data:`TAU2_LADDER`: near-optimal for effects about one margin from the margin, and still quick for a
regression ten or a hundred margins large (an error rate from 1 % to 30 % in a small cohort), which a
single τ² at the margin would take thousands of requests to call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from rollguard.domain.metrics import MetricSpec
from rollguard.domain.verdicts import Evidence, VerdictState
from rollguard.stats import (
    LogHistogram,
    difference_cs,
    estimator_variance,
    mixture_log_bayes_factor,
    quantile_cs,
    samples_to_decide,
)

TAU2_LADDER: Final = (1.0, 1e2, 1e4)
"""Factors of τ² (τ = 1, 10 and 100 margins), each sequence at α/3 (see :mod:`rollguard.stats.confseq`)."""


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """Running mean and variance of one arm (for rates: the share and its Bernoulli variance)."""

    n: int
    mean: float
    variance: float


def contrast_scale(spec: MetricSpec, control_mean: float) -> float:
    """The size of "one margin" in the contrast's units: the mixing scale τ of the test.

    τ² ≈ margin² makes the mixture boundary near-tightest when the interval is about one margin wide,
    which is exactly when a decision at the margin becomes possible.
    """
    r = spec.margin if spec.relative else 0.0
    m = 0.0 if spec.relative else spec.margin
    scale = m + r * abs(control_mean)
    return scale if scale > 0 else max(abs(control_mean), 1e-9) * 0.05


def oriented_arms(spec: MetricSpec, control: ArmSummary, canary: ArmSummary) -> tuple[ArmSummary, ArmSummary]:
    """Rewrite both arms so that D = canary' − control' − m: "worse" is positive, margins folded in.

    canary' = s·μ_t and control' = s·(1 + s·r)·μ_c (variance scaled by (1 + s·r)²).
    """
    s = 1.0 if spec.higher_is_worse else -1.0
    lam = 1.0 + s * (spec.margin if spec.relative else 0.0)
    return (
        ArmSummary(control.n, s * lam * control.mean, lam * lam * control.variance),
        ArmSummary(canary.n, s * canary.mean, canary.variance),
    )


def absolute_margin(spec: MetricSpec) -> float:
    return 0.0 if spec.relative else spec.margin


def compare_means(
    spec: MetricSpec, control: ArmSummary, canary: ArmSummary, alpha: float, tau2: float
) -> tuple[VerdictState, Evidence]:
    """Decide one mean-type metric (rates included) of canary against control.

    The interval is :func:`rollguard.stats.difference_cs` on the oriented arms (with its variance
    floor, which keeps a small canary arm from looking certain before it has seen its first rare
    error), shifted by the absolute margin.
    """
    c, t = oriented_arms(spec, control, canary)
    m = absolute_margin(spec)
    lo, hi = mean_contrast_interval(spec, control, canary, alpha, tau2)
    d_hat = t.mean - c.mean - m
    state = _state(lo, hi)
    v = estimator_variance(t.variance, t.n, c.variance, c.n)
    log_bf = max(mixture_log_bayes_factor(d_hat, v, tau2 * f) for f in TAU2_LADDER) if d_hat > 0 else 0.0
    s = 1.0 if spec.higher_is_worse else -1.0
    effect = s * (canary.mean - control.mean)
    rel = effect / abs(control.mean) if control.mean != 0 else math.inf if effect > 0 else 0.0
    more = None
    if state is VerdictState.INSUFFICIENT:
        needed = samples_to_decide(
            t.mean, t.variance, t.n, c.mean, c.variance, c.n, m, alpha, tau2, tau2_factors=TAU2_LADDER
        )
        more = needed if math.isfinite(needed) else None
    evidence = Evidence(
        n_control=control.n,
        n_canary=canary.n,
        control=control.mean,
        canary=canary.mean,
        effect=effect,
        relative_effect=rel,
        interval=(lo, hi),
        margin=spec.margin,
        margin_relative=spec.relative,
        statistic=log_bf,
        threshold=math.log(len(TAU2_LADDER) / alpha),
        alpha=alpha,
        method="mixture-sprt-cs",
        samples_to_decide=more,
    )
    return state, evidence


def mean_contrast_interval(
    spec: MetricSpec, control: ArmSummary, canary: ArmSummary, alpha: float, tau2: float
) -> tuple[float, float]:
    """The confidence sequence of the bad-direction contrast D of a mean-type metric (see the module)."""
    c, t = oriented_arms(spec, control, canary)
    m = absolute_margin(spec)
    lo, hi = difference_cs(
        t.mean, t.variance, t.n, c.mean, c.variance, c.n, alpha, tau2, tau2_factors=TAU2_LADDER
    )
    return lo - m, hi - m


def effect_interval(spec: MetricSpec, contrast: tuple[float, float], control: float) -> tuple[float, float]:
    """An interval on D as one on the oriented effect, in the margin's terms: regressed exactly when its
    lower end exceeds the margin, non-inferior when its upper end is below it.

    Absolute margins add the margin back; relative ones divide by the control's estimate (assumed
    positive, as for latencies, tokens, costs and scores) and add the relative margin. ``nan`` when a
    relative effect has no control estimate.

    >>> from rollguard.domain.metrics import BUILTIN_METRICS
    >>> latency = next(m for m in BUILTIN_METRICS if m.name == "latency_ms.mean")   # +10%, relative
    >>> [round(x, 6) for x in effect_interval(latency, (20.0, 60.0), 400.0)]   # D in ms; control 400 ms
    [0.15, 0.25]
    """
    lo, hi = contrast
    if not spec.relative:
        return lo + spec.margin, hi + spec.margin
    if not (math.isfinite(control) and control != 0.0):
        return math.nan, math.nan
    scale = abs(control)
    shift = spec.margin if control > 0 else -spec.margin
    return lo / scale + shift, hi / scale + shift


def quantile_contrast_interval(
    spec: MetricSpec, control: LogHistogram, canary: LogHistogram, alpha: float
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    """The confidence sequence of D for a tail, and the per-arm quantile sequences it is made of (each
    at α/2: the union bound makes the pair valid at α), as (contrast, canary, control) intervals."""
    assert spec.quantile is not None
    r = spec.margin if spec.relative else 0.0
    m = 0.0 if spec.relative else spec.margin
    lo_t, hi_t = quantile_cs(canary, spec.quantile, alpha / 2.0)
    lo_c, hi_c = quantile_cs(control, spec.quantile, alpha / 2.0)
    # Oriented contrast interval: canary − (1 + r)·control − m, from the two intervals.
    return (lo_t - (1.0 + r) * hi_c - m, hi_t - (1.0 + r) * lo_c - m), (lo_t, hi_t), (lo_c, hi_c)


def compare_quantiles(
    spec: MetricSpec, control: LogHistogram, canary: LogHistogram, alpha: float
) -> tuple[VerdictState, Evidence]:
    """Decide a tail (e.g. p95 latency): canary's quantile against (1 + r) times control's.

    Each arm gets an exact anytime-valid quantile confidence sequence at α/2; the union bound makes
    the pair valid at α. Regressed when the canary's lower bound exceeds (1 + r) × control's upper
    bound (+ m); non-inferior when the canary's upper bound is below (1 + r) × control's lower bound.
    """
    assert spec.quantile is not None
    r = spec.margin if spec.relative else 0.0
    m = 0.0 if spec.relative else spec.margin
    q = spec.quantile
    (lo, hi), (lo_t, hi_t), (lo_c, hi_c) = quantile_contrast_interval(spec, control, canary, alpha)
    est_t, est_c = canary.quantile(q), control.quantile(q)
    state = _state(lo, hi)
    d_hat = est_t - (1.0 + r) * est_c - m
    width = (hi - lo) / 2.0 if math.isfinite(hi - lo) else math.inf
    effect = est_t - est_c
    evidence = Evidence(
        n_control=int(control.count),
        n_canary=int(canary.count),
        control=est_c,
        canary=est_t,
        effect=effect,
        relative_effect=effect / est_c if est_c > 0 else 0.0,
        interval=(lo, hi),
        margin=spec.margin,
        margin_relative=spec.relative,
        statistic=lo,
        threshold=0.0,
        alpha=alpha,
        method="quantile-cs",
        samples_to_decide=_samples_to_decide(state, d_hat, width, int(control.count + canary.count)),
        extra={"quantile": q, "canary_interval": [lo_t, hi_t], "control_interval": [lo_c, hi_c]},
    )
    return state, evidence


def _state(lo: float, hi: float) -> VerdictState:
    if lo > 0.0:
        return VerdictState.REGRESSED
    if hi < 0.0:
        return VerdictState.NON_INFERIOR
    return VerdictState.INSUFFICIENT


def _samples_to_decide(state: VerdictState, d_hat: float, halfwidth: float, n_now: int) -> float | None:
    """More requests (both arms, at the current split) until the interval would clear zero.

    Widths shrink roughly as 1/√n (the log factor of the mixture is folded into a 20% allowance), so
    deciding needs n·(w/|D̂|)² requests in all; ``None`` when the estimate sits on the boundary.
    """
    if state is not VerdictState.INSUFFICIENT:
        return None
    if not math.isfinite(halfwidth) or abs(d_hat) < 1e-12 * max(1.0, halfwidth):
        return None
    factor = (halfwidth / abs(d_hat)) ** 2 * 1.2
    return float(math.ceil(max(0.0, factor - 1.0) * max(n_now, 1)))
