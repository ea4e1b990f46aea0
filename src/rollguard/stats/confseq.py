r"""Anytime-valid confidence sequences for a difference of means (normal mixture, Robbins 1970).

The problem
-----------
Canary (``t``) and control (``c``) means are estimated from ``n_t`` and ``n_c`` observations; the
estimator ``D = x̄_t - x̄_c`` of ``Δ = μ_t - μ_c`` has variance ``v = σ_t²/n_t + σ_c²/n_c``. A classical
interval ``D ± z v^½`` re-checked after every event misses Δ at *some* time with probability → 1. A
confidence sequence (CS) is a sequence of intervals ``C_n`` with ``P(∃n: Δ ∉ C_n) ≤ α``: it may be read
after every event, and a decision taken at any data-dependent time keeps its guarantee.

The normal mixture
------------------
Let ``I = 1/v`` (the information) and ``S = I (D - Δ)``. While both arm counts only grow,
``Cov(D_m, D_n) = v_n`` for ``m ≤ n`` (nested samples), so ``Cov(S_m, S_n) = I_m``: for Gaussian data ``S``
is a Brownian motion run on the information clock, and ``exp(λ S - λ² I / 2)`` is a martingale for
every ``λ``. Mixing ``λ`` over ``N(0, τ²)`` gives Robbins' mixture martingale (equivalently the mSPRT
likelihood ratio of Johari et al., with ``τ²`` the prior variance of the effect Δ)::

    Λ = sqrt(v / (v + τ²)) · exp( τ² (D - Δ)² / (2 v (v + τ²)) ).

By Ville's inequality ``P(∃n: Λ_n ≥ 1/α) ≤ α``. Solving ``Λ < 1/α`` for Δ gives the CS ``D ± h`` with::

    h(v) = sqrt( 2 v (v + τ²) / τ² · ( log(1/α) + ½ log((v + τ²) / v) ) ).

``h`` increases with ``v`` (for α < e^-½), so the interval only shrinks as data arrive (up to the noise
in the plug-in variances). With estimated variances (``s_t²``, ``s_c²``) and non-Gaussian data the CS is
an *asymptotic* CS in the sense of Waudby-Smith et al. (2024): valid as the counts grow. Small-sample
safety comes from two rules, both checked by the coverage simulations in ``tests/stats`` (normal,
Bernoulli(0.02), lognormal; 50/50 and 10/90 splits; α from 0.05 to 0.001):

- rates use :func:`regularised_bernoulli_variance` (an arm with no event yet has variance ≈ 1/n, not 0);
- ``robust=True`` (default) floors each arm's variance at the other arm's (:func:`estimator_variance`),
  because the small arm's variance is underestimated exactly when its mean is (no rare event or no
  long latency seen yet); without it a 10 % canary on Bernoulli(0.02) data misses 1.7 % of the time
  at α = 0.01 and a lognormal(σ=1) one 5.6 %.

Read verdicts only once each arm has ≥ 30 observations (continuous metrics).

Choosing τ²
-----------
For a fixed ``v``, ``h`` is minimised at ``τ² = r* v`` with ``r* = 2 log(1/α) + log(1 + r*)``
(``r* ≈ 11.76`` at α = 0.01, ``≈ 8.21`` at α = 0.05, ``≈ 16.7`` at α = 0.001). Hence, to resolve a
distance ``d`` between the true effect and a margin as early as possible, the best choice is::

    τ² = d² · r* / (1 + r*)  ≈ 0.92 d² at α = 0.01 (0.89 at 0.05, 0.94 at 0.001)   (:func:`optimal_tau2`)

and the decision then comes when ``v = d² / (1 + r*)``: at α = 0.01 about 1.9× the sample of a
fixed-n z-test at the same α (the price of looking after every event). For a non-inferiority margin
``m`` the interesting alternatives are "no change" and "a regression of about 2m", both at distance
``d = m`` from the margin, so **τ² ≈ margin²** is near-optimal. The optimum is flat and lopsided
(α = 0.01, checked in ``tests/stats``): a τ² 4× too large costs 5 % more samples, 4× too small 9 %;
16× too large 15 %, 16× too small 49 %. When unsure, err on the large side. ``τ²`` is on the scale of
the *difference* (for rates: τ² = 0.005² for a 0.5 percentage-point margin).

A ladder of mixing variances
----------------------------
One τ² is near-optimal for effects about one margin from it and slow for much larger ones: at
τ² = margin² the interval is about ``sqrt(2 v² / τ² · log(1/α))`` wide while ``v ≫ τ²``, so a canary
whose error rate went from 1 % to 37 % in a small cohort (``v`` ≈ 0.0035, τ = 0.5 pp, α = 1e-5) has an
interval more than ±3 wide (on a difference of rates) and is decided only after thousands of requests.
The intersection of K confidence sequences, each at ``α/K``, is a (1-α) CS (a union bound over the K
events "misses Δ at some time"), and all K are centred at ``D``, so the intersection is ``D ± min_k h_k``.
With ``tau2_factors`` = (1, 10², 10⁴) the test keeps near-optimal power at the margin (the threshold
grows from log(1/α) to log(K/α): +10 % at α = 1e-5) and decides effects 10 and 100 margins large about
as early as a CS tuned for them would. (Mixing over τ² with a prior, Howard et al. 2021 §3.4, is the
smooth version of the same idea; the finite intersection keeps the closed form.)

Relative margins
----------------
"Canary mean worse than control by more than 10 %" is the linear contrast ``μ_t - λ μ_c > 0`` with
``λ = 1.1``; its CS is this one with the control arm scaled: pass ``mean_c·λ`` and ``var_c·λ²``.

References
----------
- Robbins, H. (1970). Statistical methods related to the law of the iterated logarithm.
  *Ann. Math. Statist.* 41(5), 1397-1409.
- Howard, S. R., Ramdas, A., McAuliffe, J., Sekhon, J. (2021). Time-uniform, nonparametric,
  nonasymptotic confidence sequences. *Ann. Statist.* 49(2), 1055-1080 (normal-mixture boundaries).
- Johari, R., Koomen, P., Pekelis, L., Walsh, D. (2022). Always valid inference: continuous monitoring
  of A/B tests. *Oper. Res.* 70(3), 1806-1821 (mSPRT). arXiv:1512.04922.
- Waudby-Smith, I., Arbour, D., Sinha, R., Kennedy, E. H., Ramdas, A. (2024). Time-uniform central
  limit theory and asymptotic confidence sequences. *Ann. Statist.* 52(6), 2613-2640. arXiv:2103.06476.
- Ville, J. (1939). *Étude critique de la notion de collectif*. Gauthier-Villars.

>>> lo, hi = difference_cs(0.030, 0.029, 5000, 0.020, 0.0196, 45000, alpha=0.01, tau2=0.005**2)
>>> round(lo, 5), round(hi, 5)   # v = 0.029 (1/5000 + 1/45000) (robust floor), h = 0.00935
(0.00065, 0.01935)
>>> round(normal_mixture_halfwidth(1.0, 1.0, 0.05), 6)   # sqrt(4 (log 20 + ½ log 2))
3.656395
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "difference_cs",
    "difference_cs_many",
    "estimator_variance",
    "ladder_halfwidth",
    "mixture_log_bayes_factor",
    "mixture_p_value",
    "normal_mixture_halfwidth",
    "optimal_ratio",
    "optimal_tau2",
    "regularised_bernoulli_variance",
    "samples_to_decide",
]

FloatArray = npt.NDArray[np.float64]


def _check(alpha: float, tau2: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if not 0.0 < tau2 < math.inf:
        raise ValueError("tau2 must be positive and finite")


@overload
def normal_mixture_halfwidth(v: float, tau2: float, alpha: float) -> float: ...
@overload
def normal_mixture_halfwidth(v: FloatArray, tau2: float, alpha: float) -> FloatArray: ...
def normal_mixture_halfwidth(v: float | FloatArray, tau2: float, alpha: float) -> float | FloatArray:
    """Half-width of the two-sided normal-mixture CS at estimator variance ``v``.

    ``sqrt(2 v (v+τ²)/τ² · (log(1/α) + ½ log((v+τ²)/v)))``; 0 at ``v = 0``, ``inf`` at ``v = inf``.
    Works elementwise on numpy arrays (used by the vectorised coverage simulations).

    >>> round(normal_mixture_halfwidth(0.01, 0.04, 0.01), 6)   # sqrt(0.025 (log 100 + ½ log 5))
    0.36776
    """
    _check(alpha, tau2)
    if np.ndim(v) == 0:
        return _halfwidth(float(v), tau2, math.log(1.0 / alpha))
    va = np.asarray(v, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h2 = 2.0 * va * (1.0 + va / tau2) * (math.log(1.0 / alpha) + 0.5 * np.log1p(tau2 / va))
    h: FloatArray = np.where(va > 0.0, np.sqrt(h2), 0.0)
    return h


def ladder_halfwidth(v: float, tau2: float, alpha: float, tau2_factors: Sequence[float] = (1.0,)) -> float:
    """Half-width of the intersection of the normal-mixture CSs at mixing variances ``τ²·f`` for each
    ``f`` in ``tau2_factors``, each at ``α/K`` (see "A ladder of mixing variances"); one factor of 1 is
    :func:`normal_mixture_halfwidth`.

    >>> round(ladder_halfwidth(0.0035, 0.005**2, 1e-5), 2)   # one τ² at the margin: ±3.4
    3.37
    >>> round(ladder_halfwidth(0.0035, 0.005**2, 1e-5, (1.0, 1e2, 1e4)), 2)   # the ladder: ±0.32
    0.32
    >>> ladder = ladder_halfwidth(1e-6, 0.005**2, 1e-5, (1.0, 1e2, 1e4))   # at the margin's own scale:
    >>> round(ladder / ladder_halfwidth(1e-6, 0.005**2, 1e-5), 3)   # 4 % wider than the single τ²
    1.041
    """
    _check(alpha, tau2)
    return _ladder(v, tau2, math.log(len(tau2_factors) / alpha), tau2_factors)


def _ladder(v: float, tau2: float, log_k_over_alpha: float, tau2_factors: Sequence[float]) -> float:
    return min(_halfwidth(v, tau2 * f, log_k_over_alpha) for f in tau2_factors)


def _halfwidth(v: float, tau2: float, log_inv_alpha: float) -> float:
    if v <= 0.0:
        return 0.0
    if v == math.inf:
        return math.inf
    return math.sqrt(2.0 * v * (1.0 + v / tau2) * (log_inv_alpha + 0.5 * math.log1p(tau2 / v)))


def estimator_variance(var_t: float, n_t: float, var_c: float, n_c: float, robust: bool = True) -> float:
    """Variance ``v`` of ``x̄_t - x̄_c``: ``var_t/n_t + var_c/n_c``, or with ``robust`` (the default)
    ``max(var_t, var_c) · (1/n_t + 1/n_c)``. ``inf`` when an arm is empty.

    Why the floor: early on, the small arm's plug-in variance is often underestimated exactly when its
    mean is (a 10 % canary that has not yet seen its first rare error, or none of the long latencies of
    a skewed metric), and the asymptotic CS then undercovers. Flooring each arm's variance at the
    other's removes this failure (``tests/stats``: Bernoulli(0.02) at a 10/90 split, miscoverage 1.7 %
    → 0 at α = 0.01; lognormal(σ=1) 5.6 % → 0). It costs nothing when the arms have equal variances
    (the A/A case, where false alarms are decided) and is conservative otherwise.

    >>> round(estimator_variance(0.02, 100, 0.01, 900), 12)   # 0.02/100 + 0.02/900
    0.000222222222
    >>> round(estimator_variance(0.02, 100, 0.01, 900, robust=False), 12)   # 0.02/100 + 0.01/900
    0.000211111111
    """
    if n_t <= 0 or n_c <= 0:
        return math.inf
    if robust:
        m = max(var_t, var_c)
        return m / n_t + m / n_c
    return var_t / n_t + var_c / n_c


def mixture_log_bayes_factor(diff: float, v: float, tau2: float, delta0: float = 0.0) -> float:
    """``log Λ`` of the normal mixture for H0: ``Δ = delta0`` (the mSPRT statistic of Johari et al.).

    ``½ log(v/(v+τ²)) + τ² (diff - delta0)² / (2 v (v+τ²))``; ``Λ`` is an e-value at any stopping time.
    """
    if not 0.0 < tau2 < math.inf:
        raise ValueError("tau2 must be positive and finite")
    if v == math.inf:
        return 0.0
    if v <= 0.0:
        return math.inf if diff != delta0 else -math.inf
    d = diff - delta0
    return 0.5 * math.log(v / (v + tau2)) + tau2 * d * d / (2.0 * v * (v + tau2))


def mixture_p_value(diff: float, v: float, tau2: float, delta0: float = 0.0) -> float:
    """``min(1, 1/Λ)`` for H0: ``Δ = delta0``.

    ``P(∃n: p_n ≤ α) ≤ α`` under H0, so it may be read after every event; the usual *always-valid*
    p-value is its running minimum ``p̄_n = min(p̄_{n-1}, p_n)``, which the caller keeps (one float).
    ``p ≤ α`` exactly when ``delta0`` lies outside :func:`difference_cs` at level α.

    >>> round(mixture_p_value(0.0, 1.0, 1.0), 6)   # no effect observed: 1/Λ = sqrt(2) > 1
    1.0
    >>> round(mixture_p_value(3.0, 1.0, 1.0), 6)   # exp(-(½ log ½ + 9/4))
    0.149057
    """
    return min(1.0, math.exp(-mixture_log_bayes_factor(diff, v, tau2, delta0)))


def difference_cs(
    mean_t: float,
    var_t: float,
    n_t: int,
    mean_c: float,
    var_c: float,
    n_c: int,
    alpha: float,
    tau2: float,
    *,
    robust: bool = True,
    tau2_factors: Sequence[float] = (1.0,),
) -> tuple[float, float]:
    """Two-sided (1-α) confidence sequence for ``μ_t - μ_c`` from per-arm means and variances.

    ``var_t``/``var_c`` are per-observation variances (``Moments.variance``, or
    :func:`regularised_bernoulli_variance` for rates); ``robust`` floors each at the other's (see
    :func:`estimator_variance`); ``tau2_factors``: a ladder of mixing variances (:func:`ladder_halfwidth`).
    ``(-inf, inf)`` while an arm is empty.
    """
    _check(alpha, tau2)
    v = estimator_variance(var_t, n_t, var_c, n_c, robust)
    if v == math.inf:
        return -math.inf, math.inf
    d = mean_t - mean_c
    h = _ladder(v, tau2, math.log(len(tau2_factors) / alpha), tau2_factors)
    return d - h, d + h


def difference_cs_many(
    mean_t: npt.ArrayLike,
    var_t: npt.ArrayLike,
    n_t: npt.ArrayLike,
    mean_c: npt.ArrayLike,
    var_c: npt.ArrayLike,
    n_c: npt.ArrayLike,
    alpha: float | npt.ArrayLike,
    tau2: npt.ArrayLike,
    *,
    robust: bool = True,
    tau2_factors: Sequence[float] = (1.0,),
) -> tuple[FloatArray, FloatArray]:
    """:func:`difference_cs` elementwise over arrays (broadcast), e.g. all (cohort, metric) pairs at once;
    ``alpha`` may differ per element too (cohorts with different shares of the budget).

    >>> lo, hi = difference_cs_many([0.0, 1.0], [1.0, 1.0], [100, 0], [0.0, 0.0], [1.0, 1.0], [100, 5],
    ...                             0.05, 0.01)
    >>> lo.round(4).tolist(), hi.round(4).tolist()   # h = sqrt(0.12 (log 20 + ½ log 1.5))
    ([-0.6195, -inf], [0.6195, inf])
    """
    a = np.asarray(alpha, dtype=np.float64)
    if not ((a > 0.0) & (a < 1.0)).all():
        raise ValueError("alpha must be in (0, 1)")
    t2 = np.asarray(tau2, dtype=np.float64)
    if not (t2 > 0.0).all() or not np.isfinite(t2).all():
        raise ValueError("tau2 must be positive and finite")
    nt = np.asarray(n_t, dtype=np.float64)
    nc = np.asarray(n_c, dtype=np.float64)
    vt = np.asarray(var_t, dtype=np.float64)
    vc = np.asarray(var_c, dtype=np.float64)
    if robust:
        vt = vc = np.maximum(vt, vc)
    ok = (nt > 0) & (nc > 0)
    factors = tuple(tau2_factors)
    log_k_over_a = np.log(len(factors) / a)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(ok, vt / np.where(ok, nt, 1.0) + vc / np.where(ok, nc, 1.0), np.inf)
        each = [2.0 * v * (1.0 + v / (t2 * f)) * (log_k_over_a + 0.5 * np.log1p(t2 * f / v)) for f in factors]
        h2 = np.min(each, axis=0)
    h = np.where(v > 0.0, np.sqrt(h2), 0.0)
    h = np.where(np.isinf(v), np.inf, h)
    d = np.asarray(mean_t, dtype=np.float64) - np.asarray(mean_c, dtype=np.float64)
    d = np.where(ok, d, 0.0)
    lo: FloatArray = d - h
    hi: FloatArray = d + h
    return lo, hi


@overload
def regularised_bernoulli_variance(successes: float, n: float) -> float: ...
@overload
def regularised_bernoulli_variance(successes: FloatArray, n: FloatArray | float) -> FloatArray: ...
def regularised_bernoulli_variance(
    successes: float | FloatArray, n: float | FloatArray
) -> float | FloatArray:
    """Laplace-smoothed Bernoulli variance ``p̃ (1 - p̃)`` with ``p̃ = (k + 1) / (n + 2)``.

    An arm with 0 errors out of ``n`` gets variance ≈ ``1/n`` instead of 0, so its CS does not collapse
    before the first rare event (use the raw ``k/n`` for the point estimate). Vectorised on arrays.

    >>> round(regularised_bernoulli_variance(0, 8), 12)   # p̃ = 1/10
    0.09
    >>> round(regularised_bernoulli_variance(20, 1000), 6)   # p̃ = 21/1002
    0.020519
    """
    k = np.asarray(successes, dtype=np.float64)
    p = (k + 1.0) / (np.asarray(n, dtype=np.float64) + 2.0)
    out = p * (1.0 - p)
    if out.ndim == 0:
        return float(out)
    return out


def optimal_ratio(alpha: float) -> float:
    """``r*`` solving ``r = 2 log(1/α) + log(1 + r)``: the ``τ²/v`` at which ``h(v)`` is smallest.

    >>> round(optimal_ratio(0.01), 3), round(optimal_ratio(0.05), 3)
    (11.756, 8.212)
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    r = 2.0 * math.log(1.0 / alpha) + 1.0
    for _ in range(100):  # contraction with factor 1/(1+r) < 1
        r_new = 2.0 * math.log(1.0 / alpha) + math.log1p(r)
        if abs(r_new - r) < 1e-14 * r_new:
            return r_new
        r = r_new
    return r


