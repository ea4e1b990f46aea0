r"""Anytime-valid confidence balls for a difference of mean *vectors*: a k-dimensional normal mixture.

The problem
-----------
Embedding drift is a difference between two arms' distributions of feature vectors ``φ(x) ∈ R^k``
(for rollguard: principal components, codebook memberships and novelty scores of response
embeddings). Its size is the Mahalanobis distance between the arm means,
``Δ = ||S^{-1/2}(μ_t - μ_c)||`` with ``S`` the per-observation covariance: a unit-free, standardised
effect size (Δ = 0.3 is a shift of 0.3 standard deviations along the direction that moved). Checking a
Hotelling T² after every batch would inflate false alarms like any repeated fixed-n test.

The mixture
-----------
Whiten the estimate ``D = x̄_t - x̄_c``: ``Z = S^{-1/2} D`` has covariance ``v I`` with
``v = 1/n_t + 1/n_c`` and mean ``θ = S^{-1/2}(μ_t - μ_c)``. Each coordinate is the scalar problem of
:mod:`rollguard.stats.confseq` (a Brownian motion on the information clock), so mixing
``exp(λᵀ(Z - θ)/v - |λ|²/(2v))`` over ``λ ~ N(0, τ² I_k)`` gives the martingale::

    Λ(θ) = (v / (v + τ²))^{k/2} · exp( τ² |Z - θ|² / (2 v (v + τ²)) ),

and by Ville's inequality ``P(∃n: Λ_n(θ) ≥ 1/α) ≤ α``. Solving ``Λ(θ) < 1/α`` for θ gives a ball around
``Z`` valid at all times simultaneously, of radius::

    r(v) = sqrt( 2 v (1 + v/τ²) · ( log(1/α) + (k/2) log(1 + τ²/v) ) ),

hence the confidence sequence ``[max(0, |Z| - r), |Z| + r]`` for the distance ``|θ|``. With a margin
``m``: **regressed** when ``|Z| - r > m`` (every θ in the ball is farther than m), **non-inferior** when
``|Z| + r < m``. ``log Λ`` at the point of the margin sphere nearest to ``Z`` is an e-value against
"drift ≤ m" (:func:`log_e_value_beyond`); it crosses ``log(1/α)`` exactly when the verdict turns.

With plug-in covariances the ball is asymptotic, like the scalar CS (Waudby-Smith et al. 2024); the
A/A simulations of the embedding tests are its calibration check. Weighted samples use Kish's
effective sizes in ``v``.

Choosing τ²
-----------
At a fixed ``v`` the radius is smallest at ``τ² = ρ* v`` with ``ρ* = (2/k) log(1/α) + log(1 + ρ*)``
(:func:`optimal_ball_ratio`; k = 1 is :func:`rollguard.stats.optimal_ratio`). To resolve a distance ``d``
to the margin as early as possible, choose ``τ² = d² ρ* / (k (1 + ρ*))`` (:func:`optimal_ball_tau2`); the
decision then comes at ``v = d² / (k (1 + ρ*))``. Every extra dimension costs samples, so keep ``k``
small (tens, not hundreds).

A fixed reference sample
------------------------
Comparing a stream with an approved reference set (fixed ``n_ref``), the reference mean is not a
martingale: it gets a fixed-sample ball of radius ``sqrt(χ²_{k,1-α}/n_ref)`` (upper bound of Laurent &
Massart, :func:`chi2_upper_bound`), added to the stream's anytime radius (union bound, α split).

References
----------
- Robbins, H. (1970). Statistical methods related to the law of the iterated logarithm.
  *Ann. Math. Statist.* 41(5), 1397-1409 (normal mixtures).
- de la Peña, V. H., Lai, T. L., Shao, Q.-M. (2009). *Self-Normalized Processes*. Springer (vector
  method of mixtures).
- Howard, S. R., Ramdas, A., McAuliffe, J., Sekhon, J. (2021). Time-uniform, nonparametric,
  nonasymptotic confidence sequences. *Ann. Statist.* 49(2), 1055-1080.
- Waudby-Smith, I., Arbour, D., Sinha, R., Kennedy, E. H., Ramdas, A. (2024). Time-uniform central
  limit theory and asymptotic confidence sequences. *Ann. Statist.* 52(6), 2613-2640.
- Laurent, B., Massart, P. (2000). Adaptive estimation of a quadratic functional by model selection.
  *Ann. Statist.* 28(5), 1302-1338 (χ² tail bound).

>>> from rollguard.stats.confseq import normal_mixture_halfwidth
>>> ball_radius(0.01, 0.01, 0.05, 1) == normal_mixture_halfwidth(0.01, 0.01, 0.05)   # k = 1: the scalar CS
True
>>> lo, hi = distance_cs(1.2, 0.01, optimal_ball_tau2(0.3, 0.01, 4), 0.01, 4)
>>> round(lo, 4), round(hi, 4)
(0.7444, 1.6556)
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "ball_radius",
    "chi2_upper_bound",
    "distance_cs",
    "log_e_value_beyond",
    "mahalanobis_norm",
    "optimal_ball_ratio",
    "optimal_ball_tau2",
]

FloatArray = npt.NDArray[np.float64]


def _check(alpha: float, tau2: float, k: int) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if not 0.0 < tau2 < math.inf:
        raise ValueError("tau2 must be positive and finite")
    if k < 1:
        raise ValueError("k must be at least 1")


def ball_radius(v: float, tau2: float, alpha: float, k: int) -> float:
    """Radius of the (1-α) confidence ball around the whitened estimate at information ``1/v``.

    ``0`` at ``v = 0``, ``inf`` at ``v = inf``; grows with ``v``, so the ball only shrinks with data.

    >>> round(ball_radius(0.01, 0.04, 0.01, 3), 6)   # sqrt(0.025 (log 100 + 1.5 log 5))
    0.418907
    """
    _check(alpha, tau2, k)
    if v <= 0.0:
        return 0.0
    if v == math.inf:
        return math.inf
    return math.sqrt(2.0 * v * (1.0 + v / tau2) * (math.log(1.0 / alpha) + 0.5 * k * math.log1p(tau2 / v)))


def log_e_value_beyond(distance: float, margin: float, v: float, tau2: float, k: int) -> float:
    """``log Λ`` at the point of the sphere ``|θ| = margin`` nearest to an estimate at ``distance``.

    The smallest e-value over the null "drift ≤ margin": at least ``log(1/α)`` exactly when the lower
    end of :func:`distance_cs` exceeds ``margin``. Negative (no evidence) while ``distance <= margin``.

    >>> round(log_e_value_beyond(1.0, 0.0, 0.01, 0.04, 2), 6)   # -log 5 + 0.04/(2·0.01·0.05)
    38.390562
    """
    if not 0.0 < tau2 < math.inf:
        raise ValueError("tau2 must be positive and finite")
    if v == math.inf:
        return 0.0
    if v <= 0.0:
        return math.inf if distance > margin else -math.inf
    gap = max(distance - margin, 0.0)
    return -0.5 * k * math.log1p(tau2 / v) + tau2 * gap * gap / (2.0 * v * (v + tau2))


def distance_cs(distance: float, v: float, tau2: float, alpha: float, k: int) -> tuple[float, float]:
    """(1-α) confidence sequence ``(lo, hi)`` for the Mahalanobis distance ``|θ|``.

    ``distance`` is ``|Z|``, the whitened norm of the estimated difference; ``(0, inf)`` while ``v`` is
    infinite (an arm is empty).
    """
    r = ball_radius(v, tau2, alpha, k)
    if r == math.inf:
        return 0.0, math.inf
    return max(0.0, distance - r), distance + r


def optimal_ball_ratio(alpha: float, k: int) -> float:
    """``ρ*`` solving ``ρ = (2/k) log(1/α) + log(1 + ρ)``: the ``τ²/v`` that minimises the radius.

    >>> round(optimal_ball_ratio(0.01, 1), 3)   # = optimal_ratio(0.01)
    11.756
    >>> round(optimal_ball_ratio(0.01, 20), 3)
    1.288
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if k < 1:
        raise ValueError("k must be at least 1")
    c = 2.0 * math.log(1.0 / alpha) / k
    r = c + 1.0
    for _ in range(200):  # contraction with factor 1/(1+r) < 1
        r_new = c + math.log1p(r)
        if abs(r_new - r) < 1e-14 * max(r_new, 1e-300):
            return r_new
        r = r_new
    return r


