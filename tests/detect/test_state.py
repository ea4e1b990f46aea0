"""Engine state is plain, bounded data: a restored worker decides exactly as one that never stopped."""

from __future__ import annotations

import orjson

from core_traffic import Arm, Traffic
from rollguard.detect.engine import Engine


def behaviour(t: float, seg: str, arm: str) -> Arm:
    if arm == "canary" and seg == "coding" and t > 700:
        return Arm(error=0.3, latency_median=1400.0)
    return Arm()


def test_a_restored_engine_continues_with_identical_decisions() -> None:
    events = list(Traffic(rate=40, weight=0.2, behaviour=behaviour, weight_at=None).events(1500))
    cut = len(events) // 2

    straight = Engine()
    expected = [c.to_dict() for ev in events for c in straight.process(ev)] + [
        c.to_dict() for c in straight.flush()
    ]

    first = Engine()
    got = [c.to_dict() for ev in events[:cut] for c in first.process(ev)]
    blob = orjson.dumps(first.to_state())  # JSON-compatible: what a changelog topic would carry
    resumed = Engine.from_state(orjson.loads(blob))
    got += [c.to_dict() for ev in events[cut:] for c in resumed.process(ev)]
    got += [c.to_dict() for c in resumed.flush()]

    assert got == expected
    assert any(c["state"] == "regressed" for c in got)


def test_state_size_is_bounded_by_the_cohort_budget_not_the_traffic() -> None:
    short, long = Engine(), Engine()
    for ev in Traffic(rate=40).events(600):
        short.process(ev)
    for ev in Traffic(rate=40).events(3000):
        long.process(ev)
    short.flush()
    long.flush()
    size_short = len(orjson.dumps(short.to_state()))
    size_long = len(orjson.dumps(long.to_state()))
    assert size_long < 1.5 * size_short
