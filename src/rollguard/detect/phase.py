"""A rollout's phase: what the arms present say about promotion, and the baselines frozen at promotion.

**canary** (control and canary concurrent) compares the arms; **post_rollout** (the new version at 100%)
compares each cohort against the control's statistics frozen at promotion. A rollout in the ``auto``
phase is promoted when its events say so (a canary request with ``canary_weight`` 1) or when the arms
present do: the control silent for ``promotion_silence_s`` of event time while at least
``min_samples`` canary requests arrived (see :class:`rollguard.settings.config.EngineSettings`); an
operator or controller can promote it too (``Engine.promote``).
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np

from rollguard.detect.arrays import ArmRead
from rollguard.detect.batch_columns import ARM_CANARY, EventColumns, FloatArray
from rollguard.stats import LogHistogram

CANARY: Final = "canary"
POST_ROLLOUT: Final = "post_rollout"


class RolloutPhase:
    """The phase, the arms-present bookkeeping of the ``auto`` phase, and the frozen baselines."""

    def __init__(self, configured: str, promotion_silence_s: float, min_samples: int) -> None:
        self.phase = CANARY if configured == "auto" else configured
        self.auto = configured == "auto"
        self.promotion_silence_s = promotion_silence_s
        self.min_samples = min_samples
        self.promoted_at: float | None = None
        # Which arms are present: the newest control request and the canary requests since.
        self.last_control_ts = -math.inf
        self.canary_run = 0
        # Frozen at promotion: each mean-type test's control (n, mean, variance) per slot, and the
        # control's tail histogram per (slot, field).
        self.baseline: dict[str, tuple[FloatArray, FloatArray, FloatArray]] = {}
        self.baseline_hists: dict[tuple[int, str], LogHistogram] = {}

    @property
    def post(self) -> bool:
        return self.phase == POST_ROLLOUT

    def promotion_due(self, cols: EventColumns, now: float) -> str:
        """Why this closed batch promotes an ``auto`` rollout still in its canary phase ("" if not).

        The arms present are tracked in every phase, so a restored or promoted rollout keeps counting.
        """
        reason = self._arms_present(cols, now)
        return reason if self.auto and self.phase == CANARY else ""

    def _arms_present(self, cols: EventColumns, now: float) -> str:
        ts = cols.ts
        canary = cols.arm == ARM_CANARY
        if (cols.weights[canary] >= 1.0).any():
            return "canary_weight reached 1.0"
        if not canary.all() and (newest := float(ts[~canary].max())) > self.last_control_ts:
            self.last_control_ts = newest
            self.canary_run = 0
        self.canary_run += int((canary & (ts > self.last_control_ts)).sum())
        silence = now - self.last_control_ts
        if not (math.isfinite(silence) and silence >= self.promotion_silence_s):
            return ""
        if self.canary_run < self.min_samples:
            return ""
        return f"no control request for {silence:.0f} s while {self.canary_run} canary requests arrived"

    def enter_post_rollout(self, now: float) -> None:
        self.phase = POST_ROLLOUT
        self.promoted_at = now

    def freeze(self, name: str, control: ArmRead) -> None:
        """Keep a copy of one test's control statistics as its post-rollout baseline."""
        n, mean, var = control
        self.baseline[name] = (n.copy(), mean.copy(), var.copy())

    def freeze_hists(self, control: dict[tuple[int, str], LogHistogram]) -> None:
        """Keep the control's tail histograms, by (slot, field), as the post-rollout baselines."""
        self.baseline_hists.update(control)

    def baseline_of(self, name: str, cap: int) -> ArmRead | None:
        """The frozen control of one test, padded to ``cap`` slots (None: the test began after promotion)."""
        frozen = self.baseline.get(name)
        if frozen is None:
            return None
        n, mean, var = frozen
        return _fit(n, cap), _fit(mean, cap), _fit(var, cap)

    def evaluation_over(self, now: float, post_rollout_period_s: float) -> bool:
        """Whether the post-rollout watch has ended (``post_rollout_period_s`` after promotion)."""
        return self.promoted_at is not None and now - self.promoted_at > post_rollout_period_s

    def to_state(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "promoted_at": self.promoted_at,
            "last_control_ts": self.last_control_ts if math.isfinite(self.last_control_ts) else None,
            "canary_run": self.canary_run,
            "baseline": {k: [a.tolist() for a in v] for k, v in self.baseline.items()},
            "baseline_hists": [[s, f, h.to_state()] for (s, f), h in self.baseline_hists.items()],
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], configured: str, promotion_silence_s: float, min_samples: int
    ) -> RolloutPhase:
        phase = cls(configured, promotion_silence_s, min_samples)
        phase.phase = str(state["phase"])
        phase.promoted_at = state["promoted_at"]
        last = state.get("last_control_ts")
        phase.last_control_ts = -math.inf if last is None else float(last)
        phase.canary_run = int(state.get("canary_run", 0))
        phase.baseline = {
            k: (
                np.asarray(n, dtype=np.float64),
                np.asarray(m, dtype=np.float64),
                np.asarray(v, dtype=np.float64),
            )
            for k, (n, m, v) in state["baseline"].items()
        }
        phase.baseline_hists = {
            (int(s), str(f)): LogHistogram.from_state(h) for s, f, h in state["baseline_hists"]
        }
        return phase


def _fit(arr: FloatArray, cap: int) -> FloatArray:
    if arr.size >= cap:
        return arr[:cap]
    return np.concatenate([arr, np.zeros(cap - arr.size)])
