"""Cumulative canary-vs-control comparisons of mean-type metrics (rates included), per cohort slot.

Each :class:`MeanTest` holds one metric's verdict state per slot (the state every check of that metric
shares: the onset and post-rollout detectors mark it regressed too, and regressed is sticky), its
mixing scale τ² (fixed at the slot's first evaluation) and reads its α per slot from the rollout's
budget (:mod:`rollguard.detect.budget`). After every batch all slots of a
metric are decided at once by :func:`slot_states`, the vectorised twin of
:func:`~rollguard.detect.comparisons.compare_means`; only slots whose state changed are re-read one by
one for their evidence. Half of each test's α goes to this cumulative interval, half to its change
detector (the paired onset CUSUM in the canary phase, the baseline CUSUM after promotion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rollguard.detect.arrays import ArmRead
from rollguard.detect.batch_columns import FloatArray
from rollguard.detect.budget import AlphaBudget
from rollguard.detect.comparisons import (
    TAU2_LADDER,
    ArmSummary,
    absolute_margin,
    compare_means,
    contrast_scale,
    effect_interval,
    mean_contrast_interval,
)
from rollguard.detect.slot_change import SlotChange
from rollguard.domain.metrics import MetricSpec
from rollguard.domain.verdicts import VerdictState
from rollguard.stats import difference_cs_many

STATE_CODE: Final = {VerdictState.INSUFFICIENT: 0, VerdictState.NON_INFERIOR: 1, VerdictState.REGRESSED: 2}
CODE_STATE: Final = {v: k for k, v in STATE_CODE.items()}
REGRESSED: Final = STATE_CODE[VerdictState.REGRESSED]
NOT_READ: Final = -1  # a slot never decided yet


@dataclass(slots=True)
class MeanTest:
    """One mean-type metric across cohort slots: verdict state codes, τ², and the budget of its α."""

    spec: MetricSpec
    state: npt.NDArray[np.int8]  # STATE_CODE per slot, NOT_READ before the first decision
    tau2: FloatArray  # NaN until the slot is first decided
    budget: AlphaBudget

    def alpha(self, slot: int) -> float:
        """The test's α in one slot (cumulative test and change detector together)."""
        return self.budget.alpha(self.spec, slot)

    def alphas(self) -> FloatArray:
        """:meth:`alpha` of every slot."""
        return self.budget.alphas(self.spec, self.state.size)

    def previous(self, slot: int) -> str | None:
        code = int(self.state[slot])
        return None if code == NOT_READ else CODE_STATE[code].value

    def mark_regressed(self, slot: int) -> str | None:
        """A change detector found a regression: the state becomes regressed; returns the one it left."""
        prev = self.previous(slot)
        self.state[slot] = REGRESSED
        return prev


