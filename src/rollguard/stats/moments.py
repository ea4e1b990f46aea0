"""Running count, mean and variance (Welford's update, Chan et al.'s parallel combination).

:class:`Moments` keeps three numbers whatever the traffic: the count ``n``, the mean and ``M2``, the
sum of squared deviations from the mean. Single values use Welford's update; a numpy batch is reduced
with two vectorised passes (mean, then squared deviations from the batch mean) and combined with the
running state by the pairwise formula of Chan, Golub and LeVeque, which is also how two states are
merged. Both are numerically stable (no catastrophic cancellation of ``Σx²`` against ``n·mean²``).

References
----------
- Welford, B. P. (1962). Note on a method for calculating corrected sums of squares and products.
  *Technometrics* 4(3), 419-420.
- Chan, T. F., Golub, G. H., LeVeque, R. J. (1983). Algorithms for computing the sample variance:
  analysis and recommendations. *The American Statistician* 37(3), 242-247.

>>> import numpy as np
>>> m = Moments()
>>> m.update_many(np.array([1.0, 2.0, 3.0, 4.0]))
>>> m.update(5.0)
>>> m.n, m.mean, m.variance
(5, 3.0, 2.5)
>>> other = Moments.from_state(m.to_state())
>>> other.merge(Moments.of(np.array([6.0, 7.0])))
>>> other.n, other.mean, round(other.variance, 12)
(7, 4.0, 4.666666666667)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from rollguard.stats._state import check_state

__all__ = ["Moments"]


class Moments:
    """Count, mean and second central moment of a stream of floats, in O(1) memory.

    Attributes
    ----------
    n
        Number of values seen.
    mean
        Their mean (0.0 when ``n == 0``).
    m2
        Sum of squared deviations from the mean, ``Σ (x_i - mean)²``.

    Values must be finite; a non-finite value in :meth:`update_many` raises ``ValueError`` (the
    engine filters missing fields before they reach the statistics).
    """

    __slots__ = ("m2", "mean", "n")

    def __init__(self, n: int = 0, mean: float = 0.0, m2: float = 0.0) -> None:
        if n < 0 or m2 < 0.0 or (n == 0 and (mean != 0.0 or m2 != 0.0)):
            raise ValueError(f"inconsistent moments n={n}, mean={mean}, m2={m2}")
        self.n = int(n)
        self.mean = float(mean)
        self.m2 = float(m2)

    @classmethod
    def of(cls, values: npt.ArrayLike) -> Moments:
        """Moments of an array of values.

        >>> Moments.of([2.0, 4.0]).to_state()
        {'v': 1, 'n': 2, 'mean': 3.0, 'm2': 2.0}
        """
        m = cls()
        m.update_many(values)
        return m

    def update(self, x: float) -> None:
        """Add one value (Welford)."""
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"non-finite value {x!r}")
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def update_many(self, values: npt.ArrayLike) -> None:
        """Add a batch of values: two vectorised passes, then the pairwise combination."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        nb = arr.size
        if nb == 0:
            return
        mb = float(arr.mean())
        if not math.isfinite(mb):
            raise ValueError("non-finite value in batch")
        dev = arr - mb
        m2b = float(np.dot(dev, dev))
        self._combine(nb, mb, m2b)

    def merge(self, other: Moments) -> None:
        """Add the values summarised by ``other`` (Chan et al. pairwise combination)."""
        if other.n:
            self._combine(other.n, other.mean, other.m2)

    def _combine(self, nb: int, mb: float, m2b: float) -> None:
        na = self.n
        if na == 0:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n = na + nb
        delta = mb - self.mean
        self.mean += delta * nb / n
        self.m2 += m2b + delta * delta * (na * nb / n)
        self.n = n

    @property
    def variance(self) -> float:
        """Sample variance with ``ddof=1``; 0.0 when ``n < 2``."""
        return self.m2 / (self.n - 1) if self.n >= 2 else 0.0

    @property
    def std(self) -> float:
        """Sample standard deviation (``ddof=1``); 0.0 when ``n < 2``."""
        return math.sqrt(self.variance)

    @property
    def sem2(self) -> float:
        """Squared standard error of the mean, ``variance / n`` (``inf`` when ``n == 0``)."""
        return self.variance / self.n if self.n else math.inf

    def get(self) -> float:
        """The mean (river-style accessor)."""
        return self.mean

    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state (plain ints and finite floats)."""
        return {"v": 1, "n": self.n, "mean": self.mean, "m2": self.m2}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Moments:
        """Rebuild from :meth:`to_state` output."""
        check_state(state, 1, ("n", "mean", "m2"))
        return cls(int(state["n"]), float(state["mean"]), float(state["m2"]))

    def __repr__(self) -> str:
        return f"Moments(n={self.n}, mean={self.mean!r}, variance={self.variance!r})"
