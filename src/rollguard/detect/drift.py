"""Change detection against a frozen reference, one CUSUM per cohort, vectorised over cohorts.

Used twice: for **baseline drift** (the control arm against its own early history, so that a change
hitting both arms is reported as drift, not as a canary regression) and for the **post-rollout**
phase (the new version at 100% against the control's last known-good statistics).

Each bank runs one-sided likelihood-ratio CUSUMs S ← max(0, S + log LR) whose null sits one margin
beyond the reference (so changes within the margin never alarm), against alternatives one, two, four
and eight margins beyond the null. The threshold h = log(K · H / α) bounds the probability of any
false alarm within H updates by α (a union over the K alternatives and the H start times of
Ville's inequality; see :mod:`rollguard.stats.cusum`). Values are oriented: "worse" is "larger".

Updates follow the event-time grid of :mod:`rollguard.detect.onset`: a batch's log-likelihood ratios join a
pending sum per slot, folded into the statistics at most once per ``step_s`` cell (at the first batch
closing in a new cell); the null and alternatives are fixed when a slot is armed, so the sum of a
cell's ratios is the exact log-likelihood ratio of the cell. A horizon of ``horizon_s`` seconds then
holds at most H = :func:`grid_updates` (``horizon_s``, ``step_s``) updates, whatever the batch pace.

The reference is the plug-in estimate plus one standard error: the margin absorbs what is left of
the reference's own uncertainty (a one-sigma error of a 500-request baseline at 1% errors is 0.45
percentage points, inside the default 0.5-point margin).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


MULTIPLIERS = np.array([1.0, 2.0, 4.0, 8.0])
_ARRAYS = ("active", "null", "alt", "sigma", "reference", "stat", "alarm", "pending", "waiting")


class CusumBank:
    """CUSUMs for one metric across cohort slots: Bernoulli (rates) or Gaussian (means).

    Each slot runs one CUSUM per alternative (null + step·{1, 2, 4, 8}), so small and large changes
    are both found quickly; the threshold carries the log of the number of alternatives.
    """

    def __init__(self, kind: str, capacity: int, threshold: float, step_s: float = 0.0) -> None:
        """``threshold`` from :func:`cusum_threshold` (the log K of the alternatives is added here);
        ``step_s`` the update grid (0: every :meth:`update` call folds)."""
        if kind not in ("bernoulli", "gaussian"):
            raise ValueError(kind)
        k = MULTIPLIERS.size
        self.kind = kind
        self.threshold = threshold + float(np.log(k))
        self.step_s = float(step_s)
        self.last_cell = -math.inf
        self.pending = np.zeros((capacity, k))
        self.waiting = np.zeros(capacity, dtype=bool)
        self.active = np.zeros(capacity, dtype=bool)
        self.null = np.zeros(capacity)  # p0 or mu0
        self.alt = np.zeros((capacity, k))  # p1 or mu1 per alternative
        self.sigma = np.ones(capacity)
        self.reference = np.zeros(capacity)
        self.stat = np.zeros((capacity, k))
        self.alarm = np.zeros(capacity, dtype=bool)

    def grow(self, capacity: int) -> None:
        pad = capacity - self.active.size
        if pad <= 0:
            return
        k = MULTIPLIERS.size
        self.active = np.concatenate([self.active, np.zeros(pad, dtype=bool)])
        self.alarm = np.concatenate([self.alarm, np.zeros(pad, dtype=bool)])
        self.null = np.concatenate([self.null, np.zeros(pad)])
        self.reference = np.concatenate([self.reference, np.zeros(pad)])
        self.sigma = np.concatenate([self.sigma, np.ones(pad)])
        self.alt = np.concatenate([self.alt, np.zeros((pad, k))])
        self.stat = np.concatenate([self.stat, np.zeros((pad, k))])
        self.pending = np.concatenate([self.pending, np.zeros((pad, k))])
        self.waiting = np.concatenate([self.waiting, np.zeros(pad, dtype=bool)])

    def arm(self, slot: int, reference: float, delta: float, sigma: float = 1.0) -> None:
        """Start watching ``slot``: null = reference + delta, alternatives = null + delta·{1, 2, 4, 8}."""
        delta = max(delta, 1e-12)
        null = reference + delta
        alts = null + delta * MULTIPLIERS
        if self.kind == "bernoulli":
            null = min(max(null, 1e-6), 1 - 1e-6)
            alts = np.minimum(alts, 1 - 1e-7)
            alts = np.where(alts > null, alts, null)  # no room above the null: that alternative is idle
        else:
            self.sigma[slot] = max(sigma, 1e-12)
        self.null[slot] = null
        self.alt[slot] = alts
        self.reference[slot] = reference
        self.stat[slot] = 0.0
        self.pending[slot] = 0.0
        self.waiting[slot] = False
        self.alarm[slot] = False
        self.active[slot] = True

    def disarm(self, slot: int) -> None:
        self.active[slot] = False
        self.alarm[slot] = False
        self.stat[slot] = 0.0
        self.pending[slot] = 0.0
        self.waiting[slot] = False

    def update(self, k_or_mean: FloatArray, n: FloatArray, now: float = math.inf) -> BoolArray:
        """Add one batch per slot (events ``n``; successes or oriented mean) closing at event time
        ``now``, folding the pending evidence if the grid allows; returns new alarms."""
        use = self.active & (n > 0)
        if use.any():
            self.pending += self._llr(use, k_or_mean, n)
            self.waiting |= use
        due = self.step_s <= 0 or math.floor(now / self.step_s) > self.last_cell
        if not due or not self.waiting.any():
            return np.zeros_like(self.alarm)
        if self.step_s > 0:
            self.last_cell = math.floor(now / self.step_s)
        folded = self.waiting & self.active
        self.stat = np.where(folded[:, None], np.maximum(0.0, self.stat + self.pending), self.stat)
        self.pending[:] = 0.0
        self.waiting = np.zeros_like(self.waiting)
        top = self.stat.max(axis=1)
        fired: BoolArray = folded & ~self.alarm & (top >= self.threshold)
        cleared = self.alarm & folded & (top <= 0.0)
        self.alarm = (self.alarm | fired) & ~cleared
        return fired

    def _llr(self, use: BoolArray, k_or_mean: FloatArray, n: FloatArray) -> FloatArray:
        x = k_or_mean[:, None]
        nn = n[:, None]
        if self.kind == "bernoulli":
            p0 = np.where(use, self.null, 0.5)[:, None]
            p1 = np.where(use[:, None], self.alt, 0.5)
            llr = x * np.log(p1 / p0) + (nn - x) * np.log((1 - p1) / (1 - p0))
        else:
            mu0 = self.null[:, None]
            mid = (mu0 + self.alt) / 2.0
            llr = nn * (self.alt - mu0) / (self.sigma**2)[:, None] * (x - mid)
        out: FloatArray = np.where(use[:, None], llr, 0.0)
        return out

    def cleared(self, before: BoolArray) -> BoolArray:
        return before & ~self.alarm

    def evidence(self, slot: int) -> dict[str, Any]:
        k = int(np.argmax(self.stat[slot]))
        return {
            "method": f"cusum-{self.kind}",
            "reference": float(self.reference[slot]),
            "null": float(self.null[slot]),
            "alternative": float(self.alt[slot, k]),
            "statistic": float(self.stat[slot, k]),
            "threshold": float(self.threshold),
            "grid_s": self.step_s,
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            "step_s": self.step_s,
            "last_cell": self.last_cell if math.isfinite(self.last_cell) else None,
            **{name: getattr(self, name).tolist() for name in _ARRAYS},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CusumBank:
        bank = cls(str(state["kind"]), len(state["active"]), 0.0, float(state.get("step_s", 0.0)))
        bank.threshold = float(state["threshold"])
        last = state.get("last_cell")
        # A grid cell is a whole number: restored as one, a state saves to the same bytes again.
        bank.last_cell = -math.inf if last is None else int(last)
        if "pending" in state:
            bank.pending = np.asarray(state["pending"], dtype=np.float64).reshape(-1, MULTIPLIERS.size)
            bank.waiting = np.asarray(state["waiting"], dtype=bool)
        for name in ("null", "sigma", "reference"):
            setattr(bank, name, np.asarray(state[name], dtype=np.float64))
        bank.alt = np.asarray(state["alt"], dtype=np.float64).reshape(-1, MULTIPLIERS.size)
        bank.stat = np.asarray(state["stat"], dtype=np.float64).reshape(-1, MULTIPLIERS.size)
        bank.active = np.asarray(state["active"], dtype=bool)
        bank.alarm = np.asarray(state["alarm"], dtype=bool)
        return bank


def cusum_threshold(horizon_updates: float, alpha: float) -> float:
    """h = log(horizon / α): at most α chance of any false alarm within ``horizon`` updates."""
    return math.log(max(horizon_updates, 1.0) / alpha)


def grid_updates(horizon_s: float, step_s: float) -> float:
    """Most updates a detector folding at most once per ``step_s`` grid cell makes in ``horizon_s``
    seconds of event time: ⌊horizon_s / step_s⌋ + 1 (any window of that length meets that many cells).

    >>> grid_updates(14400.0, 30.0), grid_updates(100.0, 30.0)
    (481.0, 4.0)
    """
    if step_s <= 0:
        raise ValueError("step_s must be positive")
    return float(math.floor(horizon_s / step_s) + 1)
