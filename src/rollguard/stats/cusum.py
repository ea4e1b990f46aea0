r"""One-sided likelihood-ratio CUSUM charts against a frozen reference, with a finite-horizon guarantee.

Used where there is no concurrent control: drift of a cohort's baseline, and the post-rollout phase
(the new version at 100 %, compared with the control's last known-good statistics frozen at promotion).

Page's CUSUM on per-update log-likelihood ratios ``ℓ_t = log p1(batch_t) / p0(batch_t)``::

    S_0 = 0,   S_t = max(0, S_{t-1} + ℓ_t) = max_{0 ≤ j ≤ t} Σ_{i=j+1..t} ℓ_i,

alarms when ``S_t ≥ h``. The batch LRs are

- Bernoulli, ``k`` events in ``n``:  ``ℓ = k log(p1/p0) + (n - k) log((1-p1)/(1-p0))``;
- Gaussian mean, batch mean ``x̄`` of ``n`` values with known σ:
  ``ℓ = n (μ1 - μ0)/σ² · (x̄ - (μ0 + μ1)/2)``.

Why ``h = log(horizon/α)``. For each start ``j`` the product ``M^(j)_t = Π_{i=j+1..t} e^{ℓ_i}`` is a
test (super)martingale under the null, so Ville's inequality gives
``P(∃t: M^(j)_t ≥ horizon/α) ≤ α/horizon``. ``S_t ≥ h`` means some ``M^(j)_t ≥ e^h``; within the first
``horizon`` updates only the starts ``j = 0 .. horizon-1`` exist, so a union bound gives
``P(false alarm within horizon updates) ≤ α``. (Past the horizon the bound grows as
``α · updates/horizon``; the average run length is also ≥ ``e^h`` by Lorden's bound.) The bound is a
union of overlapping events, so the realised rate is well below α (see ``tests/stats``).

Composite nulls and margins. For ``p1 > p0`` the Bernoulli LR has ``E_p[e^ℓ] ≤ 1`` for every
``p ≤ p0`` (it is linear in ``p`` and equals 1 at ``p0``), likewise the Gaussian LR for every
``μ ≤ μ0`` (and symmetrically for decreases). Callers therefore set the null at
**reference + margin** (``p0 = p_ref + margin``) so that changes within the margin never alarm, and the
alternative at the smallest change worth catching quickly (``p1`` a bit beyond ``p0``). The Gaussian
chart assumes σ known (frozen from the reference, as an upper bound); for heavy-tailed metrics (raw
latency) chart ``log`` values, or an exceedance rate with :class:`BernoulliCusum`.

References
----------
- Page, E. S. (1954). Continuous inspection schemes. *Biometrika* 41(1/2), 100-115.
- Lorden, G. (1971). Procedures for reacting to a change in distribution. *Ann. Math. Statist.* 42(6),
  1897-1908.
- Ville, J. (1939). *Étude critique de la notion de collectif*. Gauthier-Villars.
- Shin, J., Ramdas, A., Rinaldo, A. E-detectors: a nonparametric framework for sequential change
  detection. arXiv:2203.03532 (the CUSUM as a maximum of e-processes started at every time).

>>> c = BernoulliCusum(p0=0.02, p1=0.04, horizon=1000, alpha=0.01)
>>> round(c.threshold, 4)        # log(1000 / 0.01)
11.5129
>>> c.update(2, 100)             # at the reference: log LR = 2 log 2 + 98 log(.96/.98) < 0
>>> c.statistic, c.alarm
(0.0, False)
>>> for _ in range(10):          # log LR = 5 log 2 + 95 log(.96/.98) = 1.507 per batch
...     c.update(5, 100)
>>> c.alarm, c.first_alarm
(True, 9)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from rollguard.stats._state import check_state

__all__ = ["BernoulliCusum", "GaussianMeanCusum"]


class _Cusum:
    """Shared recursion, threshold and state of the one-sided LR CUSUMs."""

    __slots__ = ("alpha", "first_alarm", "horizon", "statistic", "threshold", "updates")

    def __init__(self, horizon: int, alpha: float) -> None:
        if horizon < 1:
            raise ValueError("horizon must be >= 1")
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        self.horizon = int(horizon)
        self.alpha = float(alpha)
        self.threshold = math.log(self.horizon / self.alpha)
        self.statistic = 0.0
        self.updates = 0
        self.first_alarm: int | None = None

    def _step(self, llr: float) -> None:
        if not math.isfinite(llr):
            raise ValueError("non-finite batch statistic")
        self.updates += 1
        self.statistic = max(0.0, self.statistic + llr)
        if self.first_alarm is None and self.statistic >= self.threshold:
            self.first_alarm = self.updates

    def _steps(self, llr: npt.NDArray[np.float64]) -> None:
        """Vectorised recursion: ``S_t = C_t - min(-S_0, min_{s≤t} C_s)`` with ``C`` the cumsum of ``llr``."""
        if llr.size == 0:
            return
        if not np.isfinite(llr).all():
            raise ValueError("non-finite batch statistic")
        c = np.cumsum(llr)
        s = c - np.minimum(np.minimum.accumulate(c), -self.statistic)
        if self.first_alarm is None:
            hit = np.flatnonzero(s >= self.threshold)
            if hit.size:
                self.first_alarm = self.updates + int(hit[0]) + 1
        self.updates += int(llr.size)
        self.statistic = max(0.0, float(s[-1]))

    @property
    def alarm(self) -> bool:
        """Has the statistic reached the threshold at some update (sticky until :meth:`reset`)?"""
        return self.first_alarm is not None

    @property
    def within_horizon(self) -> bool:
        """Is the false-alarm guarantee ``≤ α`` still in force (``updates ≤ horizon``)?"""
        return self.updates <= self.horizon

    def reset(self) -> None:
        """Restart the chart (statistic, update count and alarm)."""
        self.statistic = 0.0
        self.updates = 0
        self.first_alarm = None

    def _base_state(self) -> dict[str, Any]:
        return {
            "v": 1,
            "horizon": self.horizon,
            "alpha": self.alpha,
            "statistic": self.statistic,
            "updates": self.updates,
            "first_alarm": self.first_alarm,
        }

    def _load_base(self, state: dict[str, Any]) -> None:
        self.statistic = float(state["statistic"])
        self.updates = int(state["updates"])
        fa = state["first_alarm"]
        self.first_alarm = None if fa is None else int(fa)


_BASE_KEYS = ("horizon", "alpha", "statistic", "updates", "first_alarm")


class BernoulliCusum(_Cusum):
    """CUSUM for a rate: null ``p ≤ p0`` (or ``≥ p0`` when ``p1 < p0``), tuned to detect ``p1``.

    ``update(successes, n)`` adds one batch (one update in the horizon count);
    ``update_many(successes, n)`` adds a sequence of batches from two arrays, vectorised.
    """

    __slots__ = ("_a", "_b", "p0", "p1")

    def __init__(self, p0: float, p1: float, horizon: int, alpha: float) -> None:
        if not (0.0 < p0 < 1.0 and 0.0 < p1 < 1.0) or p0 == p1:
            raise ValueError("need p0, p1 in (0, 1) and p0 != p1")
        super().__init__(horizon, alpha)
        self.p0 = float(p0)
        self.p1 = float(p1)
        self._a = math.log(p1 / p0)
        self._b = math.log1p(-p1) - math.log1p(-p0)

    def log_lr(self, successes: float, n: float) -> float:
        """``k log(p1/p0) + (n-k) log((1-p1)/(1-p0))``."""
        return successes * self._a + (n - successes) * self._b

    def update(self, successes: int, n: int) -> None:
        """Add a batch of ``n`` trials with ``successes`` events (no-op when ``n == 0``)."""
        if not 0 <= successes <= n:
            raise ValueError("need 0 <= successes <= n")
        if n > 0:
            self._step(self.log_lr(successes, n))

    def update_many(self, successes: npt.ArrayLike, n: npt.ArrayLike) -> None:
        """Add a sequence of batches (arrays of per-batch event counts and trial counts)."""
        k = np.asarray(successes, dtype=np.float64).ravel()
        m = np.broadcast_to(np.asarray(n, dtype=np.float64), k.shape)
        if k.size and (k.min() < 0 or (k > m).any()):
            raise ValueError("need 0 <= successes <= n")
        keep = m > 0
        if not keep.all():
            k, m = k[keep], m[keep]
        self._steps(k * self._a + (m - k) * self._b)

    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state."""
        return {**self._base_state(), "p0": self.p0, "p1": self.p1}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BernoulliCusum:
        """Rebuild from :meth:`to_state` output."""
        check_state(state, 1, (*_BASE_KEYS, "p0", "p1"))
        c = cls(float(state["p0"]), float(state["p1"]), int(state["horizon"]), float(state["alpha"]))
        c._load_base(state)
        return c

    def __repr__(self) -> str:
        return (
            f"BernoulliCusum(p0={self.p0}, p1={self.p1}, statistic={self.statistic:.3f}, "
            f"threshold={self.threshold:.3f}, updates={self.updates}, alarm={self.alarm})"
        )