def optimal_tau2(distance: float, alpha: float) -> float:
    """Mixing variance that resolves ``distance`` (|effect - margin|) with the fewest samples.

    ``distance² · r*/(1 + r*)``, ≈ 0.92 distance² at α = 0.01; use the margin as ``distance`` for a
    non-inferiority test (see the module docstring).

    >>> round(optimal_tau2(0.005, 0.01) / 0.005**2, 4)
    0.9216
    """
    if not distance > 0.0:
        raise ValueError("distance must be positive")
    r = optimal_ratio(alpha)
    return distance * distance * r / (1.0 + r)


def _variance_for_halfwidth(
    target: float, tau2: float, alpha: float, v_hi: float, tau2_factors: Sequence[float] = (1.0,)
) -> float:
    """Largest ``v <= v_hi`` with ``h(v) <= target`` (bisection on log v; ``h`` is increasing, and so is
    the smallest of several)."""
    lo_log = math.log(v_hi) - 200.0  # h(v_hi e^-200) is ~1e-43 h(v_hi): always below any target used
    hi_log = math.log(v_hi)
    log_k_over_alpha = math.log(len(tau2_factors) / alpha)
    for _ in range(200):
        mid = 0.5 * (lo_log + hi_log)
        if _ladder(math.exp(mid), tau2, log_k_over_alpha, tau2_factors) <= target:
            lo_log = mid
        else:
            hi_log = mid
        if hi_log - lo_log < 1e-13:
            break
    return math.exp(lo_log)


