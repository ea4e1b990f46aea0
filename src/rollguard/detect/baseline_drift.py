"""Baseline drift and post-rollout change detection of mean-type metrics, per cohort slot.

Two CUSUM banks per metric (:class:`~rollguard.detect.drift.CusumBank`), both against a frozen
reference, plug-in estimate plus one standard error, oriented so that "worse" is "larger":

- **drift** (canary phase): the control against its own early history, armed once a cohort has
  ``baseline_window_s`` of history and ``min_samples`` control values. A change that hits both arms
  shows here as drift, never as a canary regression; drift clears when the control returns.
- **post** (post-rollout phase): the new version, now at 100%, against the control's statistics
  frozen at promotion; an alarm marks the metric regressed.

Thresholds count updates on the event-time grid: h = log(H/α) with H = grid cells within
``drift_horizon_s`` (at the segment α) or ``post_rollout_period_s`` (at half of it: the other half is
the cumulative comparison's).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from rollguard.detect.arrays import ArmRead, BatchArrays
from rollguard.detect.batch_columns import ARM_CANARY, ARM_CONTROL, FloatArray
from rollguard.detect.comparisons import contrast_scale
from rollguard.detect.drift import CusumBank, cusum_threshold, grid_updates
from rollguard.detect.mean_tests import REGRESSED, MeanTest
from rollguard.detect.slot_change import SlotChange, round_evidence
from rollguard.domain.cohorts import Cohort
from rollguard.domain.metrics import MetricSpec
from rollguard.domain.verdicts import DriftState
from rollguard.settings.engine import EngineSettings


class BaselineWatch:
    """The drift and post-rollout CUSUM banks of every mean-type metric, by metric name."""

    def __init__(self, engine: EngineSettings) -> None:
        self.min_samples = engine.min_samples
        self.baseline_window_s = engine.baseline_window_s
        self.grid_s = engine.cusum_grid_s
        self.drift_horizon = grid_updates(engine.drift_horizon_s, self.grid_s)
        self.post_horizon = grid_updates(engine.post_rollout_period_s, self.grid_s)
        self.drift: dict[str, CusumBank] = {}
        self.post: dict[str, CusumBank] = {}

    def add(self, test: MeanTest, cap: int) -> None:
        kind = "bernoulli" if test.spec.kind == "rate" else "gaussian"
        name, a_seg = test.spec.name, test.alpha_segment
        self.drift[name] = CusumBank(kind, cap, cusum_threshold(self.drift_horizon, a_seg), self.grid_s)
        self.post[name] = CusumBank(kind, cap, cusum_threshold(self.post_horizon, a_seg / 2), self.grid_s)

    def grow(self, cap: int) -> None:
        for bank in (*self.drift.values(), *self.post.values()):
            bank.grow(cap)

    def forget(self, slot: int) -> None:
        for bank in (*self.drift.values(), *self.post.values()):
            bank.disarm(slot)

    def update_drift(
        self,
        test: MeanTest,
        now: float,
        live: npt.NDArray[np.bool_],
        batch: BatchArrays,
        control: ArmRead,
        cohorts: Iterable[Cohort],
    ) -> list[SlotChange]:
        """Canary phase: arm the cohorts whose baseline is ready, fold the batch's control values in;
        the slots that drifted or came back."""
        spec = test.spec
        bank = self.drift[spec.name]
        self._arm_drift(bank, spec, now, control, cohorts)
        before = bank.alarm.copy()
        fired = bank.update(*_oriented(spec, *batch.values(spec, ARM_CONTROL)), now)
        out = [self._drift_change(bank, slot, spec.name, DriftState.DRIFTED)
               for slot in np.flatnonzero(fired & live).tolist()]  # fmt: skip
        out += [self._drift_change(bank, slot, spec.name, DriftState.STABLE)
                for slot in np.flatnonzero(bank.cleared(before) & live).tolist()]  # fmt: skip
        return out

    def _arm_drift(
        self, bank: CusumBank, spec: MetricSpec, now: float, control: ArmRead, cohorts: Iterable[Cohort]
    ) -> None:
        """Freeze a cohort's control reference once it has a baseline window and enough samples."""
        n_c, mean_c, var_c = control
        s = 1.0 if spec.higher_is_worse else -1.0
        for c in cohorts:
            slot = c.slot
            if bank.active[slot] or n_c[slot] < self.min_samples:
                continue
            born = c.born if math.isfinite(c.born) else now
            if slot == 0 and not math.isfinite(c.born):
                c.born = now  # the whole rollout's history starts with its first analysed batch
                continue
            if now - born < self.baseline_window_s:
                continue
            scale = contrast_scale(spec, float(mean_c[slot]))
            reference = s * mean_c[slot] + math.sqrt(var_c[slot] / n_c[slot])  # plug-in + 1 SE (oriented)
            bank.arm(slot, float(reference), scale, math.sqrt(max(var_c[slot], 1e-12)))

    @staticmethod
    def _drift_change(bank: CusumBank, slot: int, metric: str, state: DriftState) -> SlotChange:
        previous = DriftState.STABLE if state is DriftState.DRIFTED else DriftState.DRIFTED
        evidence = round_evidence(bank.evidence(slot))
        evidence["arm"] = "control"
        return SlotChange("drift", slot, metric, state.value, previous.value, evidence)

    def arm_post(self, test: MeanTest, control: ArmRead, slots: int) -> None:
        """At promotion: watch each of the first ``slots`` slots with ``min_samples`` control values
        against the control's statistics as they stand."""
        spec = test.spec
        n, mean, var = control
        s = 1.0 if spec.higher_is_worse else -1.0
        bank = self.post[spec.name]
        for slot in range(slots):
            if n[slot] < self.min_samples:
                continue
            scale = contrast_scale(spec, float(mean[slot]))
            reference = s * mean[slot] + math.sqrt(var[slot] / n[slot])  # plug-in + 1 SE (oriented)
            bank.arm(slot, float(reference), scale, math.sqrt(max(var[slot], 1e-12)))

    def update_post(
        self,
        test: MeanTest,
        now: float,
        live: npt.NDArray[np.bool_],
        batch: BatchArrays,
        n_canary: FloatArray,
    ) -> list[SlotChange]:
        """Post-rollout phase: fold the batch's values of the new version in; the slots that regressed."""
        spec = test.spec
        bank = self.post[spec.name]
        fired = bank.update(*_oriented(spec, *batch.values(spec, ARM_CANARY)), now)
        out: list[SlotChange] = []
        for slot in np.flatnonzero(fired & live).tolist():
            if test.state[slot] == REGRESSED:
                continue
            prev = test.mark_regressed(slot)
            evidence = bank.evidence(slot)
            evidence.update({"n_canary": int(n_canary[slot]), "alpha": test.alpha(slot) / 2})
            out.append(SlotChange("verdict", slot, spec.name, "regressed", prev, round_evidence(evidence)))
        return out

    def drift_state(self, name: str, slot: int) -> str | None:
        """The control's drift state of one slot (None until its reference is frozen, or not a mean)."""
        bank = self.drift.get(name)
        if bank is None or not bank.active[slot]:
            return None
        return (DriftState.DRIFTED if bank.alarm[slot] else DriftState.STABLE).value

    def to_state(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"drift": self.drift[name].to_state(), "post": self.post[name].to_state()}
            for name in self.drift
        }

    @classmethod
    def from_state(cls, state: dict[str, dict[str, Any]], engine: EngineSettings) -> BaselineWatch:
        watch = cls(engine)
        for name, saved in state.items():
            watch.drift[name] = CusumBank.from_state(saved["drift"])
            watch.post[name] = CusumBank.from_state(saved["post"])
        return watch


def _oriented(spec: MetricSpec, k_or_mean: FloatArray, n: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Rates are counts (the Bernoulli bank orients them by its null); means flip sign when higher is
    better, so that "worse" is "larger"."""
    if spec.kind == "rate":
        return k_or_mean, n
    s = 1.0 if spec.higher_is_worse else -1.0
    return s * k_or_mean, n
