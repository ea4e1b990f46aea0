"""Change detection against a frozen reference, one CUSUM per cohort, vectorised over cohorts.

Used twice: for **baseline drift** (the control arm against its own early history, so that a change
hitting both arms is reported as drift, not as a canary regression) and for the **post-rollout**
phase (the new version at 100% against the control's last known-good statistics).

Each bank runs one-sided likelihood-ratio CUSUMs S ← max(0, S + log LR) whose null sits one margin
beyond the reference (so changes within the margin never alarm), against alternatives one, two, four
and eight steps beyond the null. The threshold h = log(K · H / α) bounds the probability of any
false alarm within H updates by α (a union over the K alternatives and the H start times of
Ville's inequality; see :mod:`rollguard.stats.cusum`); each slot has its own α (its share of the
budget, :mod:`rollguard.detect.budget`). Values are oriented: "worse" is "larger".

Three kinds of observation:

- ``bernoulli`` — rates: the events among a batch's requests (exact given the reference);
- ``exceedance`` — continuous metrics (latency, TTFT, time per output token, tokens, cost): the share
  of a batch's values above a **bar**, (1 + margin) times an upper confidence bound of the reference's
  median (an exact quantile confidence sequence on the reference's histogram, at half the slot's α).
  Under "the median moved by at most the margin" a value exceeds the bar with probability at most
  1/2 whatever the distribution, so the Bernoulli likelihood ratio against 1/2 is exact: heavy tails
  (short answers make the time per output token heavy-tailed), bursts and diurnal traffic cannot make
  it overspend, where a Gaussian chart on raw batch means (and a reference mean + 1 SE, which heavy
  tails bias low) does;
- ``gaussian`` — bounded scores (quality): batch means with σ frozen from the reference.

Updates follow the event-time grid of :mod:`rollguard.detect.onset`: a batch's log-likelihood ratios
join a pending sum per slot, folded into the statistics at most once per ``step_s`` cell (at the
first batch closing in a new cell); the null and alternatives are fixed when a slot is armed, so the
sum of a cell's ratios is the exact log-likelihood ratio of the cell. A horizon of ``horizon_s``
seconds then holds at most H = :func:`grid_updates` (``horizon_s``, ``step_s``) updates, whatever the
batch pace. Each alternative also sums the batch counts over its CUSUM window (since its statistic
was last at zero), so an alarm quotes the recent estimate that decided.

References: Page (1954); Lorden (1971); Howard & Ramdas (2022) for the quantile confidence sequence
(:mod:`rollguard.stats.quantile_cs`); the sign test's distribution-freeness: any law's median splits
it in two halves (e.g. Gibbons & Chakraborti, *Nonparametric Statistical Inference*, ch. 5).
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

KINDS: Final = ("bernoulli", "exceedance", "gaussian")
MULTIPLIERS = np.array([1.0, 2.0, 4.0, 8.0])
# The exceedance chart's null is a share of 1/2 above the bar; its alternatives 0.55, 0.6, 0.7, 0.9.
EXCEEDANCE_STEP: Final = 0.05
_ARRAYS = ("active", "null", "alt", "sigma", "reference", "bar", "threshold", "stat", "alarm", "pending",
           "pending_obs", "waiting", "window")  # fmt: skip


class CusumBank:
    """CUSUMs for one metric across cohort slots (see the module for the kinds).

    Each slot runs one CUSUM per alternative (null + step·{1, 2, 4, 8}), so small and large changes
    are both found quickly; a slot's threshold (log(K·H/α)) is fixed when it is armed.
    """

    def __init__(self, kind: str, capacity: int, horizon_updates: float, step_s: float = 0.0) -> None:
        """``horizon_updates`` the H of the thresholds; ``step_s`` the update grid (0: every
        :meth:`update` call folds)."""
        if kind not in KINDS:
            raise ValueError(kind)
        k = MULTIPLIERS.size
        self.kind = kind
        self.horizon = float(horizon_updates)
        self.step_s = float(step_s)
        self.last_cell = -math.inf
        self.pending = np.zeros((capacity, k))
        self.pending_obs = np.zeros((capacity, 2))  # n, successes or Σx of the pending batches
        self.waiting = np.zeros(capacity, dtype=bool)
        self.active = np.zeros(capacity, dtype=bool)
        self.null = np.zeros(capacity)  # p0 or mu0
        self.alt = np.zeros((capacity, k))  # p1 or mu1 per alternative
        self.sigma = np.ones(capacity)
        self.reference = np.zeros(capacity)
        self.bar = np.full(capacity, np.inf)  # exceedance: the value a batch's values are compared with
        self.threshold = np.full(capacity, np.inf)
        self.stat = np.zeros((capacity, k))
        self.alarm = np.zeros(capacity, dtype=bool)
        self.window = np.zeros((capacity, k, 2))  # n, successes or Σx over each CUSUM's window

    def grow(self, capacity: int) -> None:
        pad = capacity - self.active.size
        if pad <= 0:
            return
        k = MULTIPLIERS.size
        self.active = np.concatenate([self.active, np.zeros(pad, dtype=bool)])
        self.alarm = np.concatenate([self.alarm, np.zeros(pad, dtype=bool)])
        self.null = np.concatenate([self.null, np.zeros(pad)])
        self.reference = np.concatenate([self.reference, np.zeros(pad)])
        self.bar = np.concatenate([self.bar, np.full(pad, np.inf)])
        self.threshold = np.concatenate([self.threshold, np.full(pad, np.inf)])
        self.sigma = np.concatenate([self.sigma, np.ones(pad)])
        self.alt = np.concatenate([self.alt, np.zeros((pad, k))])
        self.stat = np.concatenate([self.stat, np.zeros((pad, k))])
        self.pending = np.concatenate([self.pending, np.zeros((pad, k))])
        self.pending_obs = np.concatenate([self.pending_obs, np.zeros((pad, 2))])
        self.waiting = np.concatenate([self.waiting, np.zeros(pad, dtype=bool)])
        self.window = np.concatenate([self.window, np.zeros((pad, k, 2))])

    def arm(
        self, slot: int, reference: float, delta: float, alpha: float, sigma: float = 1.0, bar: float = np.inf
    ) -> None:
        """Start watching ``slot`` at false-alarm level ``alpha``: null = reference + delta,
        alternatives = null + delta·{1, 2, 4, 8} (exceedance: null 1/2 above ``bar``, alternatives
        1/2 + :data:`EXCEEDANCE_STEP`·{1, 2, 4, 8}; ``reference`` is then the reference's median)."""
        if self.kind == "exceedance":
            null, delta = 0.5, EXCEEDANCE_STEP
        else:
            delta = max(delta, 1e-12)
            null = reference + delta
        alts = null + delta * MULTIPLIERS
        if self.kind != "gaussian":
            null = min(max(null, 1e-6), 1 - 1e-6)
            alts = np.minimum(alts, 1 - 1e-7)
            alts = np.where(alts > null, alts, null)  # no room above the null: that alternative is idle
        else:
            self.sigma[slot] = max(sigma, 1e-12)
        self.null[slot] = null
        self.alt[slot] = alts
        self.reference[slot] = reference
        self.bar[slot] = bar
        self.threshold[slot] = cusum_threshold(self.horizon, alpha) + math.log(MULTIPLIERS.size)
        self.stat[slot] = 0.0
        self.pending[slot] = 0.0
        self.pending_obs[slot] = 0.0
        self.window[slot] = 0.0
        self.waiting[slot] = False
        self.alarm[slot] = False
        self.active[slot] = True

    def disarm(self, slot: int) -> None:
        self.active[slot] = False
        self.alarm[slot] = False
        self.stat[slot] = 0.0
        self.pending[slot] = 0.0
        self.pending_obs[slot] = 0.0
        self.window[slot] = 0.0
        self.waiting[slot] = False

    def update(self, k_or_mean: FloatArray, n: FloatArray, now: float = math.inf) -> BoolArray:
        """Add one batch per slot (events ``n``; successes or oriented mean) closing at event time
        ``now``, folding the pending evidence if the grid allows; returns new alarms."""
        use = self.active & (n > 0)
        if use.any():
            self.pending += self._llr(use, k_or_mean, n)
            total = k_or_mean * n if self.kind == "gaussian" else k_or_mean
            self.pending_obs += np.where(use[:, None], np.stack([n, total], axis=1), 0.0)
            self.waiting |= use
        due = self.step_s <= 0 or math.floor(now / self.step_s) > self.last_cell
        if not due or not self.waiting.any():
            return np.zeros_like(self.alarm)
        if self.step_s > 0:
            self.last_cell = math.floor(now / self.step_s)
        folded = self.waiting & self.active
        grown = self.stat + self.pending
        restart = folded[:, None] & (grown <= 0.0)
        extend = folded[:, None] & ~restart
        self.stat = np.where(folded[:, None], np.maximum(0.0, grown), self.stat)
        added = self.window + np.where(extend[:, :, None], self.pending_obs[:, None, :], 0.0)
        self.window = np.where(restart[:, :, None], 0.0, added)
        self.pending[:] = 0.0
        self.pending_obs[:] = 0.0
        self.waiting = np.zeros_like(self.waiting)
        top = self.stat.max(axis=1)
        fired: BoolArray = folded & ~self.alarm & (top >= self.threshold)
        cleared = self.alarm & folded & (top <= 0.0)
        self.alarm = (self.alarm | fired) & ~cleared
        return fired

    def _llr(self, use: BoolArray, k_or_mean: FloatArray, n: FloatArray) -> FloatArray:
        x = k_or_mean[:, None]
        nn = n[:, None]
        if self.kind != "gaussian":
            p0 = np.where(use, self.null, 0.5)[:, None]
            p1 = np.where(use[:, None], self.alt, 0.5)
            llr = x * np.log(p1 / p0) + (nn - x) * np.log((1 - p1) / (1 - p0))
        else:
            mu0 = self.null[:, None]
            mid = (mu0 + self.alt) / 2.0
            llr = nn * (self.alt - mu0) / (self.sigma**2)[:, None] * (x - mid)
        out: FloatArray = np.where(use[:, None], llr, 0.0)
        return out

    def exceedances(
        self, values: FloatArray, slots: npt.NDArray[np.int64], keep: BoolArray
    ) -> tuple[FloatArray, FloatArray]:
        """Per slot, how many of a batch's values exceed the slot's bar, and how many there were:
        ``values``/``slots`` one entry per (value, cohort slot) membership, ``keep`` the ones to count
        (the watched arm, a value present)."""
        cap = self.active.size
        hit = keep & (values > self.bar[slots])
        k = np.bincount(slots[hit], minlength=cap).astype(np.float64)
        n = np.bincount(slots[keep], minlength=cap).astype(np.float64)
        return k, n

    def cleared(self, before: BoolArray) -> BoolArray:
        return before & ~self.alarm

    def evidence(self, slot: int) -> dict[str, Any]:
        """Why a slot alarmed (or cleared): the chart against its threshold, and the window's estimate
        (``recent``: the share of values above the bar, the rate, or the mean) over ``recent_n``."""
        k = int(np.argmax(self.stat[slot]))
        n, total = self.window[slot, k].tolist()
        out = {
            "method": f"cusum-{self.kind}",
            "reference": float(self.reference[slot]),
            "null": float(self.null[slot]),
            "alternative": float(self.alt[slot, k]),
            "statistic": float(self.stat[slot, k]),
            "threshold": float(self.threshold[slot]),
            "grid_s": self.step_s,
            "recent_n": int(n),
            "recent": total / n if n > 0 else math.nan,
        }
        if self.kind == "exceedance":
            out["bar"] = float(self.bar[slot])
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "horizon": self.horizon,
            "step_s": self.step_s,
            "last_cell": self.last_cell if math.isfinite(self.last_cell) else None,
            **{name: _plain(getattr(self, name)) for name in _ARRAYS},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CusumBank:
        cap = len(state["active"])
        bank = cls(str(state["kind"]), cap, float(state["horizon"]), float(state["step_s"]))
        last = state.get("last_cell")
        # A grid cell is a whole number: restored as one, a state saves to the same bytes again.
        bank.last_cell = -math.inf if last is None else int(last)
        k = MULTIPLIERS.size
        for name in ("null", "sigma", "reference", "bar", "threshold"):
            setattr(
                bank, name, np.asarray([math.inf if x is None else x for x in state[name]], dtype=np.float64)
            )
        bank.alt = np.asarray(state["alt"], dtype=np.float64).reshape(cap, k)
        bank.stat = np.asarray(state["stat"], dtype=np.float64).reshape(cap, k)
        bank.pending = np.asarray(state["pending"], dtype=np.float64).reshape(cap, k)
        bank.pending_obs = np.asarray(state["pending_obs"], dtype=np.float64).reshape(cap, 2)
        bank.window = np.asarray(state["window"], dtype=np.float64).reshape(cap, k, 2)
        bank.waiting = np.asarray(state["waiting"], dtype=bool)
        bank.active = np.asarray(state["active"], dtype=bool)
        bank.alarm = np.asarray(state["alarm"], dtype=bool)
        return bank


def _plain(arr: npt.NDArray[Any]) -> Any:
    """An array as JSON-compatible lists (infinities, which only bars and thresholds hold, as null)."""
    if arr.dtype.kind == "f" and arr.ndim == 1 and not np.isfinite(arr).all():
        return [x if math.isfinite(x) else None for x in arr.tolist()]
    return arr.tolist()


def cusum_threshold(horizon_updates: float, alpha: float) -> float:
    """h = log(horizon / α): at most α chance of any false alarm within ``horizon`` updates."""
    return math.log(max(horizon_updates, 1.0) / alpha) if alpha > 0 else math.inf


def grid_updates(horizon_s: float, step_s: float) -> float:
    """Most updates a detector folding at most once per ``step_s`` grid cell makes in ``horizon_s``
    seconds of event time: ⌊horizon_s / step_s⌋ + 1 (any window of that length meets that many cells).

    >>> grid_updates(14400.0, 30.0), grid_updates(100.0, 30.0)
    (481.0, 4.0)
    """
    if step_s <= 0:
        raise ValueError("step_s must be positive")
    return float(math.floor(horizon_s / step_s) + 1)
