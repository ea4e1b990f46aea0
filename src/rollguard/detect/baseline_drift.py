"""Baseline drift and post-rollout change detection of mean-type metrics, per cohort slot.

Two CUSUM banks per metric (:class:`~rollguard.detect.drift.CusumBank`), both against a frozen
reference, oriented so that "worse" is "larger". Continuous metrics (latency, TTFT, time per output
token, tokens, cost) are charted by the share of values above (1 + margin) × an upper confidence bound
of the reference's median — exact whatever the tails (see :mod:`rollguard.detect.drift`); rates by
their events against the reference rate plus one standard error; quality scores by their batch means:

- **drift** (canary phase): the control against its own early history, armed once a cohort has
  ``baseline_window_s`` of history and ``min_samples`` control values. A change that hits both arms
  shows here as drift, never as a canary regression; drift clears when the control returns.
- **post** (post-rollout phase): the new version, now at 100%, against the control's statistics
  frozen at promotion; an alarm marks the metric regressed.

Thresholds count updates on the event-time grid: h = log(K·H/α) with H = grid cells within
``drift_horizon_s`` or ``post_rollout_period_s``. α per slot: the drift charts spend half of the test's
α in that slot (:func:`rollguard.detect.budget.drift_alpha_total`), the post-rollout charts the half
the cumulative comparison leaves; an exceedance chart gives half of its α to the reference's median
bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rollguard.detect.arrays import ArmRead, BatchArrays, HistPair
from rollguard.detect.batch_columns import ARM_CANARY, ARM_CONTROL, FloatArray, IntArray
from rollguard.detect.comparisons import contrast_scale
from rollguard.detect.drift import CusumBank, grid_updates
from rollguard.detect.mean_tests import REGRESSED, MeanTest
from rollguard.detect.slot_change import SlotChange, round_evidence
from rollguard.domain.cohorts import Cohort
from rollguard.domain.metrics import CONTINUOUS_FIELDS, MetricSpec
from rollguard.domain.verdicts import DriftState
from rollguard.settings.engine import EngineSettings
from rollguard.stats import LogHistogram, quantile_cs


@dataclass(slots=True)
class BaselineValues:
    """A closed batch's raw values by cohort membership: ``rows`` (slot·2 + arm) and ``members`` (the
    event) per membership, ``continuous`` the value columns (NaN where a request did not succeed)."""

    rows: IntArray
    members: IntArray
    continuous: dict[str, FloatArray]

    def of(self, field: str, arm: int) -> tuple[FloatArray, IntArray, npt.NDArray[np.bool_]]:
        """The memberships' values of one field, their slots, and which to count (that arm, present)."""
        values = self.continuous[field][self.members]
        keep = ((self.rows % 2) == arm) & ~np.isnan(values)
        return values, self.rows // 2, keep


