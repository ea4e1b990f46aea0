r"""Change detection with a Shiryaev–Roberts mixture e-detector, vectorised over slots, and the window
that explains an alarm.

Each slot (a cohort) watches K alternatives. An update brings one log-likelihood ratio ``l_k`` per
alternative (a conditional likelihood ratio: ``E[exp(l_k) | past] ≤ 1`` under the null). The
Shiryaev–Roberts statistic of alternative k sums the likelihood ratios of every possible start::

    R_k,n = (1 + R_k,n-1) · exp(l_k,n) = Σ_{j<n} Π_{i=j+1..n} exp(l_k,i),        R_k,0 = 0,

and the detector averages the alternatives, ``M_n = (1/K) Σ_k R_k,n``, alarming when ``M_n ≥ H/α``.

Why ``H/α`` bounds the false alarms within H updates by α. Under the null
``E[R_k,n | past] ≤ 1 + R_k,n-1``, so ``M_n - n`` is a supermartingale; for ``n ≤ H`` the process
``Y_n = M_n + H - n`` is a non-negative supermartingale started at H, and ``M_n ≥ A`` implies
``Y_n ≥ A``, so Ville's inequality gives ``P(∃ n ≤ H: M_n ≥ A) ≤ H/A``. (Past H the bound grows as
``α · n/H``; the average run length to a false alarm is at least ``H/α``.)

Why not the union-bounded CUSUM. A CUSUM that takes the maximum over start points and over the K
alternatives needs ``log(K·H/α)`` for the same guarantee (a union over both). ``M_n`` is at least the
largest of those products divided by K (a sum over starts is at least its largest term, an average at
least the largest term over K), so with the threshold ``log(H/α)`` it alarms **no later than that
CUSUM, at every update, on the same guarantee**, and earlier when several start points or
alternatives carry evidence — the union over change points and alternatives is paid once, not K
times, and evidence from neighbouring starts adds up instead of being thrown away.

The window that explains an alarm. Alongside, each alternative keeps Page's CUSUM
``S_k,n = max(0, S_k,n-1 + l_k,n)`` only to know where the evidence began: the updates since
``S_k`` was last at zero are its maximising start, and the caller's per-update observation sums
(``obs``, e.g. requests and errors per arm) are added up over that window, so an alarm can quote the
estimates of the window that decided, not the cumulative ones.

References
----------
- Shiryaev, A. N. (1963). On optimum methods in quickest detection problems. *Theory Probab. Appl.*
  8(1), 22-46.  Roberts, S. W. (1966). A comparison of some control chart procedures.
  *Technometrics* 8(3), 411-430.
- Pollak, M. (1985). Optimal detection of a change in distribution. *Ann. Statist.* 13(1), 206-227.
- Shin, J., Ramdas, A., Rinaldo, A. (2022). E-detectors: a nonparametric framework for sequential
  change detection. arXiv:2203.03532 (SR and CUSUM e-detectors, mixtures over alternatives).
- Ville, J. (1939). *Étude critique de la notion de collectif*. Gauthier-Villars.
- Page, E. S. (1954). Continuous inspection schemes. *Biometrika* 41(1/2), 100-115.

>>> import numpy as np
>>> det = MixtureChangeDetector(capacity=1, alternatives=2, width=1)
>>> llr = np.array([[1.0, -2.0]])
>>> stat = det.fold(np.array([True]), llr, np.array([[5.0]]))
>>> round(float(stat[0]), 4)          # log((e^1 + e^-2) / 2)
0.3554
>>> stat = det.fold(np.array([True]), llr, np.array([[7.0]]))
>>> round(float(stat[0]), 4)          # R_0 = (1 + e)·e, R_1 = (1 + e^-2)·e^-2; log of their mean
1.6352
>>> det.window_of(0).tolist()         # the leading alternative's CUSUM window: both updates
[12.0]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MixtureChangeDetector", "mixture_threshold"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def mixture_threshold(horizon_updates: float, alpha: npt.ArrayLike) -> FloatArray:
    """``log(H/α)`` elementwise: at most α chance of any false alarm within H updates.

    >>> mixture_threshold(481.0, [0.01]).round(4).tolist()
    [10.781]
    """
    a = np.asarray(alpha, dtype=np.float64)
    with np.errstate(divide="ignore"):
        out: FloatArray = np.log(max(horizon_updates, 1.0)) - np.log(a)
    return out


class MixtureChangeDetector:
    """Shiryaev–Roberts mixture statistics of ``capacity`` slots × ``alternatives``, with the CUSUM
    window of each (per-update observation sums of ``width`` columns)."""

    def __init__(self, capacity: int, alternatives: int, width: int) -> None:
        self.k = int(alternatives)
        self.width = int(width)
        self.log1p_r = np.zeros((capacity, self.k))  # log(1 + R): 0 before any evidence
        self.cusum = np.zeros((capacity, self.k))
        self.window = np.zeros((capacity, self.k, self.width))
        self.span = np.zeros((capacity, self.k), dtype=np.int64)  # updates in each window
        self.log_m = np.full(capacity, -math.inf)  # log M at the slot's last update

    @property
    def capacity(self) -> int:
        return int(self.log1p_r.shape[0])

    def grow(self, capacity: int) -> None:
        pad = capacity - self.capacity
        if pad <= 0:
            return
        self.log1p_r = np.concatenate([self.log1p_r, np.zeros((pad, self.k))])
        self.cusum = np.concatenate([self.cusum, np.zeros((pad, self.k))])
        self.window = np.concatenate([self.window, np.zeros((pad, self.k, self.width))])
        self.span = np.concatenate([self.span, np.zeros((pad, self.k), dtype=np.int64)])
        self.log_m = np.concatenate([self.log_m, np.full(pad, -math.inf)])

    def reset(self, slot: int) -> None:
        self.log1p_r[slot] = 0.0
        self.cusum[slot] = 0.0
        self.window[slot] = 0.0
        self.span[slot] = 0
        self.log_m[slot] = -math.inf

    def fold(self, use: BoolArray, llr: FloatArray, obs: FloatArray) -> FloatArray:
        """One update of the ``use`` slots: ``llr`` (capacity, K) log-likelihood ratios and ``obs``
        (capacity, width) observation sums of the update; returns ``log M`` per slot (``-inf`` where
        not updated)."""
        llr = np.where(use[:, None] & np.isfinite(llr), llr, 0.0)
        log_r = self.log1p_r + llr
        self.log1p_r = np.where(use[:, None], np.logaddexp(0.0, log_r), self.log1p_r)
        top = log_r.max(axis=1, keepdims=True)
        log_m = (top[:, 0] + np.log(np.exp(log_r - top).sum(axis=1))) - math.log(self.k)
        self.log_m = np.where(use, log_m, self.log_m)
        grown = self.cusum + llr
        restart = use[:, None] & (grown <= 0.0)
        extend = use[:, None] & ~restart
        self.cusum = np.where(use[:, None], np.maximum(grown, 0.0), self.cusum)
        added = self.window + np.where(extend[:, :, None], obs[:, None, :], 0.0)
        self.window = np.where(restart[:, :, None], 0.0, added)
        self.span = np.where(restart, 0, self.span + extend)
        out: FloatArray = np.where(use, log_m, -math.inf)
        return out

    def leading(self, slot: int) -> int:
        """The alternative with the largest Shiryaev–Roberts statistic in ``slot``."""
        return int(np.argmax(self.log1p_r[slot]))

    def window_of(self, slot: int) -> FloatArray:
        """The observation sums over the leading alternative's CUSUM window."""
        out: FloatArray = self.window[slot, self.leading(slot)].copy()
        return out

    def span_of(self, slot: int) -> int:
        """Updates in the leading alternative's CUSUM window."""
        return int(self.span[slot, self.leading(slot)])

    def to_state(self) -> dict[str, Any]:
        return {
            "log1p_r": self.log1p_r.tolist(),
            "cusum": self.cusum.tolist(),
            "window": self.window.tolist(),
            "span": self.span.tolist(),
            "log_m": [x if math.isfinite(x) else None for x in self.log_m.tolist()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], alternatives: int, width: int) -> MixtureChangeDetector:
        """Restore a saved detector; one saved with fewer alternatives (an older ladder) gets the new
        ones fresh, as if they had started now — a statistic that starts later is still an e-process,
        so the mixture's false-alarm bound holds through the upgrade."""
        cap = len(state["log_m"])
        det = cls(cap, alternatives, width)
        det.log1p_r = widen_alternatives(state["log1p_r"], cap, alternatives)
        det.cusum = widen_alternatives(state["cusum"], cap, alternatives)
        det.window = widen_alternatives(state["window"], cap, alternatives, width)
        det.span = widen_alternatives(state["span"], cap, alternatives).astype(np.int64)
        det.log_m = np.asarray([-math.inf if x is None else x for x in state["log_m"]], dtype=np.float64)
        return det


def widen_alternatives(saved: Any, capacity: int, alternatives: int, width: int = 0) -> FloatArray:
    """A saved (capacity, K[, width]) array as (capacity, ``alternatives``[, width]): the alternatives
    a state saved with a shorter ladder lacks are appended as zeros (no evidence yet).

    >>> widen_alternatives([[1.0, 2.0], [3.0, 4.0]], 2, 3).tolist()
    [[1.0, 2.0, 0.0], [3.0, 4.0, 0.0]]
    """
    tail = (width,) if width else ()
    arr = np.asarray(saved, dtype=np.float64).reshape((capacity, -1, *tail))
    if arr.shape[1] > alternatives:
        raise ValueError(f"saved with {arr.shape[1]} alternatives, more than the {alternatives} known")
    pad = np.zeros((capacity, alternatives - arr.shape[1], *tail))
    out: FloatArray = np.concatenate([arr, pad], axis=1)
    return out