class GaussianMeanCusum(_Cusum):
    """CUSUM for a mean with known σ: null ``μ ≤ mu0`` (or ``≥ mu0`` when ``mu1 < mu0``), tuned to ``mu1``.

    ``update(batch_mean, batch_n)`` adds one batch; ``update_many`` a sequence of batches.

    >>> g = GaussianMeanCusum(mu0=0.0, mu1=0.5, sigma=1.0, horizon=100, alpha=0.05)
    >>> g.update(0.25, 40)     # at the midpoint: log LR = 40 · 0.5 · 0 = 0
    >>> g.statistic
    0.0
    >>> g.update(0.75, 40)     # 40 · 0.5 · 0.5
    >>> g.statistic
    10.0
    """

    __slots__ = ("_k", "_mid", "mu0", "mu1", "sigma")

    def __init__(self, mu0: float, mu1: float, sigma: float, horizon: int, alpha: float) -> None:
        if mu0 == mu1 or not 0.0 < sigma < math.inf:
            raise ValueError("need mu0 != mu1 and 0 < sigma < inf")
        super().__init__(horizon, alpha)
        self.mu0 = float(mu0)
        self.mu1 = float(mu1)
        self.sigma = float(sigma)
        self._k = (mu1 - mu0) / (sigma * sigma)
        self._mid = 0.5 * (mu0 + mu1)

    def log_lr(self, batch_mean: float, batch_n: float) -> float:
        """``n (μ1-μ0)/σ² · (x̄ - (μ0+μ1)/2)``."""
        return batch_n * self._k * (batch_mean - self._mid)

    def update(self, batch_mean: float, batch_n: int) -> None:
        """Add a batch of ``batch_n`` values with mean ``batch_mean`` (no-op when ``batch_n == 0``)."""
        if batch_n < 0:
            raise ValueError("batch_n must be >= 0")
        if batch_n == 0:
            return
        self._step(self.log_lr(batch_mean, batch_n))

    def update_many(self, batch_means: npt.ArrayLike, batch_ns: npt.ArrayLike) -> None:
        """Add a sequence of batches (arrays of batch means and sizes; empty batches are skipped)."""
        xm = np.asarray(batch_means, dtype=np.float64).ravel()
        bn = np.broadcast_to(np.asarray(batch_ns, dtype=np.float64), xm.shape)
        keep = bn > 0
        if not keep.all():
            xm, bn = xm[keep], bn[keep]
        self._steps(bn * self._k * (xm - self._mid))

    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state."""
        return {**self._base_state(), "mu0": self.mu0, "mu1": self.mu1, "sigma": self.sigma}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GaussianMeanCusum:
        """Rebuild from :meth:`to_state` output."""
        check_state(state, 1, (*_BASE_KEYS, "mu0", "mu1", "sigma"))
        c = cls(
            float(state["mu0"]),
            float(state["mu1"]),
            float(state["sigma"]),
            int(state["horizon"]),
            float(state["alpha"]),
        )
        c._load_base(state)
        return c

    def __repr__(self) -> str:
        return (
            f"GaussianMeanCusum(mu0={self.mu0}, mu1={self.mu1}, sigma={self.sigma}, "
            f"statistic={self.statistic:.3f}, threshold={self.threshold:.3f}, alarm={self.alarm})"
        )
