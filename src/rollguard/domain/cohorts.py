"""Cohorts: a rollout restricted by segment dimensions, named and budgeted.

By default a rollout is analysed as a whole and once per value of each segment dimension
(``input_class=billing``, ``tenant=t3``); config may add crosses (``input_class=coding,tenant=t3``).
Each cohort takes one *slot* of a fixed budget per rollout for life (slots are never reused after a
cohort expires). The slot budget is what makes the false-alarm split valid: α is divided over the
slots that can ever exist, so adding cohorts online never spends more than α per rollout.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from rollguard.settings.segments import SegmentSettings

WHOLE: Final = "*"


def cohort_key(scope: Mapping[str, str]) -> str:
    """A stable name: ``*`` for the whole rollout, else ``dim=value`` pairs sorted by dimension.

    >>> cohort_key({}), cohort_key({"tenant": "t3", "input_class": "coding"})
    ('*', 'input_class=coding,tenant=t3')
    """
    if not scope:
        return WHOLE
    return ",".join(f"{k}={scope[k]}" for k in sorted(scope))


def parse_cohort_key(key: str) -> dict[str, str]:
    """The scope named by :func:`cohort_key`.

    >>> parse_cohort_key("input_class=coding,tenant=t3")
    {'input_class': 'coding', 'tenant': 't3'}
    """
    if key == WHOLE:
        return {}
    return dict(part.split("=", 1) for part in key.split(","))


@dataclass(slots=True)
class Cohort:
    """One analysed cohort: its slot, its scope and when (event time) it was born and last seen."""

    slot: int
    key: str
    scope: dict[str, str]
    born: float
    last_seen: float

    def to_state(self) -> dict[str, Any]:
        return {"slot": self.slot, "key": self.key, "born": self.born, "last_seen": self.last_seen}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Cohort:
        key = str(state["key"])
        # JSON has no infinities: the whole rollout's -inf times (not read or seen yet) come back as null.
        born, seen = (-math.inf if state[k] is None else float(state[k]) for k in ("born", "last_seen"))
        return cls(int(state["slot"]), key, parse_cohort_key(key), born, seen)


def segment_slots(
    registry: CohortRegistry, seg: Mapping[str, str], ts: float, dims: list[str], settings: SegmentSettings
) -> list[int]:
    """The segment cohorts a request belongs to: one per analysed dimension, then one per grouping.

    The one membership rule for every kind of verdict (scalar, semantic, shadow). When config names no
    dimensions, new ones are discovered into ``dims`` (in order of appearance, up to
    ``max_dimensions``, minus ``exclude``). Cohorts are created within the registry's budget; a refused
    one is left out. The whole-rollout slot is the caller's.
    """
    if not seg:
        return []
    if settings.dimensions is None:
        for d in seg:
            if d not in dims and d not in settings.exclude and len(dims) < settings.max_dimensions:
                dims.append(d)
    out: list[int] = []
    for d in dims:
        v = seg.get(d)
        if v is not None:
            s = registry.slot(f"{d}={v}", ts)
            if s >= 0:
                out.append(s)
    for g in settings.groupings:
        if all(d in seg for d in g):
            s = registry.slot(cohort_key({d: seg[d] for d in g}), ts)
            if s >= 0:
                out.append(s)
    return out


class CohortRegistry:
    """Slots of one rollout: lookup by key, creation within the budget, expiry of idle cohorts."""

    def __init__(self, max_slots: int) -> None:
        self.max_slots = max_slots
        self.by_key: dict[str, Cohort] = {}
        self.next_slot = 0
        self.refused = 0  # memberships not analysed because the slot budget was spent

    def slot(self, key: str, ts: float) -> int:
        """The slot of ``key``, created at ``ts`` if new; -1 when the budget is spent."""
        cohort = self.by_key.get(key)
        if cohort is not None:
            return cohort.slot
        if self.next_slot >= self.max_slots:
            self.refused += 1
            return -1
        cohort = Cohort(self.next_slot, key, parse_cohort_key(key), ts, ts)
        self.next_slot += 1
        self.by_key[key] = cohort
        return cohort.slot

    def live(self) -> Iterable[Cohort]:
        return self.by_key.values()

    def expire(self, now: float, ttl: float) -> list[Cohort]:
        """Forget cohorts not seen for ``ttl`` seconds of event time; returns them."""
        gone = [c for c in self.by_key.values() if now - c.last_seen > ttl and c.key != WHOLE]
        for c in gone:
            del self.by_key[c.key]
        return gone

    def to_state(self) -> dict[str, Any]:
        return {
            "max_slots": self.max_slots,
            "next_slot": self.next_slot,
            "refused": self.refused,
            "cohorts": [c.to_state() for c in self.by_key.values()],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> CohortRegistry:
        reg = cls(int(state["max_slots"]))
        reg.next_slot = int(state["next_slot"])
        reg.refused = int(state["refused"])
        for raw in state["cohorts"]:
            c = Cohort.from_state(raw)
            reg.by_key[c.key] = c
        return reg