def optimal_ball_tau2(distance: float, alpha: float, k: int) -> float:
    """Mixing variance that resolves ``distance`` (from the margin) with the fewest samples.

    ``distance² ρ* / (k (1 + ρ*))``; for ``k = 1`` this is :func:`rollguard.stats.optimal_tau2`.

    >>> round(optimal_ball_tau2(0.3, 0.01, 1) / 0.09, 4)
    0.9216
    """
    if not distance > 0.0:
        raise ValueError("distance must be positive")
    rho = optimal_ball_ratio(alpha, k)
    return distance * distance * rho / (k * (1.0 + rho))


def mahalanobis_norm(diff: npt.ArrayLike, cov: npt.ArrayLike, ridge: float = 1e-6) -> float:
    """``sqrt(diffᵀ (cov + ridge·I)⁻¹ diff)``, the norm of the whitened difference.

    ``ridge`` keeps a nearly singular covariance (a feature that barely varies) from blowing up.

    >>> mahalanobis_norm([3.0, 4.0], [[1.0, 0.0], [0.0, 4.0]], ridge=0.0)
    3.605551275463989
    """
    d = np.asarray(diff, dtype=np.float64)
    c = np.asarray(cov, dtype=np.float64) + ridge * np.eye(d.shape[0])
    try:
        x = np.linalg.solve(c, d)
    except np.linalg.LinAlgError:
        x = np.linalg.lstsq(c, d, rcond=None)[0]
    return math.sqrt(max(float(d @ x), 0.0))


def chi2_upper_bound(k: int, alpha: float) -> float:
    """An upper (1-α) quantile of χ²_k: ``k + 2 sqrt(k x) + 2x`` with ``x = log(1/α)`` (Laurent-Massart).

    >>> round(chi2_upper_bound(1, 0.05), 4)   # exact quantile 3.8415
    10.4531
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    x = math.log(1.0 / alpha)
    return k + 2.0 * math.sqrt(k * x) + 2.0 * x
