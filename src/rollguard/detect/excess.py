"""Whether a cohort regressed *beyond* what the whole rollout's regression explains.

When the whole rollout regresses on a metric, its cohorts regress with it, and a person wants one
notification for the rollout, not one per cohort (:mod:`rollguard.policy.alerts.rules` groups them).
A cohort deserves its own alert only when its effect exceeds the whole rollout's by more than the
metric's margin: ``effect_cohort − effect_whole > margin`` (relative margins on relative effects).

The test reads the two cumulative confidence sequences the verdicts already use (the cohort's and the
whole rollout's, each at its own α/2, :mod:`rollguard.detect.mean_tests`): the cohort is beyond when
the lower end of its effect interval exceeds the upper end of the whole rollout's by more than the
margin. Both sequences hold at all times with probability ≥ 1 − α_cohort/2 − α_whole/2 together, and
on that event the claim is true, so it spends no α of its own: its false-claim probability is the
part of the rollout's budget those two intervals already spend (a union bound over events the budget
counts once). Relative effects divide the contrast's bounds by the control's estimate, as the
dashboard view does (:func:`~rollguard.detect.comparisons.effect_interval`). A cohort found beyond
stays so (sticky); nothing is said while it is not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from rollguard.detect.arrays import ArmRead
from rollguard.detect.comparisons import ArmSummary, effect_interval, mean_contrast_interval
from rollguard.detect.mean_tests import REGRESSED, MeanTest, MeanTests
from rollguard.detect.slot_change import SlotChange, round_evidence

Arms = Callable[[MeanTest], tuple[ArmRead, ArmRead | None]]


class ExcessTests:
    """Per mean-type metric, the cohorts already found beyond the whole rollout's regression."""

    def __init__(self) -> None:
        self.beyond: dict[str, npt.NDArray[np.bool_]] = {}

    def _flags(self, name: str, cap: int) -> npt.NDArray[np.bool_]:
        flags = self.beyond.get(name)
        if flags is None or flags.size < cap:
            grown = np.zeros(cap, dtype=bool)
            if flags is not None:
                grown[: flags.size] = flags
            flags = self.beyond[name] = grown
        return flags

    def grow(self, cap: int) -> None:
        for name in list(self.beyond):
            self._flags(name, cap)

    def forget(self, slot: int) -> None:
        for flags in self.beyond.values():
            if slot < flags.size:
                flags[slot] = False

    def restart(self) -> None:
        """At promotion every verdict starts afresh, and so does this."""
        for flags in self.beyond.values():
            flags[:] = False

    def update(
        self, means: MeanTests, arms: Arms, live: npt.NDArray[np.bool_], min_n: int
    ) -> list[SlotChange]:
        """Re-read every regressed cohort of every metric the whole rollout regressed on; the cohorts
        newly found beyond it."""
        out: list[SlotChange] = []
        for name, test in means.tests.items():
            state = test.state
            if state.size == 0 or state[0] != REGRESSED:
                continue
            flags = self._flags(name, state.size)
            todo = live[: state.size] & (state == REGRESSED) & ~flags
            todo[0] = False
            if not todo.any():
                continue
            canary, control = arms(test)
            if control is None:
                continue
            whole = _effect_bounds(test, 0, canary, control, min_n)
            if whole is None:
                continue
            for slot in np.flatnonzero(todo).tolist():
                mine = _effect_bounds(test, slot, canary, control, min_n)
                if mine is None or not mine[1] - whole[2] > test.spec.margin:
                    continue
                flags[slot] = True
                evidence = {
                    "method": "excess-cs",
                    "effect": mine[0],
                    "effect_lo": mine[1],
                    "parent_effect": whole[0],
                    "parent_effect_hi": whole[2],
                    "margin": test.spec.margin,
                    "margin_relative": test.spec.relative,
                    "alpha": test.alpha(slot) / 2 + test.alpha(0) / 2,
                }
                out.append(SlotChange("excess", slot, name, "beyond_parent", None, round_evidence(evidence)))
        return out

    def to_state(self) -> dict[str, list[int]]:
        return {name: np.flatnonzero(flags).tolist() for name, flags in self.beyond.items() if flags.any()}

    @classmethod
    def from_state(cls, state: dict[str, Any], cap: int) -> ExcessTests:
        tests = cls()
        for name, slots in state.items():
            flags = tests._flags(name, cap)
            flags[[int(s) for s in slots]] = True
        return tests


def _effect_bounds(
    test: MeanTest, slot: int, canary: ArmRead, control: ArmRead, min_n: int
) -> tuple[float, float, float] | None:
    """(effect, lower, upper) of one slot on the margin's scale, from its cumulative confidence
    sequence at the verdict's α/2; None before the slot is read."""
    tau2 = float(test.tau2[slot])
    n_t, n_c = float(canary[0][slot]), float(control[0][slot])
    if np.isnan(tau2) or n_t < min_n or n_c < min_n or test.alpha(slot) <= 0:
        return None
    spec = test.spec
    mean_t, mean_c = float(canary[1][slot]), float(control[1][slot])
    c = ArmSummary(int(n_c), mean_c, float(control[2][slot]))
    t = ArmSummary(int(n_t), mean_t, float(canary[2][slot]))
    lo, hi = effect_interval(spec, mean_contrast_interval(spec, c, t, test.alpha(slot) / 2, tau2), mean_c)
    s = 1.0 if spec.higher_is_worse else -1.0
    effect = s * (mean_t - mean_c)
    if spec.relative:
        if mean_c == 0:
            return None
        effect /= abs(mean_c)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    return effect, lo, hi
