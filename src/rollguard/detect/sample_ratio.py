"""The sample-ratio check of one rollout: each new unit's arm against the split in force when it came.

Units (users, sessions), not requests, are counted: a heavy user routed to the canary would otherwise
look like a broken split. Events without ``unit_id`` are left out, unless the rollout's router splits
each request on its own (``rollouts.<id>.assignment: request``): then such a request is its own unit,
new by definition, and lost or duplicated events show directly in the canary's share of requests.
(Not by default: a router that is sticky per user but sends no ``unit_id`` would make heavy users
look like a broken split — seen on the simulator's sticky A/A traffic with its unit ids removed.)
A fixed Bloom filter (:class:`~rollguard.stats.unit_filter.UnitFilter`) tells first sightings apart;
each new unit feeds the always-valid mixture test
(:class:`~rollguard.stats.SampleRatioTest`) with the weight the event carries, else the configured
one, and only while the split is a real one (0 < w < 1). Once the p-value falls below ``srm_alpha``
the rollout is unhealthy, which outranks any regression; it stays so. After promotion there is no
split left to check, so the monitor stops feeding it.

**Requests, too** (:class:`RequestRatio`). Counting units misses lost *events*: when 10% of the
canary's events never reach the log, nearly every canary unit still shows up. The request-level check
follows each new unit for ``FOLLOW_UP_S`` of event time after its first request and counts its
requests (at most ``SCORE_CAP``); when the follow-up ends, the unit enters the same mixture test with
that count, minus the average count of every unit completed so far, as its score
(:class:`~rollguard.stats.SampleRatioTest` with scores): under a working split a unit's activity does
not depend on its arm, so a canary unit sending fewer requests than a control unit is evidence of
loss; a user sending thousands of requests is still one draw (units persist across batches: their
requests are not independent, the assignment is); and centring leaves the share of canary units to
the unit check. At most ``MAX_FOLLOWED`` units
are followed at once (new ones wait for room; the rule never looks at the arm), so the state is
bounded. It has its own α (``srm_request_alpha``) and makes the rollout unhealthy the same way. Its
power is bounded by the spread of activity between units: with heavy-tailed activity it needs
many units to see a 10% loss.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rollguard.detect.batch_columns import ARM_CANARY, EventColumns, FloatArray
from rollguard.detect.slot_change import SlotChange, round_evidence
from rollguard.domain.verdicts import HealthState
from rollguard.stats import SampleRatioTest
from rollguard.stats.unit_filter import UnitFilter

FOLLOW_UP_S: Final = 600.0  # a new unit's requests are counted for this long after its first one
SCORE_CAP: Final = 20  # at most this many of them count
MAX_FOLLOWED: Final = 8192  # units followed at once


class SampleRatio:
    """The SRM tests (units, and requests per unit), the rollout's health and the units seen."""

    def __init__(
        self,
        srm_alpha: float,
        intended_weight: float | None,
        unit_filter_bits: int,
        request_alpha: float,
        per_request: bool = False,
    ) -> None:
        self.alpha = srm_alpha
        self.intended_weight = intended_weight
        self.per_request = per_request  # a request without unit_id is its own unit
        self.test = SampleRatioTest(srm_alpha)
        self.health = HealthState.HEALTHY
        self.units = UnitFilter(unit_filter_bits)
        self.requests = RequestRatio(request_alpha)

    def update(self, cols: EventColumns, now: float) -> list[SlotChange]:
        """Feed a closed batch (ending at ``now``): its new units, and its requests to the units
        followed; the rollout turning unhealthy, if it did now."""
        weights = cols.weights
        if self.intended_weight is not None:
            weights = np.where(np.isnan(weights), self.intended_weight, weights)
        units = cols.units
        split = np.flatnonzero((weights > 0.0) & (weights < 1.0)).tolist()
        picked = [i for i in split if units[i] is not None]
        # Split per request: a request without unit_id was randomised on its own, a unit of its own.
        alone = np.asarray([i for i in split if units[i] is None] if self.per_request else [], dtype=np.intp)
        if not picked and not alone.size:
            return self._request_change(self.requests.complete(now))
        at = np.asarray(picked, dtype=np.intp)
        first_seen = self.units.add_many([u for i in picked if (u := units[i]) is not None])
        new = np.concatenate([at[first_seen], alone]) if picked else alone
        if picked:
            self.requests.follow(cols, at, first_seen, weights)
        out = self._request_change(self.requests.complete(now))
        if not new.size:
            return out
        already = self.test.p_value < self.alpha  # the p-value is a running minimum: rejected once
        self.test.update_many(cols.arm[new] == ARM_CANARY, weights[new])
        if already or not self.test.p_value < self.alpha:
            return out
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
        unhealthy = HealthState.UNHEALTHY.value
        return [*out, SlotChange("srm", 0, "sample_ratio", unhealthy, HealthState.HEALTHY.value,
                                 round_evidence(evidence))]  # fmt: skip

    def _request_change(self, fired: bool) -> list[SlotChange]:
        if not fired:
            return []
        self.health = HealthState.UNHEALTHY
        return [SlotChange("srm", 0, "sample_ratio_requests", HealthState.UNHEALTHY.value,
                           HealthState.HEALTHY.value, round_evidence(self.requests.evidence()))]  # fmt: skip

    def view(self) -> dict[str, Any]:
        """What a dashboard shows: units counted, canary units observed and expected, p-value, α."""
        srm = self.test
        return {
            "units": srm.n,
            "observed_canary": srm.observed_canary,
            "expected_canary": srm.expected_canary,
            "p_value": srm.p_value,
            "alpha": self.alpha,
            "requests": self.requests.view(),
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "srm": self.test.to_state(),
            "health": self.health.value,
            "units": self.units.to_state(),
            "srm_requests": self.requests.to_state(),
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        srm_alpha: float,
        intended_weight: float | None,
        unit_filter_bits: int,
        request_alpha: float,
        per_request: bool = False,
    ) -> SampleRatio:
        check = cls(srm_alpha, intended_weight, unit_filter_bits, request_alpha, per_request)
        check.test = SampleRatioTest.from_state(state["srm"])
        check.health = HealthState(state["health"])
        check.units = UnitFilter.from_state(state["units"])
        check.requests = RequestRatio.from_state(state["srm_requests"], request_alpha)
        return check


