"""Fixed logarithmic histogram of non-negative values (DDSketch-style), with conservative rank bounds.

:class:`LogHistogram` maps a value ``x`` to the bucket ``i = ceil(log_γ x)`` covering ``(γ^(i-1), γ^i]``
with ``γ = (1 + a) / (1 - a)``, ``a`` the relative accuracy: any value of a bucket is within a relative
error ``a`` of the bucket's representative ``2 γ^i / (γ + 1)``. The bucket range is fixed by
``[min_value, max_value]`` so the memory is bounded whatever the traffic (576 buckets for the defaults),
and a batch is binned with one ``np.log`` and one ``np.bincount``. Two more buckets catch the rest:

- bucket 0, the zero/underflow bucket, holds ``0 <= x < min_value``;
- the last bucket, the overflow bucket, holds everything above the top regular bucket (including +inf).

Unlike DDSketch's quantile estimate, the statistics layer needs *guaranteed* statements, so every value
is known to lie within its bucket's edges (padded by a relative 1e-12 against the floating-point
rounding of the index computation), and the exact minimum and maximum seen are kept to close the
underflow and overflow buckets. :meth:`value_bounds_at_rank` brackets the k-th smallest value and the
``count_*`` methods count the values *certainly* on one side of a threshold; both are what the quantile
confidence sequence (:mod:`rollguard.stats.quantile_cs`) and the engine's tail-rate checks need.

References
----------
- Masson, C., Rim, J. E., Lee, H. K. (2019). DDSketch: a fast and fully-mergeable quantile sketch with
  relative-error guarantees. *PVLDB* 12(12), 2195-2205.

>>> import numpy as np
>>> h = LogHistogram(rel_accuracy=0.01)
>>> h.update_many(np.array([0.0, 1.0, 2.0, 3.0, 1000.0]))
>>> h.count
5
>>> lo, hi = h.value_bounds_at_rank(3)   # the 3rd smallest value is 2.0
>>> bool(lo <= 2.0 <= hi), round(hi / lo, 3) <= 1.021
(True, True)
>>> h.count_le(2.5), h.count_gt(2.5), h.count_le(0.001), h.count_lt(0.0005)
(3, 2, 1, 0)
>>> abs(h.quantile(0.5) - 2.0) <= 0.01 * 2.0
True
>>> LogHistogram.from_state(h.to_state()).count_ge(900.0)
1
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from rollguard.stats._state import check_state, finite_or_none

__all__ = ["LogHistogram"]

_PAD = 1e-12  # relative padding of the bucket edges (floating-point rounding of ceil(log x / log γ))


_FloatArray = npt.NDArray[np.float64]


@functools.lru_cache(maxsize=16)
def _layout(
    rel_accuracy: float, min_value: float, max_value: float
) -> tuple[int, int, _FloatArray, _FloatArray, _FloatArray]:
    """Bucket indices, conservative closed edges and DDSketch representatives, shared (read-only)
    by every histogram with the same parameters so that an instance costs only its counters."""
    gamma = (1.0 + rel_accuracy) / (1.0 - rel_accuracy)
    log_gamma = math.log(gamma)
    i_min = math.ceil(math.log(min_value) / log_gamma)
    i_max = math.ceil(math.log(max_value) / log_gamma)
    nb = i_max - i_min + 3  # underflow + regular + overflow
    i = np.arange(i_min, i_max + 1, dtype=np.float64)
    lo = np.empty(nb)
    hi = np.empty(nb)
    rep = np.empty(nb)
    lo[0], hi[0], rep[0] = 0.0, min_value, 0.0
    lo[1:-1] = np.exp((i - 1.0) * log_gamma) * (1.0 - _PAD)
    hi[1:-1] = np.exp(i * log_gamma) * (1.0 + _PAD)
    rep[1:-1] = 2.0 * np.exp(i * log_gamma) / (gamma + 1.0)
    lo[1] = min_value
    lo[-1], hi[-1], rep[-1] = hi[-2] / (1.0 + _PAD) * (1.0 - _PAD), math.inf, hi[-2]
    for a in (lo, hi, rep):
        a.flags.writeable = False
    return i_min, i_max, lo, hi, rep


class LogHistogram:
    """Counts of non-negative values in fixed logarithmic buckets.

    Parameters
    ----------
    rel_accuracy
        Relative accuracy ``a`` of a bucket, ``0 < a < 1``: bucket edges grow by ``γ = (1+a)/(1-a)``.
    min_value
        Values below it (including 0) share the zero/underflow bucket.
    max_value
        Values above the regular bucket containing it share the overflow bucket.

    Values must be >= 0 and not NaN (``ValueError`` otherwise); +inf goes to the overflow bucket.
    Memory: ``ceil(log_γ max_value) - ceil(log_γ min_value) + 3`` int64 counters (578, 4.6 KB, for the
    defaults); the bucket edges are shared by all histograms with the same parameters. The state
    lists only the non-empty buckets (185, 2 KB of JSON, for 10⁶ lognormal(σ=0.8) latencies).
    """

    __slots__ = (
        "_hi",
        "_lo",
        "_log_gamma",
        "_rep",
        "count",
        "counts",
        "gamma",
        "i_max",
        "i_min",
        "max_value",
        "min_value",
        "rel_accuracy",
        "vmax",
        "vmin",
    )

    def __init__(self, rel_accuracy: float = 0.02, min_value: float = 1e-3, max_value: float = 1e7) -> None:
        if not 0.0 < rel_accuracy < 1.0:
            raise ValueError("rel_accuracy must be in (0, 1)")
        if not 0.0 < min_value < max_value < math.inf:
            raise ValueError("need 0 < min_value < max_value < inf")
        self.rel_accuracy = float(rel_accuracy)
        self.min_value = float(min_value)
        self.max_value = float(max_value)
        self.gamma = (1.0 + rel_accuracy) / (1.0 - rel_accuracy)
        self._log_gamma = math.log(self.gamma)
        self.i_min, self.i_max, self._lo, self._hi, self._rep = _layout(
            self.rel_accuracy, self.min_value, self.max_value
        )
        self.counts: npt.NDArray[np.int64] = np.zeros(self._lo.size, dtype=np.int64)
        self.count = 0
        self.vmin = math.inf
        self.vmax = -math.inf

    # ------------------------------------------------------------------ updates
    @property
    def n_buckets(self) -> int:
        """Number of counters, including the underflow and overflow buckets."""
        return int(self.counts.size)

    def _index(self, arr: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        safe = np.maximum(arr, self.min_value)
        j = np.ceil(np.log(safe) / self._log_gamma) - (self.i_min - 1)
        j = np.clip(j, 1, self.counts.size - 1)
        j[arr < self.min_value] = 0
        out: npt.NDArray[np.intp] = j.astype(np.intp)
        return out

    def update(self, x: float) -> None:
        """Add one value (pure-Python path, same bucket as :meth:`update_many`)."""
        x = float(x)
        if not x >= 0.0:
            raise ValueError("LogHistogram takes non-negative, non-NaN values")
        if x < self.min_value:
            j = 0
        elif x == math.inf:
            j = self.counts.size - 1
        else:
            j = math.ceil(math.log(x) / self._log_gamma) - (self.i_min - 1)
            j = min(max(j, 1), self.counts.size - 1)
        self.counts[j] += 1
        self.count += 1
        self.vmin = min(self.vmin, x)
        self.vmax = max(self.vmax, x)

    def update_many(self, values: npt.ArrayLike) -> None:
        """Add a batch of values (vectorised: one log, one bincount)."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size == 0:
            return
        lo = float(arr.min())
        if not lo >= 0.0:  # also catches NaN
            raise ValueError("LogHistogram takes non-negative, non-NaN values")
        hi = float(arr.max())
        idx = self._index(arr)
        self.counts += np.bincount(idx, minlength=self.counts.size)
        self.count += int(arr.size)
        self.vmin = min(self.vmin, lo)
        self.vmax = max(self.vmax, hi)

    @property
    def lower_edges(self) -> npt.NDArray[np.float64]:
        """Lower edge of every bucket: each value of bucket j is >= lower_edges[j] (padded)."""
        return self._lo

    @property
    def upper_edges(self) -> npt.NDArray[np.float64]:
        """Upper edge of every bucket: each value of bucket j is <= upper_edges[j] (padded)."""
        return self._hi

    def index_many(self, values: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """Bucket index of each value (for callers that bin many histograms with one bincount)."""
        return self._index(np.asarray(values, dtype=np.float64))

    def add_bucket_counts(self, counts: npt.NDArray[np.int64]) -> None:
        """Add counts binned elsewhere with :meth:`index_many` (same layout).

        The exact min and max of those values are unknown here, so they are widened to the edges of
        the lowest and highest non-empty buckets: bounds stay certain, only slightly less tight.
        """
        nz = np.flatnonzero(counts)
        if nz.size == 0:
            return
        self.counts += counts
        self.count += int(counts.sum())
        self.vmin = min(self.vmin, float(self._lo[nz[0]]))
        self.vmax = max(self.vmax, float(self._hi[nz[-1]]))

    def merge(self, other: LogHistogram) -> None:
        """Add the counts of a histogram with the same parameters."""
        if (other.rel_accuracy, other.min_value, other.max_value) != (
            self.rel_accuracy,
            self.min_value,
            self.max_value,
        ):
            raise ValueError("cannot merge histograms with different bucket layouts")
        self.counts += other.counts
        self.count += other.count
        self.vmin = min(self.vmin, other.vmin)
        self.vmax = max(self.vmax, other.vmax)

    # ------------------------------------------------------------------ queries
    def _cumsum(self) -> npt.NDArray[np.int64]:
        # Not cached: 2 µs for the default layout, and a cache would double the memory per histogram.
        out: npt.NDArray[np.int64] = np.cumsum(self.counts)
        return out

    def _cum_before(self, m: int) -> int:
        """Number of values in buckets ``0 .. m-1``."""
        return int(self._cumsum()[m - 1]) if m > 0 else 0

    def bucket_of_rank(self, k: int) -> int:
        """Index of the bucket holding the k-th smallest value (``1 <= k <= count``)."""
        if not 1 <= k <= self.count:
            raise ValueError(f"rank {k} outside 1..{self.count}")
        return int(np.searchsorted(self._cumsum(), k, side="left"))

    def bucket_bounds(self, j: int) -> tuple[float, float]:
        """Closed edges ``(lo, hi)`` that every value of bucket ``j`` lies within (padded, unclipped)."""
        return float(self._lo[j]), float(self._hi[j])

    def value_bounds_at_rank(self, k: int) -> tuple[float, float]:
        """Bounds ``(lo, hi)`` certain to bracket the k-th smallest value seen (``1 <= k <= count``).

        They are the edges of the bucket holding that rank, tightened by the exact min and max seen.
        """
        j = self.bucket_of_rank(k)
        return max(float(self._lo[j]), self.vmin), min(float(self._hi[j]), self.vmax)

    def quantile(self, q: float) -> float:
        """DDSketch estimate of the q-quantile (lower quantile, rank ``1 + floor(q (count - 1))``).

        Within relative error ``rel_accuracy`` of the exact lower empirical quantile when that value lies
        in a regular bucket; values in the underflow/overflow buckets are clamped to the min/max seen.
        ``nan`` when empty.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError("q must be in [0, 1]")
        if self.count == 0:
            return math.nan
        j = self.bucket_of_rank(1 + math.floor(q * (self.count - 1)))
        return min(max(float(self._rep[j]), self.vmin), self.vmax)

    def count_le(self, x: float) -> int:
        """Number of values certainly ``<= x`` (whole buckets at or below ``x``); a lower bound."""
        if x >= self.vmax:
            return self.count
        return self._cum_before(int(np.searchsorted(self._hi, x, side="right")))

    def count_lt(self, x: float) -> int:
        """Number of values certainly ``< x``; a lower bound on the true count."""
        if x > self.vmax:
            return self.count
        return self._cum_before(int(np.searchsorted(self._hi, x, side="left")))

    def count_gt(self, x: float) -> int:
        """Number of values certainly ``> x`` (whole buckets above ``x``); a lower bound.

        ``count - count_gt(x)`` is thus an upper bound on the number of values ``<= x``.
        """
        if x < self.vmin:
            return self.count
        return self.count - self._cum_before(int(np.searchsorted(self._lo, x, side="right")))

    def count_ge(self, x: float) -> int:
        """Number of values certainly ``>= x``; a lower bound on the true count."""
        if x <= self.vmin:
            return self.count
        return self.count - self._cum_before(int(np.searchsorted(self._lo, x, side="left")))

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """Compact JSON-compatible state: parameters, and the non-empty buckets only."""
        nz = np.flatnonzero(self.counts)
        return {
            "v": 1,
            "rel_accuracy": self.rel_accuracy,
            "min_value": self.min_value,
            "max_value": self.max_value,
            "idx": nz.tolist(),
            "cnt": self.counts[nz].tolist(),
            "vmin": finite_or_none(self.vmin),
            "vmax": finite_or_none(self.vmax),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LogHistogram:
        """Rebuild from :meth:`to_state` output."""
        check_state(state, 1, ("rel_accuracy", "min_value", "max_value", "idx", "cnt", "vmin", "vmax"))
        h = cls(float(state["rel_accuracy"]), float(state["min_value"]), float(state["max_value"]))
        idx = np.asarray(state["idx"], dtype=np.intp)
        cnt = np.asarray(state["cnt"], dtype=np.int64)
        if idx.shape != cnt.shape or (idx.size and (idx.min() < 0 or idx.max() >= h.counts.size)):
            raise ValueError("bad histogram buckets in state")
        if cnt.size and cnt.min() < 0:
            raise ValueError("negative count in state")
        h.counts[idx] = cnt
        h.count = int(cnt.sum())
        if h.count:
            # None stands for +inf (JSON has no infinities): only possible when +inf was recorded.
            h.vmin = math.inf if state["vmin"] is None else float(state["vmin"])
            h.vmax = math.inf if state["vmax"] is None else float(state["vmax"])
        return h

    def __repr__(self) -> str:
        return (
            f"LogHistogram(rel_accuracy={self.rel_accuracy}, min_value={self.min_value}, "
            f"max_value={self.max_value}, count={self.count})"
        )
