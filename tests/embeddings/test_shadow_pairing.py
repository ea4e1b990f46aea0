"""Shadow pairing: joined by request id in any order, bounded wait and memory, every loss counted."""

from __future__ import annotations

import numpy as np
import orjson

from rollguard.domain.events import Event
from rollguard.embeddings.shadow import ShadowPairer, pair_differences
from rollguard.settings.embeddings import ShadowSettings

T0 = 1_767_225_600.0


def ev(rid: str, arm: str, ts: float, **kw: object) -> Event:
    return Event(f"{arm}:{rid}", rid, T0 + ts, "r1", arm, str(kw.pop("status", "ok")), **kw)  # type: ignore[arg-type]


def test_partners_pair_whichever_comes_first() -> None:
    p = ShadowPairer(ShadowSettings())
    assert p.add(ev("a", "control", 0.0, latency_ms=100.0)) is None
    pair = p.add(ev("a", "shadow", 0.4, latency_ms=150.0))
    assert pair is not None and pair.live.latency_ms == 100.0 and pair.shadow.latency_ms == 150.0
    assert p.add(ev("b", "shadow", 1.0)) is None  # a shadow copy logged before its live event
    pair = p.add(ev("b", "canary", 1.2))
    assert pair is not None and pair.live.event_id == "canary:b"
    assert p.counters["paired"] == 2 and not p.pending


def test_a_partner_later_than_the_wait_is_counted_late_and_not_paired() -> None:
    p = ShadowPairer(ShadowSettings(max_wait_s=5.0))
    p.add(ev("a", "control", 0.0))
    p.add(ev("x", "control", 6.0))  # event time moves on: "a" has waited too long
    assert p.counters["unpaired_live"] == 1
    assert p.add(ev("a", "shadow", 6.5)) is None
    assert p.counters["late_partners"] == 1 and p.counters["paired"] == 0


def test_memory_stays_bounded_when_most_partners_never_come() -> None:
    p = ShadowPairer(ShadowSettings(max_wait_s=30.0, max_pending=500))
    rng = np.random.default_rng(0)
    paired = 0
    for i in range(20_000):
        t = i * 0.001  # 1000 events/s: 30 s of wait would hold 30,000
        paired += p.add(ev(f"r{i}", "control", t)) is not None
        if rng.random() < 0.1:
            paired += p.add(ev(f"r{i}", "shadow", t + 0.0005)) is not None
        assert len(p.pending) <= 500 and len(p.gone) <= 500
    c = p.counters
    assert paired == c["paired"] > 1500
    assert c["evicted"] > 0 and c["unpaired_live"] >= c["evicted"]
    assert c["live"] == c["paired"] + c["unpaired_live"] + len(p.pending)


def test_out_of_order_arrival_within_the_wait_loses_nothing() -> None:
    p = ShadowPairer(ShadowSettings(max_wait_s=10.0))
    rng = np.random.default_rng(1)
    arrivals = []
    for i in range(2000):
        t = i * 0.05
        arrivals.append((t + rng.uniform(0, 3), ev(f"r{i}", "control", t)))
        arrivals.append((t + rng.uniform(0, 3), ev(f"r{i}", "shadow", t + 0.3)))
    arrivals.sort(key=lambda a: a[0])
    pairs = [p.add(e) for _, e in arrivals]
    assert sum(x is not None for x in pairs) == 2000
    assert p.counters["unpaired_live"] == p.counters["unpaired_shadow"] == p.counters["late_partners"] == 0


def test_duplicates_are_counted_and_the_first_answer_kept() -> None:
    p = ShadowPairer(ShadowSettings())
    p.add(ev("a", "control", 0.0, latency_ms=100.0))
    p.add(ev("a", "control", 0.1, latency_ms=999.0))
    pair = p.add(ev("a", "shadow", 0.2))
    assert p.counters["duplicates"] == 1 and pair is not None and pair.live.latency_ms == 100.0


def test_pair_differences_are_log_ratios_and_status_changes() -> None:
    p = ShadowPairer(ShadowSettings())
    p.add(ev("a", "control", 0.0, latency_ms=100.0, tokens_out=50.0, cost_usd=0.01))
    pair = p.add(ev("a", "shadow", 0.1, latency_ms=200.0, tokens_out=50.0, cost_usd=0.02))
    assert pair is not None
    d = pair_differences(pair)
    assert np.isclose(d["latency_ms"], np.log(2)) and d["tokens_out"] == 0.0 and d["failure_rate"] == 0.0
    p.add(ev("b", "control", 1.0, latency_ms=100.0))
    pair = p.add(ev("b", "shadow", 1.1, status="timeout", latency_ms=60000.0))
    assert pair is not None
    d = pair_differences(pair)
    assert d["failure_rate"] == 1.0 and "latency_ms" not in d  # a failed answer has no comparable latency


def test_state_round_trip_keeps_waiting_events() -> None:
    p = ShadowPairer(ShadowSettings())
    p.add(ev("a", "control", 0.0, response_text="hi"))
    q = ShadowPairer.from_state(orjson.loads(orjson.dumps(p.to_state())), ShadowSettings())
    pair = q.add(ev("a", "shadow", 0.5))
    assert pair is not None and pair.live.text == "hi"
