"""Weighted running mean vector and covariance of a stream of feature vectors.

:class:`VectorMoments` keeps, whatever the traffic, the count ``n``, the sum of weights ``w``, the sum of
squared weights ``w2``, the weighted mean vector and ``M2 = Σ w_i (x_i - x̄)(x_i - x̄)ᵀ``: O(k²) floats
for k-dimensional features. A numpy batch is reduced in two vectorised passes and combined with the
running state by the weighted form of Chan, Golub and LeVeque's pairwise update (also used by
:meth:`merge`), so no Python loop runs per vector and there is no catastrophic cancellation.

Why weights: a budgeted sampler keeps an event with a probability ``p`` that depends on its stratum
and arm; weighting each kept vector by ``1/p`` (Horvitz-Thompson) makes each arm's mean estimate the
mean of *all* of that arm's traffic, so the arms can be compared however unevenly they were sampled.
The price is a smaller effective sample size ``n_eff = w²/w2`` (Kish), which the tests use.

References
----------
- Chan, T. F., Golub, G. H., LeVeque, R. J. (1983). Algorithms for computing the sample variance:
  analysis and recommendations. *The American Statistician* 37(3), 242-247.
- Horvitz, D. G., Thompson, D. J. (1952). A generalization of sampling without replacement from a
  finite universe. *JASA* 47(260), 663-685.
- Kish, L. (1965). *Survey Sampling*. Wiley (effective sample size of a weighted mean).

>>> import numpy as np
>>> m = VectorMoments(2)
>>> m.update_many(np.array([[0.0, 1.0], [2.0, 3.0]]))
>>> m.update_many(np.array([[4.0, 5.0]]), np.array([2.0]))
>>> m.n, m.w, m.mean.tolist(), m.n_eff
(3, 4.0, [2.5, 3.5], 2.6666666666666665)
>>> VectorMoments.from_state(m.to_state()).covariance.round(6).tolist()
[[4.4, 4.4], [4.4, 4.4]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from rollguard.stats._state import check_state

__all__ = ["VectorMoments"]

FloatArray = npt.NDArray[np.float64]


class VectorMoments:
    """Weighted count, mean vector and scatter matrix of k-dimensional vectors, in O(k²) memory.

    Weights must be positive and finite (``1/p`` of a sampling probability ``p``, or 1).
    """

    __slots__ = ("dim", "m2", "mean", "n", "w", "w2")

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError("dim must be at least 1")
        self.dim = int(dim)
        self.n = 0
        self.w = 0.0
        self.w2 = 0.0
        self.mean: FloatArray = np.zeros(dim)
        self.m2: FloatArray = np.zeros((dim, dim))

    def update_many(self, x: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> None:
        """Add the rows of ``x`` (shape ``(m, dim)``), each with its weight (default 1)."""
        xa = np.asarray(x, dtype=np.float64)
        if xa.ndim != 2 or xa.shape[1] != self.dim:
            raise ValueError(f"expected an array of shape (m, {self.dim}), got {xa.shape}")
        m = xa.shape[0]
        if m == 0:
            return
        if not np.isfinite(xa).all():
            raise ValueError("vectors must be finite")
        wa = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
        if wa.shape[0] != m or not (wa > 0).all() or not np.isfinite(wa).all():
            raise ValueError("weights must be positive and finite, one per row")
        wb = float(wa.sum())
        mb = (wa @ xa) / wb
        dev = xa - mb
        m2b = (dev * wa[:, None]).T @ dev
        self._combine(m, wb, float(wa @ wa), mb, m2b)

    def merge(self, other: VectorMoments) -> None:
        """Fold another state of the same dimension into this one (exact, order-free)."""
        if other.dim != self.dim:
            raise ValueError("dimensions differ")
        if other.n:
            self._combine(other.n, other.w, other.w2, other.mean, other.m2)

    def _combine(self, n: int, w: float, w2: float, mean: FloatArray, m2: FloatArray) -> None:
        if self.n == 0:
            self.n, self.w, self.w2 = n, w, w2
            self.mean = mean.copy()
            self.m2 = m2.copy()
            return
        total = self.w + w
        delta = mean - self.mean
        self.mean = self.mean + delta * (w / total)
        self.m2 = self.m2 + m2 + np.outer(delta, delta) * (self.w * w / total)
        self.n += n
        self.w = total
        self.w2 += w2

    @property
    def n_eff(self) -> float:
        """Kish's effective sample size ``w² / w2`` (``n`` when all weights are equal)."""
        return self.w * self.w / self.w2 if self.w2 > 0 else 0.0

    @property
    def covariance(self) -> FloatArray:
        """Weighted covariance with the reliability-weights correction (zeros while ``n_eff <= 1``)."""
        denom = self.w - (self.w2 / self.w if self.w > 0 else 0.0)
        if self.n < 2 or denom <= 0:
            return np.zeros((self.dim, self.dim))
        cov: FloatArray = self.m2 / denom
        return cov

    def to_state(self) -> dict[str, Any]:
        return {
            "v": 1,
            "dim": self.dim,
            "n": self.n,
            "w": self.w,
            "w2": self.w2,
            "mean": self.mean.tolist(),
            "m2": self.m2.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> VectorMoments:
        check_state(state, 1, ("dim", "n", "w", "w2", "mean", "m2"))
        out = cls(int(state["dim"]))
        out.n = int(state["n"])
        out.w = float(state["w"])
        out.w2 = float(state["w2"])
        out.mean = np.asarray(state["mean"], dtype=np.float64).reshape(out.dim)
        out.m2 = np.asarray(state["m2"], dtype=np.float64).reshape(out.dim, out.dim)
        return out
