"""Onset detection: a regression that starts in the middle of a canary, seen batch by batch.

The cumulative confidence sequence answers "is the canary worse, on everything seen so far?"; a
regression that starts at minute 10 of a 30-minute canary is diluted there by the minutes before it.
This detector watches the *recent* evidence instead: a one-sided CUSUM of the per-batch paired
contrast

    d_b = s·x̄_canary,b − s·λ·x̄_control,b − m        (λ = 1 + s·r)

between the two arms **of the same batch**. Because both arms come from the same seconds, a change
that hits both (an upstream outage, a traffic mix shift) cancels in d_b and never alarms here.

Under H0 ("canary no worse than the margin") E[d_b] ≤ 0. For each alternative δ_k = step·2^k
(k = 0 … 3; step = one margin) the Gaussian log-likelihood ratio of a batch is
(δ_k·d_b − δ_k²/2) / v_b with v_b = σ²·(1/n_t,b + λ²/n_c,b), σ² the larger arm's running variance
*before* the batch (predictable). S_k ← max(0, S_k + llr_k); an alarm when any S_k reaches
h = log(K·H/α): with H the horizon in batches, a union over the K alternatives and the H possible
start times of Ville's inequality keeps P(false alarm within the horizon) ≤ α — asymptotically, as the
batch contrasts are only approximately Gaussian (the A/A benchmarks check it empirically).

References: Page (1954), "Continuous inspection schemes"; Lorden (1971); Shin, Ramdas & Rinaldo
(2022), "E-detectors" (arXiv:2203.03532) for the union-over-starts bound with several alternatives.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
MULTIPLIERS: Final = np.array([1.0, 2.0, 4.0, 8.0])


class PairedCusum:
    """Paired-contrast CUSUMs for one metric across cohort slots, with a few alternatives each."""

    def __init__(
        self, capacity: int, horizon_batches: float, alpha_whole: float, alpha_segment: float
    ) -> None:
        """Slot 0 (the whole rollout) spends ``alpha_whole``; every other slot ``alpha_segment``."""
        scale = MULTIPLIERS.size * max(horizon_batches, 1.0)
        self.threshold_whole = math.log(scale / alpha_whole)
        self.threshold = math.log(scale / alpha_segment)
        self.stat = np.zeros((capacity, MULTIPLIERS.size))
        self.alarm = np.zeros(capacity, dtype=bool)
        self.batches = np.zeros(capacity, dtype=np.int64)

    def grow(self, capacity: int) -> None:
        pad = capacity - self.alarm.size
        if pad > 0:
            self.stat = np.concatenate([self.stat, np.zeros((pad, MULTIPLIERS.size))])
            self.alarm = np.concatenate([self.alarm, np.zeros(pad, dtype=bool)])
            self.batches = np.concatenate([self.batches, np.zeros(pad, dtype=np.int64)])

    def reset(self, slot: int) -> None:
        self.stat[slot] = 0.0
        self.alarm[slot] = False
        self.batches[slot] = 0

    def update(
        self,
        use: BoolArray,
        contrast: FloatArray,
        variance: FloatArray,
        step: FloatArray,
    ) -> BoolArray:
        """Fold one batch: oriented contrasts ``d_b``, their variances ``v_b`` and the margin ``step``
        per slot (only where ``use``); returns the slots that alarmed with this batch."""
        if not use.any():
            return np.zeros_like(self.alarm)
        delta = step[:, None] * MULTIPLIERS[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            llr = (delta * contrast[:, None] - 0.5 * delta * delta) / variance[:, None]
        llr = np.where(use[:, None] & np.isfinite(llr), llr, 0.0)
        self.stat = np.maximum(0.0, self.stat + llr)
        self.batches += use
        threshold = np.full(self.alarm.size, self.threshold)
        threshold[0] = self.threshold_whole
        fired: BoolArray = use & ~self.alarm & (self.stat.max(axis=1) >= threshold)
        self.alarm |= fired
        return fired

    def evidence(self, slot: int, step: float) -> dict[str, Any]:
        k = int(np.argmax(self.stat[slot]))
        return {
            "method": "paired-cusum",
            "window": "recent",
            "statistic": float(self.stat[slot, k]),
            "threshold": self.threshold_whole if slot == 0 else self.threshold,
            "alternative": float(step * MULTIPLIERS[k]),
            "batches": int(self.batches[slot]),
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "threshold_whole": self.threshold_whole,
            "threshold": self.threshold,
            "stat": self.stat.tolist(),
            "alarm": self.alarm.tolist(),
            "batches": self.batches.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PairedCusum:
        obj = cls(len(state["alarm"]), 1.0, 0.5, 0.5)
        obj.threshold_whole = float(state["threshold_whole"])
        obj.threshold = float(state["threshold"])
        obj.stat = np.asarray(state["stat"], dtype=np.float64).reshape(-1, MULTIPLIERS.size)
        obj.alarm = np.asarray(state["alarm"], dtype=bool)
        obj.batches = np.asarray(state["batches"], dtype=np.int64)
        return obj
