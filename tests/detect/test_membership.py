"""Cohort membership: every event counts for the whole rollout, each dimension and each grouping."""

from __future__ import annotations

import numpy as np
import orjson

from core_traffic import request
from rollguard.detect.batch_columns import EventColumns
from rollguard.detect.membership import CohortMembership
from rollguard.settings.config import SegmentSettings

GROUPED = SegmentSettings(dimensions=("input_class", "tenant"), groupings=(("input_class", "tenant"),))


def columns(*segments: dict[str, str], arm: str = "control") -> EventColumns:
    return EventColumns.of([request(float(i), arm, segment=seg) for i, seg in enumerate(segments)])


def keys(membership: CohortMembership, rows: np.ndarray) -> list[str]:
    return [membership.cohort(int(r) // 2).key for r in rows]


def test_an_event_belongs_to_the_whole_rollout_each_dimension_and_each_grouping() -> None:
    membership = CohortMembership(GROUPED, max_cohorts=32)
    rows, members, touched = membership.of_batch(columns({"input_class": "coding", "tenant": "t1"}), 100.0)
    assert members.tolist() == [0, 0, 0, 0]
    assert keys(membership, rows) == ["*", "input_class=coding", "tenant=t1", "input_class=coding,tenant=t1"]
    assert touched == [0, 1, 2, 3]


def test_rows_are_slot_times_two_plus_the_arm() -> None:
    membership = CohortMembership(SegmentSettings(), max_cohorts=32)
    rows, _, _ = membership.of_batch(columns({"input_class": "chat"}, arm="canary"), 100.0)
    assert rows.tolist() == [1, 3]  # whole rollout (slot 0) and input_class=chat (slot 1), canary arm


def test_slots_follow_the_order_in_which_cohorts_first_appear() -> None:
    membership = CohortMembership(SegmentSettings(), max_cohorts=32)
    membership.of_batch(columns({"input_class": "b"}, {"input_class": "a"}, {"input_class": "b"}), 100.0)
    assert [c.key for c in membership.live()] == ["*", "input_class=b", "input_class=a"]
    assert membership.dims == ["input_class"]  # discovered, since the config names none


def test_a_cohort_beyond_the_budget_is_left_out() -> None:
    membership = CohortMembership(SegmentSettings(), max_cohorts=2)
    rows, members, _ = membership.of_batch(columns({"input_class": "a"}, {"input_class": "b"}), 100.0)
    assert keys(membership, rows) == ["*", "input_class=a", "*"]
    assert members.tolist() == [0, 0, 1]
    assert membership.registry.refused == 1


def test_an_idle_cohort_expires_and_its_slot_is_never_given_again() -> None:
    membership = CohortMembership(SegmentSettings(), max_cohorts=32)
    membership.of_batch(columns({"input_class": "a"}), 100.0)
    membership.of_batch(columns({"input_class": "b"}), 4000.0)
    assert membership.expire(now=4000.0, ttl=3600.0) == [1]  # a: idle for 3900 s; the whole rollout stays
    rows, _, _ = membership.of_batch(columns({"input_class": "a"}), 4001.0)
    assert sorted({int(r) // 2 for r in rows}) == [0, 3]
    assert membership.slots_taken == 4


def test_membership_survives_a_state_round_trip() -> None:
    membership = CohortMembership(SegmentSettings(), max_cohorts=32)
    membership.of_batch(columns({"input_class": "a", "tenant": "t"}), 100.0)
    state = orjson.loads(orjson.dumps(membership.to_state()))
    restored = CohortMembership.from_state(state, SegmentSettings(), 32)
    assert restored.to_state() == membership.to_state()
    batch = columns({"tenant": "u"}, {"input_class": "a"})
    for m in (membership, restored):
        rows, _, _ = m.of_batch(batch, 200.0)
        assert rows.tolist() == [0, 6, 0, 2]  # tenant=u takes the next slot, 3
