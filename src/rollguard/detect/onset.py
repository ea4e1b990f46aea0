"""Onset detection: a regression that starts in the middle of a canary, seen batch by batch.

The cumulative confidence sequence answers "is the canary worse, on everything seen so far?"; a
regression that starts at minute 10 of a 30-minute canary is diluted there by the minutes before it.
This detector watches the *recent* evidence instead: change detection on the per-batch paired
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

The detector is a Shiryaev–Roberts mixture e-detector over the alternatives step·{1, 2, 4, …, 32}
(:class:`~rollguard.stats.change_detector.MixtureChangeDetector`), the step being one margin: the
ladder reaches 32 margins because a critical regression is often far beyond its margin (errors 1% →
15% is 28 margins of 0.5 pp), and an alternative far below the truth gains evidence slowly — with
a ladder up to 8 margins that spike paged in 150 s instead of 120 s, and a team that narrowed its
margin to 0.2 pp got *slower* pages for a 1.5% → 8% spike (585 s) than with 0.5 pp (495 s; 390 s with
the longer ladder). Each extra alternative costs log(6/4) ≈ 0.4 nats of threshold, spread over all
of them (the mixture is their plain average). Each alternative's statistic sums
the likelihood ratios of every possible start, the alternatives are averaged, and an alarm comes when
the average reaches H/α, h = log(H/α) with H the horizon in updates. That bounds the probability of
a false alarm within the horizon by α (exactly for the counts given the plug-in control rate;
asymptotically for the block means — the A/A benchmark checks both), and it alarms no later than a
CUSUM that pays a union over starts *and* alternatives (h = log(K·H/α)): the change-point union is
paid once. The cohort's α is its share of the test's budget (:mod:`rollguard.detect.budget`: by
traffic share), half of it here.

**The update grid.** The union is over *updates*, so H must count them honestly. Batches close at a
traffic-dependent pace (every ``batch_seconds`` at high traffic, up to ``max_batch_seconds`` at low),
so the detector does not update per batch: each batch's log-likelihood ratios are added to a pending
sum per slot and alternative, and the pending sums are folded into the statistics at most once per
cell of a fixed event-time grid of ``step_s`` seconds (cell = ⌊now / step_s⌋), at the first batch
that closes in a new cell. Summing the per-batch ratios of a cell is exact: each is a conditional
likelihood ratio given everything before it (the plug-in control rate, the tail threshold and the
block variance are read before the batch joins the running statistics), so the product over a cell
is again a non-negative supermartingale increment under H0. Within ``horizon_s`` seconds of event
time there are at most H = ⌊horizon_s / step_s⌋ + 1 updates, and that is the H in h. Mean blocks
complete only at a grid update, for the same reason.

**The window that decided.** Each update also brings the counts behind it (requests and events or
values per arm); they are summed over the leading alternative's CUSUM window (the updates since its
CUSUM was last at zero), so an alarm quotes the recent canary against the recent control of that
window — what decided — rather than the cumulative figures the regression is diluted in.

References: Page (1954), "Continuous inspection schemes"; Lorden (1971); Shiryaev (1963) and Roberts
(1966) for the Shiryaev–Roberts statistic; Shin, Ramdas & Rinaldo (2022), "E-detectors"
(arXiv:2203.03532) for e-detectors with several alternatives.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rollguard.stats.change_detector import MixtureChangeDetector, mixture_threshold, widen_alternatives

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
MULTIPLIERS: Final = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
# Per update and slot: canary n, canary sum (events or values), control n, control sum.
OBS_WIDTH: Final = 4


class PairedChangeDetector:
    """Paired-contrast change detection for one metric across cohort slots, with a few alternatives.

    Evidence is folded on an event-time grid of ``step_s`` seconds (see the module docstring): pass
    the batch's event time ``now`` to :meth:`update_llr` / :meth:`update`, and gate block completion
    with :meth:`due`. ``horizon_updates`` is the H of the threshold: build it with
    :func:`rollguard.detect.drift.grid_updates` from the horizon in seconds and the same ``step_s``.
    Each call takes the slots' α (``alphas``, from the budget): the threshold is log(H/α) per slot.
    """

    def __init__(self, capacity: int, horizon_updates: float, step_s: float = 0.0) -> None:
        """``step_s = 0`` folds every call at once (one update per call: H must then count calls)."""
        self.horizon = float(horizon_updates)
        self.step_s = float(step_s)
        self.last_cell = -math.inf  # grid cell of the last fold
        self.sr = MixtureChangeDetector(capacity, MULTIPLIERS.size, OBS_WIDTH)
        self.pending = np.zeros((capacity, MULTIPLIERS.size))  # log LRs not yet folded
        self.pending_obs = np.zeros((capacity, OBS_WIDTH))  # their counts and sums
        self.waiting = np.zeros(capacity, dtype=bool)  # slots with pending evidence
        self.alarm = np.zeros(capacity, dtype=bool)
        self.updates = np.zeros(capacity, dtype=np.int64)  # folds per slot
        self.block = np.zeros((capacity, 2, 3))  # pending block sums per arm: n, Σx, Σx²

    def grow(self, capacity: int) -> None:
        pad = capacity - self.alarm.size
        if pad > 0:
            self.sr.grow(capacity)
            self.pending = np.concatenate([self.pending, np.zeros((pad, MULTIPLIERS.size))])
            self.pending_obs = np.concatenate([self.pending_obs, np.zeros((pad, OBS_WIDTH))])
            self.waiting = np.concatenate([self.waiting, np.zeros(pad, dtype=bool)])
            self.alarm = np.concatenate([self.alarm, np.zeros(pad, dtype=bool)])
            self.updates = np.concatenate([self.updates, np.zeros(pad, dtype=np.int64)])
            self.block = np.concatenate([self.block, np.zeros((pad, 2, 3))])

    def reset(self, slot: int) -> None:
        self.sr.reset(slot)
        self.pending[slot] = 0.0
        self.pending_obs[slot] = 0.0
        self.waiting[slot] = False
        self.alarm[slot] = False
        self.updates[slot] = 0
        self.block[slot] = 0.0

    def threshold(self, alphas: FloatArray) -> FloatArray:
        """log(H/α) per slot (+inf where a slot has no α)."""
        return mixture_threshold(self.horizon, alphas)

    def cell(self, now: float) -> float:
        return math.floor(now / self.step_s) if self.step_s > 0 else math.inf

    def due(self, now: float) -> bool:
        """Whether a batch closing at event time ``now`` may fold evidence (first one in a new cell)."""
        return self.step_s <= 0 or self.cell(now) > self.last_cell

    def add_to_block(self, use: BoolArray, sums: FloatArray, block_min: int, now: float) -> BoolArray:
        """Pool a batch's per-arm sums (cap, 2, 3) into the pending blocks of the ``use`` slots;
        returns the slots whose block now has ``block_min`` observations in both arms, if the grid
        allows an update at ``now`` (read :attr:`block` for them, then :meth:`clear_block`)."""
        self.block[use] += sums[use]
        ready: BoolArray = use & (self.block[:, 0, 0] >= block_min) & (self.block[:, 1, 0] >= block_min)
        return ready if self.due(now) else np.zeros_like(ready)

    def clear_block(self, ready: BoolArray) -> None:
        self.block[ready] = 0.0

    def update(
        self,
        use: BoolArray,
        contrast: FloatArray,
        variance: FloatArray,
        step: FloatArray,
        obs: FloatArray,
        now: float,
        alphas: FloatArray,
    ) -> BoolArray:
        """Fold one block: oriented contrasts ``d_b``, their variances ``v_b``, the margin ``step`` and
        the block's counts and sums ``obs`` per slot (only where ``use``); returns new alarms."""
        delta = step[:, None] * MULTIPLIERS[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            llr = (delta * contrast[:, None] - 0.5 * delta * delta) / variance[:, None]
        return self.update_llr(use, llr, obs, now, alphas)

    def update_llr(
        self, use: BoolArray, llr: FloatArray, obs: FloatArray, now: float, alphas: FloatArray
    ) -> BoolArray:
        """Add per-slot log-likelihood ratios (cap, K), one per alternative, and the batch's counts and
        sums (cap, 4) to the pending sums; fold them if the grid allows an update at ``now``; returns
        the slots that alarmed."""
        if use.any():
            self.pending += np.where(use[:, None] & np.isfinite(llr), llr, 0.0)
            self.pending_obs += np.where(use[:, None], obs, 0.0)
            self.waiting |= use
        if not self.due(now) or not self.waiting.any():
            return np.zeros_like(self.alarm)
        self.last_cell = self.cell(now)
        folded = self.waiting
        log_m = self.sr.fold(folded, self.pending, self.pending_obs)
        self.updates += folded
        self.pending[:] = 0.0
        self.pending_obs[:] = 0.0
        self.waiting = np.zeros_like(self.waiting)
        fired: BoolArray = folded & ~self.alarm & (log_m >= self.threshold(alphas))
        self.alarm |= fired
        return fired

    def evidence(self, slot: int, step: float, alpha: float) -> dict[str, Any]:
        """Why a slot alarmed: the statistic against its threshold, the leading alternative, and the
        recent window's counts and estimates (``recent_*``; canary then control)."""
        k = self.sr.leading(slot)
        n_t, s_t, n_c, s_c = self.sr.window_of(slot).tolist()
        return {
            "method": "paired-sr-mixture",
            "window": "recent",
            "statistic": float(self.sr.log_m[slot]),
            "threshold": float(self.threshold(np.array([alpha]))[0]),
            "alternative": float(step * MULTIPLIERS[k]),
            "updates": int(self.updates[slot]),
            "grid_s": self.step_s,
            "recent_s": self.sr.span_of(slot) * self.step_s,
            "recent_n_canary": int(n_t),
            "recent_n_control": int(n_c),
            "recent_canary": s_t / n_t if n_t > 0 else math.nan,
            "recent_control": s_c / n_c if n_c > 0 else math.nan,
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "step_s": self.step_s,
            "last_cell": _finite_or_none(self.last_cell),
            "sr": self.sr.to_state(),
            "pending": self.pending.tolist(),
            "pending_obs": self.pending_obs.tolist(),
            "waiting": self.waiting.tolist(),
            "alarm": self.alarm.tolist(),
            "updates": self.updates.tolist(),
            "block": self.block.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PairedChangeDetector:
        cap = len(state["alarm"])
        obj = cls(cap, float(state["horizon"]), float(state["step_s"]))
        last = state.get("last_cell")
        # A grid cell is a whole number: restored as one, a state saves to the same bytes again.
        obj.last_cell = -math.inf if last is None else int(last)
        obj.sr = MixtureChangeDetector.from_state(state["sr"], MULTIPLIERS.size, OBS_WIDTH)
        obj.pending = widen_alternatives(state["pending"], cap, MULTIPLIERS.size)
        obj.pending_obs = np.asarray(state["pending_obs"], dtype=np.float64).reshape(-1, OBS_WIDTH)
        obj.waiting = np.asarray(state["waiting"], dtype=bool)
        obj.alarm = np.asarray(state["alarm"], dtype=bool)
        obj.updates = np.asarray(state["updates"], dtype=np.int64)
        obj.block = np.asarray(state["block"], dtype=np.float64).reshape(-1, 2, 3)
        return obj


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


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
