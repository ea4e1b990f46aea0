"""Change detection against a frozen reference, one CUSUM per cohort, vectorised over cohorts.

Used twice: for **baseline drift** (the control arm against its own early history, so that a change
hitting both arms is reported as drift, not as a canary regression) and for the **post-rollout**
phase (the new version at 100% against the control's last known-good statistics).

Each bank runs one-sided likelihood-ratio CUSUMs S ← max(0, S + log LR) whose null sits one margin
beyond the reference (so changes within the margin never alarm) and whose alternative sits two margins
beyond. The alarm threshold h = log(horizon / α) bounds the probability of any false alarm within
``horizon`` updates by α (a union over start times of Ville's inequality; see
:mod:`rollguard.stats.cusum`). Values are oriented so that "worse" is always "larger".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class CusumBank:
    """CUSUMs for one metric across cohort slots: Bernoulli (rates) or Gaussian (means)."""

    def __init__(self, kind: str, capacity: int, threshold: float) -> None:
        if kind not in ("bernoulli", "gaussian"):
            raise ValueError(kind)
        self.kind = kind
        self.threshold = threshold
        self.active = np.zeros(capacity, dtype=bool)
        self.null = np.zeros(capacity)  # p0 or mu0
        self.alt = np.zeros(capacity)  # p1 or mu1
        self.sigma = np.ones(capacity)
        self.reference = np.zeros(capacity)
        self.stat = np.zeros(capacity)
        self.alarm = np.zeros(capacity, dtype=bool)

    def grow(self, capacity: int) -> None:
        pad = capacity - self.active.size
        if pad <= 0:
            return
        self.active = np.concatenate([self.active, np.zeros(pad, dtype=bool)])
        self.alarm = np.concatenate([self.alarm, np.zeros(pad, dtype=bool)])
        for name in ("null", "alt", "reference", "stat"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(pad)]))
        self.sigma = np.concatenate([self.sigma, np.ones(pad)])

    def arm(self, slot: int, reference: float, delta: float, sigma: float = 1.0) -> None:
        """Start watching ``slot``: null = reference + delta, alternative = reference + 2·delta."""
        delta = max(delta, 1e-12)
        if self.kind == "bernoulli":
            p0 = min(max(reference + delta, 1e-6), 1 - 1e-6)
            p1 = min(reference + 2 * delta, 1 - 1e-7)
            if p1 <= p0:
                return  # no room above the null: nothing can be detected
            self.null[slot], self.alt[slot] = p0, p1
        else:
            self.null[slot], self.alt[slot] = reference + delta, reference + 2 * delta
            self.sigma[slot] = max(sigma, 1e-12)
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
        if self.kind == "bernoulli":
            p0 = np.where(use, self.null, 0.5)
            p1 = np.where(use, self.alt, 0.5)
            llr = k_or_mean * np.log(p1 / p0) + (n - k_or_mean) * np.log((1 - p1) / (1 - p0))
        else:
            mid = (self.null + self.alt) / 2.0
            llr = n * (self.alt - self.null) / self.sigma**2 * (k_or_mean - mid)
        llr = np.where(use, llr, 0.0)
        self.stat = np.where(use, np.maximum(0.0, self.stat + llr), self.stat)
        fired = use & ~self.alarm & (self.stat >= self.threshold)
        cleared = self.alarm & (self.stat <= 0.0)
        self.alarm = (self.alarm | fired) & ~cleared
        return fired

    def cleared(self, before: BoolArray) -> BoolArray:
        return before & ~self.alarm

    def evidence(self, slot: int) -> dict[str, Any]:
        return {
            "method": f"cusum-{self.kind}",
            "reference": float(self.reference[slot]),
            "null": float(self.null[slot]),
            "alternative": float(self.alt[slot]),
            "statistic": float(self.stat[slot]),
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
        bank = cls(str(state["kind"]), len(state["active"]), float(state["threshold"]))
        for name in ("null", "alt", "sigma", "reference", "stat"):
            setattr(bank, name, np.asarray(state[name], dtype=np.float64))
        bank.active = np.asarray(state["active"], dtype=bool)
        bank.alarm = np.asarray(state["alarm"], dtype=bool)
        return bank


def cusum_threshold(horizon_updates: float, alpha: float) -> float:
    """h = log(horizon / α): at most α chance of any false alarm within ``horizon`` updates."""
    return math.log(max(horizon_updates, 1.0) / alpha)