def chart_kind(spec: MetricSpec) -> str:
    """``bernoulli`` for rates, ``exceedance`` for continuous metrics, ``gaussian`` for scores."""
    if spec.kind == "rate":
        return "bernoulli"
    return "exceedance" if spec.field in CONTINUOUS_FIELDS else "gaussian"


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
        kind, name = chart_kind(test.spec), test.spec.name
        self.drift[name] = CusumBank(kind, cap, self.drift_horizon, self.grid_s)
        self.post[name] = CusumBank(kind, cap, self.post_horizon, self.grid_s)

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
        values: BaselineValues,
        control: ArmRead,
        hists: dict[str, list[HistPair | None]],
        cohorts: Iterable[Cohort],
    ) -> list[SlotChange]:
        """Canary phase: arm the cohorts whose baseline is ready, fold the batch's control values in;
        the slots that drifted or came back."""
        spec = test.spec
        bank = self.drift[spec.name]
        self._arm_drift(bank, test, now, control, hists, cohorts)
        before = bank.alarm.copy()
        fired = bank.update(*self._observed(bank, spec, batch, values, ARM_CONTROL), now)
        out = [self._drift_change(bank, slot, spec, DriftState.DRIFTED)
               for slot in np.flatnonzero(fired & live).tolist()]  # fmt: skip
        out += [self._drift_change(bank, slot, spec, DriftState.STABLE)
                for slot in np.flatnonzero(bank.cleared(before) & live).tolist()]  # fmt: skip
        return out

    @staticmethod
    def _observed(
        bank: CusumBank, spec: MetricSpec, batch: BatchArrays, values: BaselineValues, arm: int
    ) -> tuple[FloatArray, FloatArray]:
        """What one batch brings to a chart: exceedances of the bar, or events / means per slot."""
        if bank.kind == "exceedance":
            return bank.exceedances(*values.of(spec.field, arm))
        return _oriented(spec, *batch.values(spec, arm))

    def _arm_drift(
        self,
        bank: CusumBank,
        test: MeanTest,
        now: float,
        control: ArmRead,
        hists: dict[str, list[HistPair | None]],
        cohorts: Iterable[Cohort],
    ) -> None:
        """Freeze a cohort's control reference once it has a baseline window and enough samples."""
        n_c, mean_c, var_c = control
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
            pairs = hists.get(test.spec.field, [])
            entry = pairs[slot] if slot < len(pairs) else None
            hist = entry[ARM_CONTROL] if entry is not None else None
            _arm(bank, test.spec, slot, test.alpha(slot) / 2, float(n_c[slot]), float(mean_c[slot]),
                 float(var_c[slot]), hist)  # fmt: skip

    @staticmethod
    def _drift_change(bank: CusumBank, slot: int, spec: MetricSpec, state: DriftState) -> SlotChange:
        previous = DriftState.STABLE if state is DriftState.DRIFTED else DriftState.DRIFTED
        evidence = round_evidence(bank.evidence(slot))
        evidence.update({"arm": "control", "margin": spec.margin, "margin_relative": spec.relative})
        return SlotChange("drift", slot, spec.name, state.value, previous.value, evidence)

    def arm_post(
        self, test: MeanTest, control: ArmRead, slots: int, frozen: dict[tuple[int, str], LogHistogram]
    ) -> None:
        """At promotion: watch each of the first ``slots`` slots with ``min_samples`` control values
        against the control's statistics as they stand (``frozen``: its histograms, by slot and field)."""
        spec = test.spec
        n, mean, var = control
        bank = self.post[spec.name]
        for slot in range(slots):
            if n[slot] < self.min_samples:
                continue
            _arm(bank, spec, slot, test.alpha(slot) / 2, float(n[slot]), float(mean[slot]), float(var[slot]),
                 frozen.get((slot, spec.field)))  # fmt: skip

    def update_post(
        self,
        test: MeanTest,
        now: float,
        live: npt.NDArray[np.bool_],
        batch: BatchArrays,
        values: BaselineValues,
        n_canary: FloatArray,
    ) -> list[SlotChange]:
        """Post-rollout phase: fold the batch's values of the new version in; the slots that regressed."""
        spec = test.spec
        bank = self.post[spec.name]
        fired = bank.update(*self._observed(bank, spec, batch, values, ARM_CANARY), now)
        out: list[SlotChange] = []
        for slot in np.flatnonzero(fired & live).tolist():
            if test.state[slot] == REGRESSED:
                continue
            prev = test.mark_regressed(slot)
            evidence = bank.evidence(slot)
            evidence.update({"n_canary": int(n_canary[slot]), "alpha": test.alpha(slot) / 2,
                             "margin": spec.margin, "margin_relative": spec.relative})  # fmt: skip
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


def _arm(
    bank: CusumBank,
    spec: MetricSpec,
    slot: int,
    alpha: float,
    n: float,
    mean: float,
    var: float,
    hist: LogHistogram | None,
) -> None:
    """Arm one slot of a chart at level ``alpha`` from its reference: the reference's histogram for an
    exceedance chart (half of ``alpha`` for the median's upper bound; not armed while that bound is
    unknown), its mean and variance otherwise (plug-in + 1 SE, oriented)."""
    if alpha <= 0:
        return
    if bank.kind == "exceedance":
        if hist is None or hist.count < 1:
            return
        _, hi = quantile_cs(hist, 0.5, alpha / 2)
        if not math.isfinite(hi):
            return
        bar = hi * (1.0 + spec.margin) if spec.relative else hi + spec.margin
        bank.arm(slot, hist.quantile(0.5), 0.0, alpha / 2, bar=bar)
        return
    s = 1.0 if spec.higher_is_worse else -1.0
    scale = contrast_scale(spec, mean)
    reference = s * mean + math.sqrt(var / n)  # plug-in + 1 SE (oriented)
    bank.arm(slot, reference, scale, alpha, sigma=math.sqrt(max(var, 1e-12)))


def _oriented(spec: MetricSpec, k_or_mean: FloatArray, n: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Rates are counts (the Bernoulli bank orients them by its null); means flip sign when higher is
    better, so that "worse" is "larger"."""
    if spec.kind == "rate":
        return k_or_mean, n
    s = 1.0 if spec.higher_is_worse else -1.0
    return s * k_or_mean, n
