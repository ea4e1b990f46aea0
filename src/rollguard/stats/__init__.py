"""Pure statistics for rollguard: bounded, serialisable, vectorised, anytime-valid.

numpy + stdlib only; no I/O. Every stateful estimator has ``update``/``update_many`` (numpy arrays,
no Python loop per value), ``to_state() -> dict`` (JSON-compatible: ints, finite floats, lists, None)
and ``from_state(dict)``, bounded memory whatever the traffic, and deterministic results.

API (what the engine codes against)
-----------------------------------
Estimators (:mod:`.moments`, :mod:`.sketch`)

- ``Moments()``: ``update(x)``, ``update_many(arr)``, ``merge(other)``, ``Moments.of(arr)``;
  ``n``, ``mean``, ``m2``, ``variance`` (ddof=1, 0.0 if n<2), ``std``, ``sem2`` (= variance/n).
- ``LogHistogram(rel_accuracy=0.02, min_value=1e-3, max_value=1e7)`` for values >= 0:
  ``update(x)``, ``update_many(arr)``, ``merge(other)``; ``count``, ``quantile(q)`` (DDSketch estimate);
  conservative counts ``count_le/count_lt/count_ge/count_gt(x)`` = values *certainly* on that side
  (so ``count - count_gt(x)`` is an upper bound on ``#{X <= x}``); ``value_bounds_at_rank(k) -> (lo, hi)``
  brackets the k-th smallest value (1-based); ``vmin``/``vmax`` exact extremes.

Canary vs control (:mod:`.confseq`, :mod:`.quantile_cs`)

- ``difference_cs(mean_t, var_t, n_t, mean_c, var_c, n_c, alpha, tau2, *, robust=True,
  tau2_factors=(1.0,)) -> (lo, hi)``:
  (1-α) confidence sequence for ``μ_t - μ_c`` (normal mixture); ``(-inf, inf)`` while an arm is empty.
  ``var_*`` are per-observation variances; ``robust`` floors each arm's at the other's (keep it on);
  ``tau2_factors``: a ladder of mixing variances, each CS at α/K, intersected (fast on large effects).
- ``difference_cs_many(...)``: the same over numpy arrays (broadcast), e.g. every (cohort, metric).
- ``estimator_variance(var_t, n_t, var_c, n_c, robust=True)``: the ``v`` used by the CS.
- ``normal_mixture_halfwidth(v, tau2, alpha)``: its half-width at estimator variance ``v`` (arrays ok);
  ``ladder_halfwidth(v, tau2, alpha, tau2_factors)`` that of the laddered CS.
- ``mixture_log_bayes_factor(diff, v, tau2, delta0=0)``, ``mixture_p_value(diff, v, tau2, delta0=0)``:
  mSPRT e-value / p-value for ``Δ = delta0`` (keep the running min of the p-value).
- ``samples_to_decide(mean_t, var_t, n_t, mean_c, var_c, n_c, margin, alpha, tau2, *, robust=True,
  max_total=1e12)``:
  further observations (both arms, current split) until the CS excludes ``margin``; 0 or ``inf``.
- ``regularised_bernoulli_variance(successes, n)``: ``p̃(1-p̃)``, ``p̃ = (k+1)/(n+2)``: use for rates.
- ``optimal_tau2(distance, alpha)`` ≈ 0.9·distance²; ``optimal_ratio(alpha)``. **Use τ² ≈ margin²**
  on the scale of the CS: 0.005² for a +0.5 point rate margin, ``log(1.1)²`` for log-means with a
  10 % margin, ``((λ-1)·μ_c,ref)²`` for the contrast ``μ_t - λ μ_c``.
- ``quantile_cs(hist, p, alpha, *, n_opt=2000) -> (lo, hi)``: (1-α) CS for the p-quantile of a
  ``LogHistogram`` (exact, Beta-binomial mixture; ``lo = 0.0`` / ``hi = inf`` while undetermined);
  ``quantile_rank_cs(n, p, alpha, *, n_opt=2000) -> (k_lo, k_hi)`` the underlying rank interval.

Vectors (:mod:`.vector_moments`, :mod:`.mahalanobis_cs`): semantic drift of embeddings

- ``VectorMoments(dim)``: weighted (``1/p`` of a sampling probability) mean vector and covariance;
  ``update_many(x, weights)``, ``merge``; ``n``, ``w``, ``w2``, ``n_eff`` (Kish), ``mean``, ``covariance``.
- ``ball_radius(v, tau2, alpha, k)``: radius of the k-dimensional normal-mixture confidence ball of a
  whitened mean difference (``v = 1/n_t + 1/n_c``); ``distance_cs(distance, v, tau2, alpha, k)`` the CS
  of the Mahalanobis distance; ``log_e_value_beyond(distance, margin, v, tau2, k)`` the e-value against
  "distance ≤ margin"; ``optimal_ball_tau2(distance, alpha, k)``; ``chi2_upper_bound(k, alpha)`` for a
  fixed reference sample; ``mahalanobis_norm(diff, cov)``.

Rollout health and single-stream change (:mod:`.srm`, :mod:`.cusum`)

- ``SampleRatioTest(alpha=0.01)``: ``update(is_canary, weight)``, ``update_many(is_canary, weight)``
  with ``weight`` = the unit's canary probability π (scalar or array, may change over time; π in {0, 1}
  skipped); ``p_value`` (always valid, running min), ``rejected``, ``log_e_value``, ``n``,
  ``observed_canary``/``expected_canary``/``observed_control``/``expected_control``, ``observed_ratio``.
- ``BernoulliCusum(p0, p1, horizon, alpha)``: ``update(successes, n)``, ``update_many(ks, ns)``;
  ``GaussianMeanCusum(mu0, mu1, sigma, horizon, alpha)``: ``update(batch_mean, batch_n)``,
  ``update_many(means, ns)``. Both: ``statistic``, ``threshold = log(horizon/α)``, ``alarm`` (sticky),
  ``first_alarm`` (update index), ``updates``, ``within_horizon``, ``reset()``.
  ``P(false alarm within horizon updates) ≤ α`` for any null ``p ≤ p0`` / ``μ ≤ mu0``: set ``p0``/``mu0``
  at reference + margin.

Rules the engine must respect
-----------------------------
- Multiplicity: give each (cohort, metric) test ``alpha = α_rollout / K`` (Bonferroni; anytime-valid
  CSs and p-values combine this way at all times), and SRM its own share.
- Verdict from the CS ``(lo, hi)`` of ``canary - control`` with a "worse" margin ``m > 0`` (flip signs
  for higher-is-better metrics): regressed when ``lo > m``, non-inferior when ``hi < m``, otherwise
  insufficient evidence with :func:`samples_to_decide`. Relative margins: CS of ``μ_t - λ μ_c``
  (pass ``mean_c·λ``, ``var_c·λ²``). Tails: with per-arm quantile CSs at ``alpha/2`` each, regressed
  when ``lo_t > λ·hi_c``, non-inferior when ``hi_t < λ·lo_c`` (``λ = 1.1`` for "+10 % p95").
- The normal-mixture CS uses plug-in variances, so it is asymptotic: do not read a verdict before
  each arm has ``n >= 30`` values; for rates use :func:`regularised_bernoulli_variance`; keep
  ``robust=True``. The coverage simulations in ``tests/stats`` run under exactly these rules. For
  heavy-tailed metrics (latency, cost, tokens) prefer means of ``log(x)`` (relative margin
  ``log(1.1)``) or the quantile CS. The quantile CS, SRM and CUSUM are exact (non-asymptotic).
- Observations must be exchangeable within an arm (i.i.d.-ish); feed SRM one record per randomisation
  unit at its first assignment (:mod:`.unit_filter`: ``UnitFilter(bits)``, a fixed-size Bloom filter,
  ``add_if_new(unit)`` / ``add_many(units)`` say which units are new, unbiased between arms).
  Histograms must share parameters to be merged.
"""