def unit_keys(units: list[str]) -> list[int]:
    """A stable 64-bit key per unit id (CRC-32 and Adler-32 side by side: the ids themselves are not
    kept). Collisions merge two units' counts, whatever their arms: the test stays valid."""
    return [(zlib.crc32(b) << 32) | zlib.adler32(b) for b in map(str.encode, units)]


class RequestRatio:
    """The request-level sample-ratio check: requests per unit over a fixed follow-up, by arm."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.test = SampleRatioTest(alpha)
        self.fired_at: float | None = None
        # key -> [first request's ts, canary (1) or control (0), weight, requests counted]
        self.followed: dict[int, list[float]] = {}
        # requests counted of completed units: all, canary, expected on the canary (Σ weight · count)
        self.counted = [0.0, 0.0, 0.0]

    def follow(
        self,
        cols: EventColumns,
        at: npt.NDArray[np.intp],
        first_seen: npt.NDArray[np.bool_],
        weights: FloatArray,
    ) -> None:
        """Count a batch's requests of the units followed (``at``: the events with a unit and a real
        split, ``first_seen``: which of them is a unit's first request); start following new units
        while there is room."""
        units = [u for i in at.tolist() if (u := cols.units[i]) is not None]
        keys = unit_keys(units)
        ts, arm = cols.ts, cols.arm
        followed = self.followed
        for j, (i, key) in enumerate(zip(at.tolist(), keys, strict=True)):
            entry = followed.get(key)
            if entry is None:
                if not first_seen[j] or len(followed) >= MAX_FOLLOWED:
                    continue
                entry = followed[key] = [float(ts[i]), float(arm[i] == ARM_CANARY), float(weights[i]), 0.0]
            if ts[i] < entry[0] + FOLLOW_UP_S and entry[3] < SCORE_CAP:
                entry[3] += 1.0

    def complete(self, now: float) -> bool:
        """Units whose follow-up ended by ``now`` enter the test; True when it rejects now (once)."""
        done = [k for k, e in self.followed.items() if e[0] + FOLLOW_UP_S <= now]
        if not done:
            return False
        rows = np.asarray([self.followed.pop(k) for k in done], dtype=np.float64)
        canary, weight, count = rows[:, 1] > 0.5, rows[:, 2], rows[:, 3]
        units_before = self.test.n
        self.counted[0] += float(count.sum())
        self.counted[1] += float(count[canary].sum())
        self.counted[2] += float(weight @ count)
        mean = self.counted[0] / (units_before + count.size)  # over every unit completed, either arm
        self.test.update_many(canary, weight, score=count - mean)
        if self.fired_at is not None or not self.test.p_value < self.alpha:
            return False
        self.fired_at = now
        return True

    def evidence(self) -> dict[str, Any]:
        t = self.test
        total, canary, expected = self.counted
        units = max(t.n, 1)
        per_canary = canary / t.observed_canary if t.observed_canary else float("nan")
        per_control = (total - canary) / t.observed_control if t.observed_control else float("nan")
        return {
            "units": t.n,
            "requests": int(total),
            "observed_canary": int(canary),
            "expected_canary": expected,
            "observed_ratio": canary / expected if expected > 0 else float("nan"),
            "requests_per_canary_unit": per_canary,
            "requests_per_control_unit": per_control,
            "requests_per_unit": total / units,
            "p_value": t.p_value,
            "alpha": self.alpha,
            "follow_up_s": FOLLOW_UP_S,
            "method": "sequential-srm-requests-per-unit",
        }

    def view(self) -> dict[str, Any]:
        total, canary, expected = self.counted
        return {
            "requests": int(total),
            "observed_canary": int(canary),
            "expected_canary": expected,
            "p_value": self.test.p_value,
            "alpha": self.alpha,
            "followed": len(self.followed),
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "test": self.test.to_state(),
            "fired_at": self.fired_at,
            "counted": list(self.counted),
            "followed": [[k, *e] for k, e in self.followed.items()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], alpha: float) -> RequestRatio:
        check = cls(alpha)
        check.test = SampleRatioTest.from_state(state["test"])
        check.fired_at = state["fired_at"]
        check.counted = [float(x) for x in state["counted"]]
        check.followed = {int(k): [float(x) for x in rest] for k, *rest in state["followed"]}
        return check
