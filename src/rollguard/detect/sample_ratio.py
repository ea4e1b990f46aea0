"""The sample-ratio check of one rollout: each new unit's arm against the split in force when it came.

Units (users, sessions), not requests, are counted: a heavy user routed to the canary would otherwise
look like a broken split. A fixed Bloom filter (:class:`~rollguard.stats.unit_filter.UnitFilter`)
tells first sightings apart; each new unit feeds the always-valid mixture test
(:class:`~rollguard.stats.SampleRatioTest`) with the weight the event carries, else the configured
one, and only while the split is a real one (0 < w < 1). Once the p-value falls below ``srm_alpha``
the rollout is unhealthy, which outranks any regression; it stays so. After promotion there is no
split left to check, so the monitor stops feeding it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rollguard.detect.batch_columns import ARM_CANARY, EventColumns
from rollguard.detect.slot_change import SlotChange, round_evidence
from rollguard.domain.verdicts import HealthState
from rollguard.stats import SampleRatioTest
from rollguard.stats.unit_filter import UnitFilter


class SampleRatio:
    """The SRM test, the rollout's health and the units seen."""

    def __init__(self, srm_alpha: float, intended_weight: float | None, unit_filter_bits: int) -> None:
        self.alpha = srm_alpha
        self.intended_weight = intended_weight
        self.test = SampleRatioTest(srm_alpha)
        self.health = HealthState.HEALTHY
        self.units = UnitFilter(unit_filter_bits)

    def update(self, cols: EventColumns) -> list[SlotChange]:
        """Feed a closed batch's new units; the rollout turning unhealthy, if it did now."""
        weights = cols.weights
        if self.intended_weight is not None:
            weights = np.where(np.isnan(weights), self.intended_weight, weights)
        units = cols.units
        split = np.flatnonzero((weights > 0.0) & (weights < 1.0)).tolist()
        picked = [i for i in split if units[i] is not None]
        if not picked:
            return []
        first_seen = self.units.add_many([u for i in picked if (u := units[i]) is not None])
        new = np.asarray(picked, dtype=np.intp)[first_seen]
        if not new.size:
            return []
        self.test.update_many(cols.arm[new] == ARM_CANARY, weights[new])
        if self.health is not HealthState.HEALTHY or not self.test.p_value < self.alpha:
            return []
        self.health = HealthState.UNHEALTHY
        srm = self.test
        evidence = {
            "units": srm.n,
            "observed_canary": srm.observed_canary,
            "expected_canary": srm.expected_canary,
            "observed_control": srm.observed_control,
            "expected_control": srm.expected_control,
            "observed_ratio": srm.observed_ratio,
            "p_value": srm.p_value,
            "alpha": self.alpha,
            "method": "sequential-srm-mixture",
        }
        return [SlotChange("srm", 0, "sample_ratio", HealthState.UNHEALTHY.value, HealthState.HEALTHY.value,
                           round_evidence(evidence))]  # fmt: skip

    def view(self) -> dict[str, Any]:
        """What a dashboard shows: units counted, canary units observed and expected, p-value, α."""
        srm = self.test
        return {
            "units": srm.n,
            "observed_canary": srm.observed_canary,
            "expected_canary": srm.expected_canary,
            "p_value": srm.p_value,
            "alpha": self.alpha,
        }

    def to_state(self) -> dict[str, Any]:
        return {"srm": self.test.to_state(), "health": self.health.value, "units": self.units.to_state()}

    @classmethod
    def from_state(
        cls, state: dict[str, Any], srm_alpha: float, intended_weight: float | None, unit_filter_bits: int
    ) -> SampleRatio:
        check = cls(srm_alpha, intended_weight, unit_filter_bits)
        check.test = SampleRatioTest.from_state(state["srm"])
        check.health = HealthState(state["health"])
        check.units = UnitFilter.from_state(state["units"])
        return check