from rollguard.stats.confseq import (
    difference_cs,
    difference_cs_many,
    estimator_variance,
    ladder_halfwidth,
    mixture_log_bayes_factor,
    mixture_p_value,
    normal_mixture_halfwidth,
    optimal_ratio,
    optimal_tau2,
    regularised_bernoulli_variance,
    samples_to_decide,
)
from rollguard.stats.cusum import BernoulliCusum, GaussianMeanCusum
from rollguard.stats.mahalanobis_cs import (
    ball_radius,
    chi2_upper_bound,
    distance_cs,
    log_e_value_beyond,
    mahalanobis_norm,
    optimal_ball_tau2,
)
from rollguard.stats.moments import Moments
from rollguard.stats.quantile_cs import quantile_cs, quantile_rank_cs
from rollguard.stats.sketch import LogHistogram
from rollguard.stats.srm import SampleRatioTest
from rollguard.stats.vector_moments import VectorMoments

__all__ = [
    "BernoulliCusum",
    "GaussianMeanCusum",
    "LogHistogram",
    "Moments",
    "SampleRatioTest",
    "VectorMoments",
    "ball_radius",
    "chi2_upper_bound",
    "difference_cs",
    "difference_cs_many",
    "distance_cs",
    "estimator_variance",
    "ladder_halfwidth",
    "log_e_value_beyond",
    "mahalanobis_norm",
    "mixture_log_bayes_factor",
    "mixture_p_value",
    "normal_mixture_halfwidth",
    "optimal_ball_tau2",
    "optimal_ratio",
    "optimal_tau2",
    "quantile_cs",
    "quantile_rank_cs",
    "regularised_bernoulli_variance",
    "samples_to_decide",
]