class MeanTests:
    """Every mean-type test of a rollout, by metric name (config order, then quality keys as they come)."""

    def __init__(self) -> None:
        self.tests: dict[str, MeanTest] = {}

    def add(self, spec: MetricSpec, budget: AlphaBudget, cap: int) -> MeanTest:
        test = MeanTest(spec, np.full(cap, NOT_READ, dtype=np.int8), np.full(cap, np.nan), budget)
        self.tests[spec.name] = test
        return test

    def grow(self, cap: int) -> None:
        for t in self.tests.values():
            pad = cap - t.state.size
            if pad > 0:
                t.state = np.concatenate([t.state, np.full(pad, NOT_READ, dtype=np.int8)])
                t.tau2 = np.concatenate([t.tau2, np.full(pad, np.nan)])

    def forget(self, slot: int) -> None:
        for t in self.tests.values():
            t.state[slot] = NOT_READ

    def restart(self) -> None:
        """At promotion every verdict starts afresh (the comparison is now against the baseline)."""
        for t in self.tests.values():
            t.state[:] = NOT_READ

    def evaluate(
        self, test: MeanTest, live: npt.NDArray[np.bool_], canary: ArmRead, control: ArmRead, min_n: int
    ) -> list[SlotChange]:
        """Re-read one test on every live slot with ``min_n`` per arm; the changes of state."""
        spec = test.spec
        n_t, mean_t, var_t = canary
        n_c, mean_c, var_c = control
        ok = live & (n_t >= min_n) & (n_c >= min_n)
        if not ok.any():
            return []
        fresh = ok & np.isnan(test.tau2)
        for slot in np.flatnonzero(fresh).tolist():
            test.tau2[slot] = contrast_scale(spec, float(mean_c[slot])) ** 2
        new = slot_states(spec, n_t, mean_t, var_t, n_c, mean_c, var_c, test.tau2, test.alphas() / 2)
        new = np.where(test.state == REGRESSED, test.state, new)
        out: list[SlotChange] = []
        for slot in np.flatnonzero(ok & (new != test.state)).tolist():
            state, evidence = compare_means(
                spec,
                ArmSummary(int(n_c[slot]), float(mean_c[slot]), float(var_c[slot])),
                ArmSummary(int(n_t[slot]), float(mean_t[slot]), float(var_t[slot])),
                test.alpha(slot) / 2,
                float(test.tau2[slot]),
            )
            prev = test.previous(slot)
            test.state[slot] = STATE_CODE[state]
            if prev == state.value:
                continue
            out.append(SlotChange("verdict", slot, spec.name, state.value, prev, evidence.to_dict()))
        return out

    def view(
        self, test: MeanTest, slot: int, canary: ArmRead, control: ArmRead | None, drift: str | None
    ) -> dict[str, Any]:
        """What a dashboard shows of one (cohort, metric), read only: state, estimates, the current
        interval of the effect (same confidence sequence and α as the verdict) and the control's
        ``drift`` state (from :mod:`rollguard.detect.baseline_drift`)."""
        spec = test.spec
        n_t, mean_t, var_t = (float(a[slot]) for a in canary)
        n_c, mean_c, var_c = (float(a[slot]) for a in control) if control is not None else (0.0, 0.0, 0.0)
        effect = lo = hi = math.nan
        if n_t > 0 and n_c > 0:
            tau2 = float(test.tau2[slot])
            if math.isnan(tau2):  # not decided yet: the scale its first decision would fix
                tau2 = contrast_scale(spec, mean_c) ** 2
            c, t = ArmSummary(int(n_c), mean_c, var_c), ArmSummary(int(n_t), mean_t, var_t)
            contrast = mean_contrast_interval(spec, c, t, test.alpha(slot) / 2, tau2)
            lo, hi = effect_interval(spec, contrast, mean_c)
            s = 1.0 if spec.higher_is_worse else -1.0
            d = s * (mean_t - mean_c)
            effect = d if not spec.relative else d / abs(mean_c) if mean_c != 0 else math.nan
        code = int(test.state[slot])
        return {
            "metric": spec.name,
            "state": (CODE_STATE[code] if code != NOT_READ else VerdictState.INSUFFICIENT).value,
            "control": mean_c if n_c > 0 else math.nan,
            "canary": mean_t if n_t > 0 else math.nan,
            "effect": effect,
            "effect_lo": lo,
            "effect_hi": hi,
            "margin": spec.margin,
            "margin_relative": spec.relative,
            "n_control": int(n_c),
            "n_canary": int(n_t),
            "drift": drift,
        }

    def to_state(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"state": t.state.tolist(), "tau2": [None if math.isnan(x) else x for x in t.tau2.tolist()]}
            for name, t in self.tests.items()
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, dict[str, Any]],
        specs: dict[str, MetricSpec],
        budget: AlphaBudget,
    ) -> MeanTests:
        """Rebuild under the same config: ``specs`` by name for every test in ``state``."""
        tests = cls()
        for name, saved in state.items():
            test = tests.add(specs[name], budget, len(saved["state"]))
            test.state = np.asarray(saved["state"], dtype=np.int8)
            test.tau2 = np.asarray([math.nan if x is None else x for x in saved["tau2"]], dtype=np.float64)
        return tests


def slot_states(
    spec: MetricSpec,
    n_t: FloatArray,
    mean_t: FloatArray,
    var_t: FloatArray,
    n_c: FloatArray,
    mean_c: FloatArray,
    var_c: FloatArray,
    tau2: FloatArray,
    alphas: FloatArray,
) -> npt.NDArray[np.int8]:
    """Vectorised :func:`~rollguard.detect.comparisons.compare_means` state codes (same arms and
    interval), each slot at its own α (slots without one are left undecided)."""
    s = 1.0 if spec.higher_is_worse else -1.0
    lam = 1.0 + s * (spec.margin if spec.relative else 0.0)
    m = absolute_margin(spec)
    t2 = np.where(np.isnan(tau2), 1.0, tau2)
    mt, mc, vc = s * mean_t, s * lam * mean_c, lam * lam * var_c
    has = alphas > 0
    lo, hi = difference_cs_many(
        mt, var_t, n_t, mc, vc, n_c, np.where(has, alphas, 0.5), t2, tau2_factors=TAU2_LADDER
    )
    lo, hi = np.where(has, lo, -np.inf), np.where(has, hi, np.inf)
    out = np.zeros(n_t.shape, dtype=np.int8)
    out[lo - m > 0] = STATE_CODE[VerdictState.REGRESSED]
    out[hi - m < 0] = STATE_CODE[VerdictState.NON_INFERIOR]
    return out
