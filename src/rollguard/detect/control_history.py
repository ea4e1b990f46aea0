"""How much control history each cohort of a rollout has: the facts the pre-flight baseline check judges.

Read from the monitor's own running statistics (:meth:`RolloutArrays.read` of every mean-type test, the
cohort registry's birth times), never counted a second time: a cohort's control observations of a metric
family are the most any of the family's metrics has (a latency family with ``latency_ms`` and
``ttft_ms`` has as many observations as its best-covered metric). Only closed batches count, as for
every verdict. Pure and read-only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rollguard.detect.batch_columns import ARM_CONTROL
from rollguard.detect.monitor import RolloutMonitor
from rollguard.domain.cohorts import WHOLE


@dataclass(frozen=True, slots=True)
class CohortHistory:
    """One cohort's control history: observations per metric family, and when the cohort first appeared
    (event time of its first closed batch; ``-inf`` for the whole rollout, which exists from the start)."""

    cohort: str
    born: float
    control: tuple[tuple[str, int], ...]  # (family, control observations), families in metric order

    def of(self, family: str) -> int:
        return next((n for f, n in self.control if f == family), 0)


def control_history(monitor: RolloutMonitor) -> list[CohortHistory]:
    """Every live cohort's control history, cohorts in key order (the whole rollout first)."""
    per_family: dict[str, list[npt.NDArray[np.float64]]] = {}
    for test in monitor.means.tests.values():
        n, _, _ = monitor.arrays.read(test.spec, ARM_CONTROL)
        per_family.setdefault(test.spec.family, []).append(n)
    out = []
    for cohort in sorted(monitor.membership.live(), key=lambda c: (c.key != WHOLE, c.key)):
        slot = cohort.slot
        control = tuple(
            (family, max(int(arr[slot]) for arr in arrays)) for family, arrays in per_family.items()
        )
        out.append(CohortHistory(cohort.key, cohort.born, control))
    return out
