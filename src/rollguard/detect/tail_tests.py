"""Cumulative canary-vs-control comparisons of tail quantiles (p95, p99), per cohort slot.

Each tail is decided by :func:`~rollguard.detect.comparisons.compare_quantiles` on the two arms'
histograms (after promotion: the canary against the control's histogram frozen then). The quantile
search is the costly test, so a tail is re-read only once its evidence grew by 5%; regressed is
sticky. The verdict state of a (slot, tail) is shared with the tail onset CUSUM, which may mark it
regressed too. Half of each tail's α goes here, half to that CUSUM.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rollguard.detect.arrays import HistPair
from rollguard.detect.batch_columns import ARM_CANARY, ARM_CONTROL
from rollguard.detect.budget import AlphaBudget
from rollguard.detect.comparisons import compare_quantiles, effect_interval, quantile_contrast_interval
from rollguard.detect.slot_change import SlotChange
from rollguard.domain.metrics import MetricSpec
from rollguard.domain.verdicts import VerdictState
from rollguard.stats import LogHistogram

REREAD_GROWTH: Final = 1.05


class TailTests:
    """Every tail metric's verdict state per slot: (state, evidence size at its last read)."""

    def __init__(self, specs: list[MetricSpec], budget: AlphaBudget) -> None:
        self.specs = specs
        self.budget = budget
        self.state: dict[tuple[int, str], tuple[VerdictState, int]] = {}

    def alpha(self, slot: int, spec: MetricSpec) -> float:
        """The tail's share of α in this slot (the cumulative test and the onset detector take half
        each)."""
        return self.budget.alpha(spec, slot)

    def alphas(self, spec: MetricSpec, cap: int) -> npt.NDArray[np.float64]:
        return self.budget.alphas(spec, cap)

    def is_regressed(self, slot: int, name: str) -> bool:
        got = self.state.get((slot, name))
        return got is not None and got[0] is VerdictState.REGRESSED

    def mark_regressed(self, slot: int, name: str) -> str | None:
        """A change detector found a regression: the state becomes regressed; returns the one it left."""
        got = self.state.get((slot, name))
        self.state[(slot, name)] = (VerdictState.REGRESSED, 0)
        return None if got is None else got[0].value

    def grow(self, cap: int) -> None:
        """Nothing to grow: states are kept by (slot, metric)."""

    def forget(self, slot: int) -> None:
        self.state = {k: v for k, v in self.state.items() if k[0] != slot}

    def restart(self) -> None:
        """At promotion every tail verdict starts afresh."""
        self.state.clear()

    def evaluate(
        self,
        live: npt.NDArray[np.bool_],
        hists: dict[str, list[HistPair | None]],
        baseline: dict[tuple[int, str], LogHistogram] | None,
        min_n: int,
    ) -> list[SlotChange]:
        """Re-read every tail of every live slot whose evidence grew enough; the changes of state.

        ``baseline`` (after promotion) replaces the control's histograms by the frozen ones.
        """
        out: list[SlotChange] = []
        for spec in self.specs:
            field = spec.field
            for slot in np.flatnonzero(live).tolist():
                pair = hists[field][slot]
                if pair is None:
                    continue
                canary = pair[ARM_CANARY]
                control = baseline.get((int(slot), field)) if baseline is not None else pair[ARM_CONTROL]
                if control is None or canary.count < min_n or control.count < min_n:
                    continue
                key = (int(slot), spec.name)
                prev_state, last_n = self.state.get(key, (None, 0))
                n_now = int(canary.count + control.count)
                if prev_state is VerdictState.REGRESSED or (
                    prev_state is not None and n_now < last_n * REREAD_GROWTH
                ):
                    continue
                state, evidence = compare_quantiles(spec, control, canary, self.alpha(int(slot), spec) / 2)
                self.state[key] = (state, n_now)
                if state is not prev_state:
                    previous = None if prev_state is None else prev_state.value
                    out.append(SlotChange("verdict", int(slot), spec.name, state.value, previous,
                                          evidence.to_dict()))  # fmt: skip
        return out

    def view(
        self,
        spec: MetricSpec,
        slot: int,
        hists: dict[str, list[HistPair | None]],
        baseline: dict[tuple[int, str], LogHistogram] | None,
    ) -> dict[str, Any]:
        """What a dashboard shows of one (cohort, tail), read only: state, quantiles and the current
        interval of the effect (same confidence sequences and α as the verdict), the arms taken as in
        :meth:`evaluate`. Tails have no drift check: ``drift`` is None."""
        assert spec.quantile is not None
        pair = hists[spec.field][slot]
        canary = pair[ARM_CANARY] if pair is not None else None
        if baseline is not None:
            control = baseline.get((slot, spec.field))
        else:
            control = pair[ARM_CONTROL] if pair is not None else None
        n_t = canary.count if canary is not None else 0
        n_c = control.count if control is not None else 0
        q_t = canary.quantile(spec.quantile) if canary is not None and n_t else math.nan
        q_c = control.quantile(spec.quantile) if control is not None and n_c else math.nan
        effect = lo = hi = math.nan
        if canary is not None and control is not None and n_t and n_c:
            contrast, _, _ = quantile_contrast_interval(spec, control, canary, self.alpha(slot, spec) / 2)
            lo, hi = effect_interval(spec, contrast, q_c)
            effect = q_t - q_c if not spec.relative else (q_t - q_c) / q_c if q_c > 0 else math.nan
        got = self.state.get((slot, spec.name))
        return {
            "metric": spec.name,
            "state": (got[0] if got is not None else VerdictState.INSUFFICIENT).value,
            "control": q_c,
            "canary": q_t,
            "effect": effect,
            "effect_lo": lo,
            "effect_hi": hi,
            "margin": spec.margin,
            "margin_relative": spec.relative,
            "n_control": int(n_c),
            "n_canary": int(n_t),
            "drift": None,
        }

    def to_state(self) -> list[list[Any]]:
        return [[s, n, st.value, k] for (s, n), (st, k) in self.state.items()]

    @classmethod
    def from_state(cls, state: list[list[Any]], specs: list[MetricSpec], budget: AlphaBudget) -> TailTests:
        tails = cls(specs, budget)
        tails.state = {(int(s), str(n)): (VerdictState(st), int(k)) for s, n, st, k in state}
        return tails