def samples_to_decide(
    mean_t: float,
    var_t: float,
    n_t: int,
    mean_c: float,
    var_c: float,
    n_c: int,
    margin: float,
    alpha: float,
    tau2: float,
    *,
    robust: bool = True,
    max_total: float = 1e12,
    tau2_factors: Sequence[float] = (1.0,),
) -> float:
    """Further observations (both arms together, at the current split) until the CS excludes ``margin``.

    Projects the current estimate ``D`` and per-arm variances forward: at total ``N`` the estimator
    variance is ``v · (n_t + n_c) / N``, and the CS decides once ``h < |D - margin|``. Returns 0 when it
    already does, ``inf`` when ``D`` sits on the margin, an arm is empty, or more than ``max_total``
    observations in all would be needed. An *estimate* for "insufficient evidence" messages: the
    estimate itself moves as data arrive.

    >>> samples_to_decide(0.03, 0.03, 1000, 0.02, 0.02, 9000, 0.005, 0.01, 0.005**2)
    160126.0
    >>> samples_to_decide(0.025, 0.03, 1000, 0.02, 0.02, 9000, 0.005, 0.01, 0.005**2)
    inf
    """
    _check(alpha, tau2)
    if n_t <= 0 or n_c <= 0:
        return math.inf
    d = abs((mean_t - mean_c) - margin)
    if not d > 0.0 or not math.isfinite(d):
        return math.inf
    v = estimator_variance(var_t, n_t, var_c, n_c, robust)
    if ladder_halfwidth(v, tau2, alpha, tau2_factors) < d:
        return 0.0
    n = float(n_t + n_c)
    v_star = _variance_for_halfwidth(d, tau2, alpha, v, tau2_factors)
    total = n * v / v_star
    if total > max_total:
        return math.inf
    return float(max(1, math.ceil(total - n)))
