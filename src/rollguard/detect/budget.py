"""How a rollout's false-alarm budget α is spent across cohorts and metrics.

Every verdict test of a rollout may be read after every batch, and a rollout has many: up to
``max_cohorts_per_rollout`` cohorts × every metric. The budget is split so that the chance of *any*
false "regressed" in the rollout stays ≤ α (Bonferroni over anytime-valid tests, which stay valid at
all times together):

- within a cohort, α is split over metric *families* by weight — guardrails (errors, timeouts,
  refusals, format) 40%, latency 30%, quality 20%, cost 10% — then evenly within the family, so the
  checks that page people get the most power; quality reserves ``max_quality_keys`` slots;
- across cohorts, ``whole_rollout_alpha_share`` of each test's α goes to the whole-rollout cohort and
  the rest to the segment cohorts, **by traffic share**: a cohort's slot receives, once and for life
  when it is created, an even floor (``SLOT_FLOOR`` of the segments' budget spread over every slot the
  rollout may ever take) plus its share of the traffic in the batch that created it, over the
  partitions of the traffic known then (each analysed dimension and grouping covers all traffic once),
  taken from what is left of the rest (``1 - SLOT_FLOOR``). A quarter of the traffic gets about 3.4
  times the even split of the 31 segment slots; a rare cohort keeps at least its floor. The shares
  depend on segment labels and counts only, never on outcomes, and the pool can only shrink, so
  cohorts that appear online never overspend: Σ over slots ≤ 1 whatever the order and the estimates.

Within one (cohort, test), half of the α goes to the cumulative confidence sequence and half to the
change detector (onset in the canary phase, the post-rollout chart after promotion); the baseline
drift charts of the control have a budget of their own of the same size as half of the tests' (see
:func:`drift_alpha_total`), never shared with the verdicts.

>>> from rollguard.settings import Config
>>> budget = AlphaBudget(Config())
>>> spec = Config().metrics[0]                         # error_rate: 1% x 40% / 4 guardrail tests
>>> round(budget.of(spec), 9), round(budget.alpha(spec, 0), 9)   # the whole rollout takes half
(0.001, 0.0005)
>>> budget.assign(1, 0.27, 2)                          # a quarter of traffic, two dimensions
>>> round(budget.alpha(spec, 1) / (0.0005 / 31), 2)    # against the even split of 31 slots
3.39
>>> budget.assign(2, 0.03, 2)                          # a rare cohort
>>> round(budget.alpha(spec, 2) / (0.0005 / 31), 2)
0.6
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rollguard.domain.metrics import Family, MetricSpec
from rollguard.settings.config import Config

FAMILY_WEIGHTS: Final[dict[Family, float]] = {"guardrail": 0.4, "latency": 0.3, "quality": 0.2, "cost": 0.1}
# Share of the segments' budget spread evenly over every segment slot (the rest follows the traffic).
SLOT_FLOOR: Final = 0.25


class AlphaBudget:
    """α per (test, cohort slot): ``of(spec)`` is a test's whole α, ``alpha(spec, slot)`` its share in
    one slot; ``assign`` fixes a new segment slot's share once, at its creation."""

    def __init__(self, config: Config) -> None:
        eng = config.engine
        counts: dict[Family, int] = dict.fromkeys(FAMILY_WEIGHTS, 0)
        for spec in config.metrics:
            if spec.enabled:
                counts[spec.family] += 1
        counts["quality"] += eng.max_quality_keys
        active = {f: w for f, w in FAMILY_WEIGHTS.items() if counts[f] > 0}
        total = sum(active.values())
        self._per_test = {f: config.alpha * w / total / counts[f] for f, w in active.items()}
        self.whole = eng.whole_rollout_alpha_share
        self.segment_slots = max(eng.max_cohorts_per_rollout - 1, 1)
        self.fractions: list[float] = [self.whole]  # per slot: its share of every test's α
        self.pool_spent = 0.0  # of the traffic-share part of the segments' budget (at most 1 - SLOT_FLOOR)

    def of(self, spec: MetricSpec) -> float:
        """The test's α over all cohorts (cumulative test and change detector together)."""
        return self._per_test[spec.family]

    def fraction(self, slot: int) -> float:
        return self.fractions[slot] if slot < len(self.fractions) else 0.0

    def alpha(self, spec: MetricSpec, slot: int) -> float:
        """The test's α in one cohort slot (0 until the slot is assigned)."""
        return self._per_test[spec.family] * self.fraction(slot)

    def alphas(self, spec: MetricSpec, cap: int) -> npt.NDArray[np.float64]:
        """:meth:`alpha` of every slot below ``cap`` (unassigned slots: 0)."""
        out = np.zeros(cap)
        n = min(cap, len(self.fractions))
        out[:n] = self.fractions[:n]
        result: npt.NDArray[np.float64] = out * self._per_test[spec.family]
        return result

    def assign(self, slot: int, traffic_share: float, partitions: int) -> None:
        """Fix the share of a new segment slot (slots are numbered in order of creation): the floor plus
        ``traffic_share`` of the traffic-share pool over ``partitions``, as far as the pool reaches."""
        while len(self.fractions) < slot:  # a slot that was never assigned (cannot happen in order)
            self.fractions.append(0.0)
        rest = 1.0 - SLOT_FLOOR
        wanted = rest * min(max(traffic_share, 0.0), 1.0) / max(partitions, 1)
        take = min(wanted, max(rest - self.pool_spent, 0.0))
        self.pool_spent += take
        share = SLOT_FLOOR / self.segment_slots + take
        if slot >= 1 + self.segment_slots:  # beyond the cohort budget: never happens, never overspends
            share = 0.0
        self.fractions.append((1.0 - self.whole) * share)

    def assign_created(
        self, taken: int, created: int, rows: npt.NDArray[np.int64], events: int, partitions: int
    ) -> None:
        """Give the slots ``taken..created-1`` that a batch of ``events`` created their share, by their
        share of its events (``rows``: slot rows, two per slot) among ``partitions`` of the traffic."""
        per_slot = np.bincount(rows // 2, minlength=created)
        for slot in range(max(taken, 1), created):
            self.assign(slot, float(per_slot[slot]) / max(events, 1), partitions)

    def to_state(self) -> dict[str, Any]:
        return {"fractions": list(self.fractions), "pool_spent": self.pool_spent}

    def load(self, state: dict[str, Any]) -> None:
        self.fractions = [float(x) for x in state["fractions"]]
        self.pool_spent = float(state["pool_spent"])


def drift_alpha_total(config: Config) -> float:
    """The baseline-drift charts' α summed over every cohort slot and mean-type test (quality keys
    reserved included): half of each test's α, the other half of the budget being the verdicts'."""
    budget = AlphaBudget(config)
    specs = [m for m in config.metrics if m.enabled and m.kind in ("rate", "mean")]
    specs += [config.quality_spec(f"key{i}") for i in range(config.engine.max_quality_keys)]
    return sum(budget.of(spec) for spec in specs) / 2.0
