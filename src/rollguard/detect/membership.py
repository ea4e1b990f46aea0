"""Cohort membership of a batch: which cohort slots each event belongs to, and the slots' registry.

Every event belongs to the whole rollout (slot 0), to one cohort per analysed segment dimension and to
one per configured grouping (:func:`rollguard.domain.cohorts.segment_slots`, the one membership rule).
A batch's memberships are flat arrays, one entry per (event, cohort): ``rows`` = slot·2 + arm and
``members`` = the event's index, which is what the aggregates and the exact tail counts consume.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from rollguard.detect.batch_columns import EventColumns, IntArray
from rollguard.detect.slot_change import SlotChange
from rollguard.domain.cohorts import WHOLE, Cohort, CohortRegistry, segment_slots
from rollguard.domain.verdicts import VerdictChange
from rollguard.settings.segments import SegmentSettings


class CohortMembership:
    """The rollout's cohorts (slots for life, within the budget) and the dimensions discovered so far."""

    def __init__(self, segments: SegmentSettings, max_cohorts: int) -> None:
        self.segments = segments
        self.registry = CohortRegistry(max_cohorts)
        self.registry.slot(WHOLE, -math.inf)
        self.dims: list[str] = list(segments.dimensions or [])

    def of_batch(self, cols: EventColumns, now: float) -> tuple[IntArray, IntArray, list[int]]:
        """Each event's cohort memberships as (rows, members), and the slots the batch touched (sorted).

        Slots are looked up once per distinct segment combination in the batch (in order of first
        appearance, so slot numbers follow the events), then spread over the events with numpy. New
        cohorts are created at ``now``; every cohort touched is marked as seen at ``now``.
        """
        segments = cols.segments
        n = len(segments)
        keys = list(map(tuple, map(dict.items, segments)))
        first: dict[tuple[tuple[str, str], ...], int] = {}
        firsts = list(map(first.setdefault, keys, range(n)))  # each event's combination, by first event
        combos = list(first.values())
        table = [
            [0, *segment_slots(self.registry, segments[i], now, self.dims, self.segments)] for i in combos
        ]
        width = max(map(len, table))
        slot_table = np.full((len(table), width), -1, dtype=np.int64)
        for j, these in enumerate(table):
            slot_table[j, : len(these)] = these
        combo_of = np.searchsorted(np.asarray(combos, dtype=np.int64), np.asarray(firsts, dtype=np.int64))
        per_event = slot_table[combo_of]  # (events, width), -1 past each event's last slot
        member, col = np.nonzero(per_event >= 0)  # event by event, slots in order
        rows = per_event[member, col] * 2 + cols.arm[member]
        seen = sorted({s for these in table for s in these})
        by_slot = {c.slot: c for c in self.registry.live()}
        for s in seen:
            by_slot[s].last_seen = now
        return rows, member.astype(np.int64), seen

    @property
    def slots_taken(self) -> int:
        """Slots ever given out (never reused): the arrays need at least this many rows."""
        return self.registry.next_slot

    def live(self) -> Iterable[Cohort]:
        return self.registry.live()

    def live_mask(self, cap: int) -> npt.NDArray[np.bool_]:
        live = np.zeros(cap, dtype=bool)
        for c in self.registry.live():
            live[c.slot] = True
        return live

    def cohort(self, slot: int) -> Cohort:
        return next(c for c in self.registry.live() if c.slot == slot)

    def name(self, now: float, rollout_id: str, phase: str, found: list[SlotChange]) -> list[VerdictChange]:
        """The checks' slot changes as verdict changes of their cohorts (key and scope), in order."""
        out = []
        for c in found:
            cohort = self.cohort(c.slot)
            out.append(VerdictChange(c.kind, now, rollout_id, cohort.key, dict(cohort.scope), c.metric, phase,
                                     c.state, c.previous, c.evidence))  # fmt: skip
        return out

    def expire(self, now: float, ttl: float) -> list[int]:
        """Forget cohorts idle for ``ttl`` seconds of event time; returns their slots."""
        return [c.slot for c in self.registry.expire(now, ttl)]

    def to_state(self) -> dict[str, Any]:
        return {"dims": list(self.dims), "registry": self.registry.to_state()}

    @classmethod
    def from_state(
        cls, state: dict[str, Any], segments: SegmentSettings, max_cohorts: int
    ) -> CohortMembership:
        membership = cls(segments, max_cohorts)
        membership.dims = list(state["dims"])
        membership.registry = CohortRegistry.from_state(state["registry"])
        return membership
