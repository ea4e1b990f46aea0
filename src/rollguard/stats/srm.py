r"""Sequential sample-ratio-mismatch (SRM) test with known, possibly changing, assignment probabilities.

Each randomisation unit ``i`` is assigned to the canary with a probability ``π_i`` known to the system
(the rollout's canary weight when the unit was assigned; it may change during the rollout). Under H0
(the split works as intended) ``Y_i = 1{unit i is canary}`` is Bernoulli(π_i) given the past. The
alternative tilts every unit's log-odds by the same ``θ``::

    P_θ(Y_i = 1) = π_i e^θ / (π_i e^θ + 1 - π_i),
    LR_i(θ) = P_θ(Y_i) / P_0(Y_i) = e^(θ Y_i) / (1 - π_i + π_i e^θ),

so ``L_n(θ) = Π LR_i(θ)`` is a test martingale under H0 for every θ, *whatever the sequence of π_i*,
and so is any fixed mixture ``M_n = Σ_g w_g L_n(θ_g)``. We mix over a symmetric grid of log-odds
shifts (``±θ`` with ``|θ|`` log-spaced from 0.01 to 3, equal weights; θ = 0 is H0 itself and carries no
weight). By Ville's inequality ``P_H0(∃n: M_n ≥ 1/α) ≤ α``, so ``p_n = min(1, min_{m≤n} 1/M_m)`` is an
always-valid p-value. This is the time-inhomogeneous-Bernoulli test of Lindon & Malek (2022) reduced to
the one-parameter (odds-ratio) alternative that SRM needs; with a constant π it plays the role of the
Dirichlet-multinomial sequential SRM test (Lindon & Malek; GrowthBook's ``ssrm``) while staying exact
when the weight changes, which a multinomial with fixed cell probabilities cannot.

State is O(grid): one log-likelihood per grid point plus counters. A batch costs O(grid × distinct π).
Units with ``π ∈ {0, 1}`` (or non-finite) carry no information and are skipped. The p-value is updated
at batch ends only (a sub-sequence of the looks: still valid, marginally conservative).

The engine must feed each randomisation unit *once* (at its first assignment) with the π in force at
that moment; feeding requests of sticky units instead breaks independence and will flag SRM.

Scores: requests per unit (the request-level check). A unit may come with a real score ``g_i`` that
does not depend on its arm under H0 (e.g. how many requests it sent within a fixed follow-up after its
first one, capped, minus the average over all units). The tilt then acts on ``θ·g_i``::

    LR_i(θ) = e^(θ g_i Y_i) / (1 - π_i + π_i e^(θ g_i)),

still a test martingale under H0 given the scores (each factor has mean 1 whatever ``g_i``), and it
tells whether canary units send fewer (or more) requests than their assignment says — lost or
duplicated events — while a heavy user counts as one unit with a bounded score, never as thousands
of independent requests (the cluster-robust way: units, not requests, are the independent draws).
``g_i = 1`` for every unit is the unit-level test above; scores centred on their average leave the
share of canary units out and keep only requests per unit. (Conditional randomisation: Candès et al.,
"Panning for gold", JRSS-B 2018, for tests whose only randomness is a known assignment.)

References
----------
- Lindon, M., Malek, A. (2022). Anytime-valid inference for multinomial count data. *NeurIPS 2022*.
  arXiv:2011.03567.
- Ville, J. (1939). *Étude critique de la notion de collectif*. Gauthier-Villars.

>>> import numpy as np
>>> t = SampleRatioTest(alpha=0.01)
>>> rng = np.random.default_rng(0)
>>> w = np.full(20000, 0.10)
>>> t.update_many(rng.random(20000) < 0.10, w)   # the intended 10 %
>>> t.p_value > 0.01
True
>>> t.update_many(rng.random(60000) < 0.12, np.full(60000, 0.10))   # 12 % observed
>>> t.rejected, round(t.observed_ratio, 2)
(True, 1.17)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from rollguard.stats._state import check_state

__all__ = ["SampleRatioTest"]


def _grid(theta_min: float, theta_max: float, n_per_side: int) -> npt.NDArray[np.float64]:
    mags = np.geomspace(theta_min, theta_max, n_per_side)
    return np.concatenate([-mags[::-1], mags])


class SampleRatioTest:
    """Always-valid SRM test for a canary/control split with known per-unit canary probabilities.

    Parameters
    ----------
    alpha
        Level used by :attr:`rejected` (the p-value itself does not depend on it).
    theta_min, theta_max, n_per_side
        Grid of log-odds shifts ``±geomspace(theta_min, theta_max, n_per_side)``, equal weights.
        The defaults (0.01, 3.0, 24) cover a 10 % vs 10.1 % split up to 10 % vs 70 %. Adjacent grid
        points are 28 % apart, which loses < 0.2 nat of evidence at the detection boundary; spreading
        the prior over 48 points costs log 48 ≈ 3.9 nats, the price of not knowing the size of the SRM.
    """

    __slots__ = (
        "_em1",
        "alpha",
        "expected_canary",
        "log_lr",
        "log_w",
        "n",
        "n_per_side",
        "observed_canary",
        "p_value",
        "theta",
        "theta_max",
        "theta_min",
    )

    def __init__(
        self,
        alpha: float = 0.01,
        *,
        theta_min: float = 0.01,
        theta_max: float = 3.0,
        n_per_side: int = 24,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if not 0.0 < theta_min <= theta_max < 20.0 or n_per_side < 1:
            raise ValueError("need 0 < theta_min <= theta_max < 20 and n_per_side >= 1")
        self.alpha = float(alpha)
        self.theta_min = float(theta_min)
        self.theta_max = float(theta_max)
        self.n_per_side = int(n_per_side)
        self.theta = _grid(self.theta_min, self.theta_max, self.n_per_side)
        self._em1 = np.expm1(self.theta)  # e^θ - 1
        self.log_w = np.full(self.theta.size, -math.log(self.theta.size))
        self.log_lr = np.zeros(self.theta.size)
        self.n = 0
        self.observed_canary = 0
        self.expected_canary = 0.0
        self.p_value = 1.0

    def update(self, is_canary: bool, weight: float) -> None:
        """Add one unit assigned to the canary with probability ``weight``."""
        self.update_many(np.array([is_canary], dtype=bool), np.array([weight], dtype=np.float64))

    def update_many(
        self, is_canary: npt.ArrayLike, weight: npt.ArrayLike, score: npt.ArrayLike | None = None
    ) -> None:
        """Add a batch of units: ``is_canary`` (bool array) and their canary probabilities ``weight``.

        ``weight`` may be a scalar (same π for the whole batch). Vectorised: O(grid × distinct π).
        ``score`` (one real number per unit, independent of the arm under H0) tilts by θ·score (see
        the module); the counters still count units.

        >>> t = SampleRatioTest(alpha=0.01)
        >>> t.update_many([True, False, False], 0.5, score=[-2.0, 1.0, 1.0])
        >>> t.n, t.observed_canary, t.expected_canary, round(float(t.log_lr[-1]), 3)   # θ = 3
        (3, 1, 1.5, -10.02)
        """
        if score is not None:
            self._update_scored(
                np.asarray(is_canary, dtype=bool).ravel(),
                np.broadcast_to(np.asarray(weight, dtype=np.float64), np.shape(is_canary)).ravel(),
                np.asarray(score, dtype=np.float64).ravel(),
            )
            return
        y = np.asarray(is_canary, dtype=bool).ravel()
        w = np.asarray(weight, dtype=np.float64)
        if w.ndim and w.size == y.size and w.size:
            w = w.ravel()
            w_lo, w_hi = float(w.min()), float(w.max())
            if w_lo == w_hi:  # one weight for the whole batch: the common case
                w = np.asarray(w_lo)
        elif w.ndim:
            raise ValueError("weight must be a scalar or match is_canary in size")
        if w.ndim == 0:
            pi = float(w)
            if not 0.0 < pi < 1.0 or y.size == 0:
                return
            m = y.size
            k = int(np.count_nonzero(y))
            norm = m * np.log1p(pi * self._em1)
            expected = m * pi
        else:
            keep = (w > 0.0) & (w < 1.0)  # also drops NaN
            if not keep.all():
                y, w = y[keep], w[keep]
                if y.size == 0:
                    return
            m = y.size
            k = int(np.count_nonzero(y))
            vals, cnt = np.unique(w, return_counts=True)
            norm = cnt.astype(np.float64) @ np.log1p(np.outer(vals, self._em1))
            expected = float(cnt @ vals)
        self.log_lr += self.theta * k - norm
        self.n += m
        self.observed_canary += k
        self.expected_canary += expected
        log_e = self.log_e_value
        if log_e > 0.0:
            self.p_value = min(self.p_value, math.exp(-log_e))

    def _update_scored(
        self, y: npt.NDArray[np.bool_], w: npt.NDArray[np.float64], g: npt.NDArray[np.float64]
    ) -> None:
        keep = (w > 0.0) & (w < 1.0) & np.isfinite(g)
        y, w, g = y[keep], w[keep], g[keep]
        if y.size == 0:
            return
        pairs, cnt = np.unique(np.stack([w, g], axis=1), axis=0, return_counts=True)
        tilt = np.outer(pairs[:, 1], self.theta)  # θ·g for each distinct (π, g)
        norm = cnt.astype(np.float64) @ np.log1p(pairs[:, 0:1] * np.expm1(tilt))
        self.log_lr += self.theta * float(g[y].sum()) - norm
        self.n += int(y.size)
        self.observed_canary += int(np.count_nonzero(y))
        self.expected_canary += float(w.sum())
        log_e = self.log_e_value
        if log_e > 0.0:
            self.p_value = min(self.p_value, math.exp(-log_e))

    @property
    def log_e_value(self) -> float:
        """``log M_n``, the log of the mixture martingale (an e-value for H0)."""
        z = self.log_lr + self.log_w
        m = float(z.max())
        z -= m
        return m + math.log(float(np.exp(z, out=z).sum()))

    @property
    def rejected(self) -> bool:
        """SRM detected: ``p_value <= alpha`` (sticky, since the p-value is a running minimum)."""
        return self.p_value <= self.alpha

    @property
    def expected_control(self) -> float:
        """Expected number of control units under H0."""
        return self.n - self.expected_canary

    @property
    def observed_control(self) -> int:
        """Observed number of control units."""
        return self.n - self.observed_canary

    @property
    def observed_ratio(self) -> float:
        """Observed / expected canary units (1.0 = as intended; ``nan`` before any unit)."""
        return self.observed_canary / self.expected_canary if self.expected_canary > 0 else math.nan

    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state."""
        return {
            "v": 1,
            "alpha": self.alpha,
            "theta_min": self.theta_min,
            "theta_max": self.theta_max,
            "n_per_side": self.n_per_side,
            "log_lr": self.log_lr.tolist(),
            "n": self.n,
            "observed_canary": self.observed_canary,
            "expected_canary": self.expected_canary,
            "p_value": self.p_value,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SampleRatioTest:
        """Rebuild from :meth:`to_state` output."""
        check_state(
            state,
            1,
            (
                "alpha",
                "theta_min",
                "theta_max",
                "n_per_side",
                "log_lr",
                "n",
                "observed_canary",
                "expected_canary",
                "p_value",
            ),
        )
        t = cls(
            float(state["alpha"]),
            theta_min=float(state["theta_min"]),
            theta_max=float(state["theta_max"]),
            n_per_side=int(state["n_per_side"]),
        )
        log_lr = np.asarray(state["log_lr"], dtype=np.float64)
        if log_lr.shape != t.log_lr.shape:
            raise ValueError("log_lr does not match the grid")
        t.log_lr = log_lr
        t.n = int(state["n"])
        t.observed_canary = int(state["observed_canary"])
        t.expected_canary = float(state["expected_canary"])
        t.p_value = float(state["p_value"])
        return t

    def __repr__(self) -> str:
        return (
            f"SampleRatioTest(n={self.n}, observed_canary={self.observed_canary}, "
            f"expected_canary={self.expected_canary:.1f}, p_value={self.p_value:.3g})"
        )
