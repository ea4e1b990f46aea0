"""Onset detection: a regression that starts in the middle of a canary, seen batch by batch.

The cumulative confidence sequence answers "is the canary worse, on everything seen so far?"; a
regression that starts at minute 10 of a 30-minute canary is diluted there by the minutes before it.
This detector watches the *recent* evidence instead: a one-sided CUSUM of the per-batch paired
contrast

    d_b = s·x̄_canary,b − s·λ·x̄_control,b − m        (λ = 1 + s·r)

between the two arms **of the same batch**. Because both arms come from the same seconds, a change
that hits both (an upstream outage, a traffic mix shift) cancels in d_b and never alarms here.

Two likelihoods, chosen by what is observed:

- **Counts** (error/timeout/refusal/format rates, tail exceedances): given the K events of a batch
  (errors, say), how they split between the arms is binomial with canary share
  ρ = n_t·R / (n_t·R + n_c), R the canary/control rate ratio. H0 caps R at R0 (the margin, as a ratio
  to the control's running rate) and each alternative raises it; the log-likelihood ratio
  k_t·log(ρ_k/ρ0) + k_c·log((1−ρ_k)/(1−ρ0)) is exact for rare events — a single canary error moves
  it by a bounded amount — and the control's own rate cancels, so an outage in both arms is silent.
- **Means**: batches are pooled per cohort into blocks of at least ``block_min`` observations per arm
  (so each block mean is close to Gaussian even for skewed latencies in rare cohorts), and a block
  contributes (δ_k·d − δ_k²/2) / v with d the paired contrast above and v = σ²·(1/n_t + λ²/n_c), σ² the
  larger of the arms' running variances and the block's own pooled variance.

For each alternative k (step·{1, 2, 4, 8}), S_k ← max(0, S_k + llr_k); an alarm when any S_k reaches
h = log(K·H/α): with H the horizon in updates, a union over the K alternatives and the H possible
start times of Ville's inequality keeps P(false alarm within the horizon) ≤ α (exactly for the counts
given the plug-in control rate; asymptotically for the block means — the A/A benchmark checks both).

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
        self.block = np.zeros((capacity, 2, 3))  # pending block sums per arm: n, Σx, Σx²

    def grow(self, capacity: int) -> None:
        pad = capacity - self.alarm.size
        if pad > 0:
            self.stat = np.concatenate([self.stat, np.zeros((pad, MULTIPLIERS.size))])
            self.alarm = np.concatenate([self.alarm, np.zeros(pad, dtype=bool)])
            self.batches = np.concatenate([self.batches, np.zeros(pad, dtype=np.int64)])
            self.block = np.concatenate([self.block, np.zeros((pad, 2, 3))])

    def reset(self, slot: int) -> None:
        self.stat[slot] = 0.0
        self.alarm[slot] = False
        self.batches[slot] = 0
        self.block[slot] = 0.0

    def add_to_block(self, use: BoolArray, sums: FloatArray, block_min: int) -> BoolArray:
        """Pool a batch's per-arm sums (cap, 2, 3) into the pending blocks of the ``use`` slots;
        returns the slots whose block now has ``block_min`` observations in both arms (read
        :attr:`block` for them, then :meth:`clear_block`)."""
        self.block[use] += sums[use]
        return use & (self.block[:, 0, 0] >= block_min) & (self.block[:, 1, 0] >= block_min)

    def clear_block(self, ready: BoolArray) -> None:
        self.block[ready] = 0.0

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
        return self.update_llr(use, llr)

    def update_llr(self, use: BoolArray, llr: FloatArray) -> BoolArray:
        """Fold per-slot log-likelihood ratios (cap, K), one per alternative; returns new alarms."""
        if not use.any():
            return np.zeros_like(self.alarm)
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
            "block": self.block.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PairedCusum:
        obj = cls(len(state["alarm"]), 1.0, 0.5, 0.5)
        obj.threshold_whole = float(state["threshold_whole"])
        obj.threshold = float(state["threshold"])
        obj.stat = np.asarray(state["stat"], dtype=np.float64).reshape(-1, MULTIPLIERS.size)
        obj.alarm = np.asarray(state["alarm"], dtype=bool)
        obj.batches = np.asarray(state["batches"], dtype=np.int64)
        obj.block = np.asarray(state["block"], dtype=np.float64).reshape(-1, 2, 3)
        return obj


def split_llr(
    k_t: FloatArray, k_c: FloatArray, n_t: FloatArray, n_c: FloatArray, r0: FloatArray, r_alt: FloatArray
) -> FloatArray:
    """Conditional-binomial log-likelihood ratios (cap, K) of how a batch's events split between arms.

    ``r0`` (cap,) is the canary/control rate ratio under H0, ``r_alt`` (cap, K) the alternatives.

    >>> import numpy as np
    >>> llr = split_llr(np.array([3.0]), np.array([2.0]), np.array([10.0]), np.array([90.0]),
    ...                 np.array([1.5]), np.array([[3.0]]))
    >>> round(float(llr[0, 0]), 4)   # 3·log(0.25/0.1429) + 2·log(0.75/0.8571)
    1.4118
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        rho0 = (n_t * r0 / (n_t * r0 + n_c))[:, None]
        rho = n_t[:, None] * r_alt / (n_t[:, None] * r_alt + n_c[:, None])
        out = k_t[:, None] * np.log(rho / rho0) + k_c[:, None] * np.log((1.0 - rho) / (1.0 - rho0))
    result: FloatArray = np.where(np.isfinite(out), out, 0.0)
    return result
