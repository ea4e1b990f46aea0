"""Change detection against a frozen reference, one CUSUM per cohort, vectorised over cohorts.

Used twice: for **baseline drift** (the control arm against its own early history, so that a change
hitting both arms is reported as drift, not as a canary regression) and for the **post-rollout**
phase (the new version at 100% against the control's last known-good statistics).

Each bank runs one-sided likelihood-ratio CUSUMs S ← max(0, S + log LR) whose null sits one margin
beyond the reference (so changes within the margin never alarm), against alternatives one, two, four
and eight margins beyond the null. The threshold h = log(K · horizon / α) bounds the probability of any
false alarm within ``horizon`` updates by α (a union over the K alternatives and the start times of
Ville's inequality; see :mod:`rollguard.stats.cusum`). Values are oriented: "worse" is "larger".

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


class CusumBank:
    """CUSUMs for one metric across cohort slots: Bernoulli (rates) or Gaussian (means).

    Each slot runs one CUSUM per alternative (null + step·{1, 2, 4, 8}), so small and large changes
    are both found quickly; the threshold carries the log of the number of alternatives.
    """

    def __init__(self, kind: str, capacity: int, threshold: float) -> None:
        if kind not in ("bernoulli", "gaussian"):
            raise ValueError(kind)
        k = MULTIPLIERS.size
        self.kind = kind
        self.threshold = threshold + float(np.log(k))
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
        self.alarm[slot] = False
        self.active[slot] = True

    def disarm(self, slot: int) -> None:
        self.active[slot] = False
        self.alarm[slot] = False
        self.stat[slot] = 0.0

    def update(self, k_or_mean: FloatArray, n: FloatArray) -> BoolArray:
        """Fold one batch per slot (events ``n``; successes or oriented mean); returns new alarms."""
        use = self.active & (n > 0)
        if not use.any():
            return np.zeros_like(self.alarm)
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
        llr = np.where(use[:, None], llr, 0.0)
        self.stat = np.maximum(0.0, self.stat + llr)
        top = self.stat.max(axis=1)
        fired: BoolArray = use & ~self.alarm & (top >= self.threshold)
        cleared = self.alarm & (top <= 0.0)
        self.alarm = (self.alarm | fired) & ~cleared
        return fired

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
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            **{
                name: getattr(self, name).tolist()
                for name in ("active", "null", "alt", "sigma", "reference", "stat", "alarm")
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CusumBank:
        bank = cls(str(state["kind"]), len(state["active"]), 0.0)
        bank.threshold = float(state["threshold"])
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
